"""The files the grader exchanges with its children: the probes' inputs, drawn from the grader's seed,
and the arrays the children return.

Pure NumPy, with no import of the rest of the grader, so that the release can
copy this module next to the students' ``check.py``: the self-check then sends
the same kind of request to the same probes as the grader, and reads what
comes back the same way.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

# BEGIN GRADER ONLY
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.config import GradeConfig
# END GRADER ONLY

# The train_vae probe's model (latent size) and the images its loss is measured on.
# The students' self-check draws its inputs from this public seed; the grader's come from the secret.
SELF_CHECK_SEED = 2024
STEPS_LATENT_SIZE = 8
STEPS_EVAL_IMAGES = 256
# The largest result file a child may return, packed or unpacked.
MAX_RESULT_BYTES = 256 * 2**20


def unit_request(seed: int, train_images, train_labels) -> dict:
    """The inputs of the unit probes, drawn from ``seed``.

    ``train_images`` (N, 28, 28) uint8 and ``train_labels`` (N,) give the 512
    images of the ``train_vae`` probe; N must be at least 512.
    """
    rng = np.random.default_rng(seed)
    request = {"seed": np.int64(seed), "one_hot.labels": rng.integers(0, 10, 37)}
    draws = 20_000
    mu_row = np.array([-2.0, 0.0, 0.7, 3.0])
    logvar_row = np.array([-1.0, 0.0, 1.2, 0.3])
    request["reparam.mu"] = np.tile(mu_row, (draws, 1)).astype(np.float32)
    request["reparam.logvar"] = np.tile(logvar_row, (draws, 1)).astype(np.float32)
    request["grad.mu"] = rng.normal(size=(64, 4)).astype(np.float32)
    request["grad.logvar"] = rng.normal(scale=0.5, size=(64, 4)).astype(np.float32)
    request["grad.weights"] = rng.normal(size=(64, 4)).astype(np.float32)
    sizes = [3, 5, 8, 2, 6]
    request["loss.count"] = np.int64(len(sizes))
    for i, n in enumerate(sizes):
        latent = int(rng.integers(2, 7))
        x = rng.uniform(size=(n, 1, 28, 28))
        x[: n // 2] = (x[: n // 2] > 0.5)
        request[f"loss.{i}.x"] = x.astype(np.float32)
        request[f"loss.{i}.x_hat"] = rng.uniform(0.05, 0.95, size=(n, 1, 28, 28)).astype(np.float32)
        request[f"loss.{i}.mu"] = rng.normal(size=(n, latent)).astype(np.float32)
        request[f"loss.{i}.logvar"] = rng.normal(scale=0.7, size=(n, latent)).astype(np.float32)
    request["forward.latent_size"] = np.int64(7)
    request["forward.x"] = rng.uniform(size=(5, 1, 28, 28)).astype(np.float32)
    request["forward.labels"] = rng.integers(0, 10, 5)
    request["forward.z"] = rng.normal(size=(3, 7)).astype(np.float32)
    steps = rng.choice(len(train_images), size=512, replace=False)
    request["steps.images"] = train_images[steps]
    request["steps.labels"] = train_labels[steps]
    # The loss before and after the probe's epoch, measured on 256 of its images (the grader's own
    # measurement replaces them by held-out images: ``scoring_request``).
    request["steps.eval_images"] = request["steps.images"][:STEPS_EVAL_IMAGES]
    request["steps.eval_labels"] = request["steps.labels"][:STEPS_EVAL_IMAGES]
    request["steps.eps"] = rng.normal(size=(STEPS_EVAL_IMAGES, STEPS_LATENT_SIZE)).astype(np.float32)
    request["steps.batch_size"] = np.int64(64)
    # Two calls of train_vae (16 steps) at 1e-3. At 3e-3, Adam's first steps left the widest correct
    # network of the calibration population (four ELU layers up to 1024) above 90% of its starting loss
    # on 2 of 40 seeds after 8 steps, and on 1 after 16; at 1e-3 its worst seed ends at 65% and the
    # smallest network's (two layers of 128) at 64%, while one call of 8 steps left that one at 91%
    # (bench/bench_train_vae_probe.py and BENCHMARKS.md in the instructors' repository).
    request["steps.epochs"] = np.int64(2)
    request["steps.learning_rate"] = np.float64(1e-3)
    return request


def test_split(seed: int, test_images: np.ndarray, stop_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the test images: (the training children's stop set, the rest), chosen with ``seed``.

    The two sets are matched by the amount of ink in each image, which the loss
    of a digit follows closely: the images sorted by ink are cut into blocks of
    ``len / stop_count`` and one image of each block, at random, goes to the stop
    set. A plain random split lets the two sets' mean losses differ by 1 to 3
    nats, more than the early stop's margin (bench/bench_population.py in the
    instructors' repository).
    """
    count = len(test_images)
    ink = test_images.reshape(count, -1).sum(axis=1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    blocks = np.array_split(np.argsort(ink, kind="stable"), stop_count)
    stop = np.array([block[rng.integers(len(block))] for block in blocks])
    rest = np.setdiff1d(np.arange(count), stop)
    return rng.permutation(stop), rng.permutation(rest)


def training_request(config, seed: int, arrays) -> dict:
    """The inputs of the training runs, drawn from ``seed``; ``arrays`` holds MNIST's four arrays.

    ``config``: the grader's ``GradeConfig``, or the self-check's copy of its training settings.

    Training stops at the bars of the checks (unless ``config.early_stop`` is
    off), with a margin: the VAE's child measures its loss on a stop set of
    test images itself; the CVAE's child asks the grader, which classifies the
    samples of the grader's codes, after each epoch. The scores are measured
    afterwards on other inputs (``scoring_request``).
    """
    budget = config.budget
    rng = np.random.default_rng(seed)
    images = arrays.train_images[: budget.train_images]
    labels = arrays.train_labels[: budget.train_images]
    stop, _ = test_split(seed, arrays.test_images, budget.eval_images)
    per_digit = config.samples_per_digit
    return {
        "seed": np.int64(seed),
        "batch_size": np.int64(budget.batch_size),
        "learning_rate": np.float64(budget.learning_rate),
        "vae_epochs": np.int64(budget.vae_epochs),
        "cvae_epochs": np.int64(budget.cvae_epochs),
        "vae_latent_size": np.int64(budget.vae_latent_size),
        "cvae_latent_size": np.int64(budget.cvae_latent_size),
        "train.images": images,
        "train.labels": labels,
        "eval.images": arrays.test_images[stop],
        "eval.labels": arrays.test_labels[stop],
        "eval.stop_count": np.int64(len(stop)),
        "vae.eps": rng.normal(size=(budget.eval_images, budget.vae_latent_size)).astype(np.float32),
        "cvae.eps": rng.normal(size=(budget.eval_images, budget.cvae_latent_size)).astype(np.float32),
        "cvae.sample_z": rng.normal(size=(10 * per_digit, budget.cvae_latent_size)).astype(np.float32),
        "cvae.sample_labels": np.repeat(np.arange(10), per_digit),
        "vae.stop_below": np.float64(config.vae_loss_threshold - config.vae_stop_margin if config.early_stop
                                     else -np.inf),
        "cvae.ask_grader": np.bool_(config.early_stop),
        "cvae.decision_seconds": np.float64(60.0),
    }


# BEGIN GRADER ONLY
def scoring_request(config: GradeConfig, seed: int, training_seed: int, arrays) -> dict:
    """The inputs on which the grader runs the exported models, drawn from ``seed``, which no child sees.

    Test images outside the training children's stop set (the one
    ``training_seed`` chose), fresh noise for the encodings and fresh codes
    for the samples.
    """
    budget = config.budget
    rng = np.random.default_rng(seed)
    _, rest = test_split(training_seed, arrays.test_images, budget.eval_images)
    chosen = rng.choice(rest, size=budget.score_images + STEPS_EVAL_IMAGES, replace=False)
    scored, steps = chosen[: budget.score_images], chosen[budget.score_images:]
    per_digit = config.scored_samples_per_digit
    return {
        "eval.images": arrays.test_images[scored],
        "eval.labels": arrays.test_labels[scored],
        "vae.eps": rng.normal(size=(len(scored), budget.vae_latent_size)),
        "cvae.eps": rng.normal(size=(len(scored), budget.cvae_latent_size)),
        "cvae.sample_z": rng.normal(size=(10 * per_digit, budget.cvae_latent_size)),
        "cvae.sample_labels": np.repeat(np.arange(10), per_digit),
        "steps.eval_images": arrays.test_images[steps],
        "steps.eval_labels": arrays.test_labels[steps],
        "steps.eps": rng.normal(size=(STEPS_EVAL_IMAGES, STEPS_LATENT_SIZE)),
    }
# END GRADER ONLY


def save_request(path: Path, request: dict) -> Path:
    with open(path, "wb") as file:
        np.savez(file, **request)
    return path


def load_result_file(path: Path) -> dict:
    """Read a child's result .npz defensively: plain numeric or text arrays only, of bounded size."""
    if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_RESULT_BYTES:
        return {}
    arrays = {}
    try:
        # A small compressed file can unpack to more memory than the grader has:
        # the sizes its members unpack to are checked before any is unpacked.
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_RESULT_BYTES:
                return {}
        elements = 0
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                value = data[key]
                elements += value.size
                if elements * 8 > MAX_RESULT_BYTES:
                    return {}
                if type(value) is np.ndarray and value.dtype.kind in "fiub":
                    arrays[key] = np.array(value, dtype=np.float64)
                elif type(value) is np.ndarray and value.dtype.kind == "U":
                    arrays[key] = str(value)[:2000]
    except Exception:  # noqa: BLE001 - a corrupt file is the same as no file
        return {}
    return arrays
