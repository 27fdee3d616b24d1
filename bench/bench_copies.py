"""Calibrate the copy detector (autograder/scoring/copies.py): disguised training images against genuine samples.

Disguised copies are training images shifted by up to 2 pixels, with Gaussian
noise, with another contrast and brightness, and all of these at once; the
genuine samples are those of real CVAEs: the reference trained as the grader
trains it (latent size 2) and longer with a larger code (sharper samples, the
hardest case for the detector), or any (N, 1, 28, 28) .npy given with
``--samples``. Prints the share of each kind that the detector flags, the time
per 1,000 samples, and exits non-zero unless every kind of disguised copies is
flagged well above the share at which the grader refuses credit and every
genuine set well below it (a margin of ``--margin`` each way).

    python bench/bench_copies.py [--samples FILE.npy ...] [--copies 2000] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autograder.paths import PACKAGE_DIR, ensure_code_on_path  # noqa: E402
from autograder.scoring import copies  # noqa: E402


def disguises(images: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Training images (N, 28, 28) uint8 -> named sets of disguised copies, pixels in [0, 1]."""
    x = images.astype(np.float32) / 255.0
    n = len(x)

    def shift(batch, size):
        moves = rng.integers(-size, size + 1, size=(n, 2))
        moves[(moves == 0).all(axis=1)] = size
        padded = np.pad(batch, ((0, 0), (size, size), (size, size)))
        return np.stack([padded[i, size + dy:size + dy + 28, size + dx:size + dx + 28]
                         for i, (dy, dx) in enumerate(moves)])

    def noise(batch, sigma):
        return np.clip(batch + rng.normal(scale=sigma, size=batch.shape), 0, 1)

    def contrast(batch, scale, offset):
        return np.clip(scale * batch + offset, 0, 1)

    return {
        "exact": x,
        "shift 1": shift(x, 1),
        "shift 2": shift(x, 2),
        "noise 0.05": noise(x, 0.05),
        "noise 0.1": noise(x, 0.1),
        "contrast 0.6, +0.2": contrast(x, 0.6, 0.2),
        "contrast 0.4": contrast(x, 0.4, 0.0),
        "shift 2 + noise 0.1 + contrast 0.7": contrast(noise(shift(x, 2), 0.1), 0.7, 0.1),
    }


def reference_samples(epochs: int, latent: int, arrays, seed: int = 0) -> np.ndarray:
    """2,000 samples of the reference CVAE trained the grader's way (harness helpers) for ``epochs``."""
    sys.path.insert(0, str(PACKAGE_DIR / "children"))
    ensure_code_on_path()
    import assignment
    import harness
    import vae

    harness.seed_everything(seed)
    batches = -(-len(arrays.train_labels) // 128)
    model = harness.build_model(vae, True, latent, 3e-3, epochs * batches)
    loader = harness.make_loader(arrays.train_images, arrays.train_labels, 128, seed)
    args = harness.grader_args({"vae_latent_size": latent, "cvae_latent_size": latent, "batch_size": 128,
                                "vae_epochs": epochs, "cvae_epochs": epochs, "learning_rate": 3e-3,
                                "seed": seed}, True)
    for _ in range(epochs):
        assignment.train_vae(model, loader, args, True)
    rng = np.random.default_rng(seed + 1)
    labels = np.repeat(np.arange(10), 200)
    samples, _ = harness.as_images(harness.decode_with_labels(model, rng.normal(size=(2000, latent)), labels), "")
    return samples


def summary(scores: np.ndarray) -> str:
    q = np.percentile(scores, [0, 1, 50, 99, 100])
    return " ".join(f"{v:.3f}" for v in q)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, nargs="*", default=[],
                        help="genuine samples (.npy, (N, 1, 28, 28) in [0, 1]) instead of training the reference")
    parser.add_argument("--copies", type=int, default=2000, help="training images disguised per kind")
    parser.add_argument("--margin", type=float, default=0.3,
                        help="the distance to the grader's share that each verdict must keep")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()

    ensure_code_on_path()
    from mnist_data import load_arrays

    arrays = load_arrays()
    started = time.perf_counter()
    features = copies.spectrum_features(arrays.train_images)
    feature_seconds = time.perf_counter() - started
    genuine = {path.stem: np.load(path) for path in args.samples}
    if not genuine:
        genuine = {"reference, latent 2, 2 epochs": reference_samples(2, 2, arrays),
                   "reference, latent 15, 6 epochs": reference_samples(6, 15, arrays)}
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(arrays.train_labels), size=args.copies, replace=False)
    share = copies.MAX_COPIED_SHARE
    rows, ok, timings = [], True, []
    sets = [("copy: " + kind, images, True) for kind, images in disguises(arrays.train_images[chosen], rng).items()]
    sets += [("genuine: " + name, samples, False) for name, samples in genuine.items()]
    for name, images, disguised in sets:
        started = time.perf_counter()
        ranked = copies.correlations(images, arrays.train_images, features)
        timings.append((time.perf_counter() - started) / len(images) * 1000)
        flagged = float(np.mean((ranked[:, 0] > copies.COPY_CORRELATION)
                                & (ranked[:, 0] - ranked[:, copies.RUNNER_UP - 1] > copies.COPY_GAP)))
        good = flagged >= share + args.margin if disguised else flagged <= share - args.margin
        ok &= good
        rows.append((name, summary(ranked[:, 0]), f"{flagged:.1%}", "ok" if good else "WRONG"))
    header = ("samples", "best correlation: min, 1%, median, 99%, max", "flagged as copies", "verdict")
    if args.markdown:
        print("| " + " | ".join(header) + " |\n| --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in (header, *rows):
            print(f"{row[0]:42s} {row[1]:44s} {row[2]:>18s}  {row[3]}")
    print(f"\nthe grader refuses credit above {share:.0%} copies; training images' features: {feature_seconds:.1f} s; "
          f"detection: {np.median(timings):.1f} s per 1,000 samples (median over the sets)")
    print("ok" if ok else "FAILED: a set of copies is not flagged, or a genuine set is, with the margin")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
