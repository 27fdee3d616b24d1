"""How far the ``train_vae`` probe's steps lower the loss of every correct member, across seeds.

The unit check of ``train_vae`` gives a fresh model (latent size 8, Adam) a few
calls of the submission's ``train_vae`` on 512 training images in batches of
64, and requires the loss on held-out images to fall by at least 10%, or by at
least half of what the contract's own step (``harness.train_with_trusted_step``)
takes off a copy of the same weights on the same batches. A correct network must
pass on every seed, with room; a train_vae that does not train must not. For each
member (and each mutant of ``--only``), each seed and each learning rate, this
prints the loss after each call of ``train_vae`` as a fraction of the loss
before, the trusted copy's fraction after the last call, and how many seeds the
check fails, with the probe's own code (``autograder.children.harness``), the
grader's loss and the same data pipeline. Each submission runs in its own process::

    python bench/bench_train_vae_probe.py [--seeds 40] [--rates 0.001 0.003] [--calls 3] [--only NAME ...]

Takes a few minutes per learning rate on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR / "tests"))
sys.path.insert(0, str(REPO_DIR))

from autograder.scoring.checks import TRAIN_VAE_LOSS_BAR as BAR  # noqa: E402
from autograder.scoring.checks import train_vae_lowered  # noqa: E402


def lowered(ratio: float, trusted: float | None) -> bool:
    """The check's rule (``checks.train_vae_lowered``) on loss ratios after / before."""
    return train_vae_lowered(1.0, ratio, trusted)


def trajectories(submission: Path, seeds: int, rates: list[float], calls: int) -> list[dict]:
    """In this process: the loss ratios of ``submission`` (imported from its folder) after each call.

    The probe's own inputs (``unit_request``) and calls (``harness.train_vae_calls``), with the loss
    measured as the grader measures it: its codes, on held-out test images.
    """
    import numpy as np

    sys.path.insert(0, str(submission))
    # The provided data module, after the submission so that its vae.py and assignment.py come first.
    sys.path.append(str(REPO_DIR / "hw" / "code"))
    import assignment
    import vae
    from mnist_data import load_arrays

    from autograder.children import harness
    from autograder.scoring.requests import STEPS_EVAL_IMAGES, unit_request

    arrays = load_arrays()
    rows = []
    for rate in rates:
        for seed in range(seeds):
            request = unit_request(seed, arrays.train_images, arrays.train_labels)
            held_out = np.random.default_rng(seed).choice(len(arrays.test_images), STEPS_EVAL_IMAGES, replace=False)
            request.update({"steps.eval_images": arrays.test_images[held_out],
                            "steps.learning_rate": np.float64(rate), "steps.epochs": np.int64(calls)})
            harness.seed_everything(seed)
            model = harness.build_model(vae, False, request["steps.eps"].shape[1], rate)

            def loss(model):
                out = harness.encode_decode(model, False, request["steps.eval_images"], None, request["steps.eps"])
                return harness.negative_elbo(out["x_hat"], request["steps.eval_images"], out["mu"], out["logvar"])

            before = loss(model)
            twin = harness.copy_of(model, vae, request)
            ratios = [loss(model) / before for _ in harness.train_vae_calls(vae, assignment, model, request)]
            harness.train_with_trusted_step(vae, assignment, twin, request)
            rows.append({"rate": rate, "seed": seed, "before": before, "ratios": ratios,
                         "trusted": loss(twin) / before})
    return rows


def run_child(name: str, seeds: int, rates: list[float], calls: int) -> list[dict]:
    """``trajectories`` of the member or mutant ``name`` in a child process (each imports its own vae.py)."""
    from population import write_submission

    with tempfile.TemporaryDirectory() as folder:
        submission = write_submission(name, Path(folder) / name)
        code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import bench_train_vae_probe as b; "
                "print('ROWS ' + json.dumps(b.trajectories(__import__('pathlib').Path(sys.argv[2]), "
                "int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5]))))")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(submission), str(seeds),
                               json.dumps(rates), str(calls)], capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name}: the child failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("ROWS "):])


def main(argv=None) -> int:
    from population import members

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40, help="seeds 0 .. N-1")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.001], help="Adam learning rates (the probe's: 0.001)")
    parser.add_argument("--calls", type=int, default=2, help="calls of train_vae, 8 batches each (the probe's: 2)")
    parser.add_argument("--only", nargs="+", default=None, help="these members or mutants instead of all members")
    parser.add_argument("--json", type=Path, default=None, help="write every trajectory here")
    args = parser.parse_args(argv)
    names = args.only or sorted(members())
    print(f"loss after each call / loss before, over {args.seeds} seeds: median (worst); "
          f"'>bar' counts seeds at or above {BAR}; the trusted copy after the last call: median (worst); "
          "fails: seeds on which the check's rule fails")
    header = ("| submission | rate | " + " | ".join(f"after {c + 1}" for c in range(args.calls))
              + " | trusted copy | fails |")
    print(header + "\n|" + "---|" * (4 + args.calls), flush=True)
    everything = {}
    for name in names:
        rows = run_child(name, args.seeds, args.rates, args.calls)
        everything[name] = rows
        for rate in args.rates:
            cells = []
            for call in range(args.calls):
                ratios = [row["ratios"][call] for row in rows if row["rate"] == rate]
                failing = sum(r >= BAR for r in ratios)
                cells.append(f"{statistics.median(ratios):.2f} ({max(ratios):.2f}), {failing} >bar")
            trusted = [row["trusted"] for row in rows if row["rate"] == rate]
            fails = sum(not lowered(row["ratios"][-1], row["trusted"]) for row in rows if row["rate"] == rate)
            cells += [f"{statistics.median(trusted):.2f} ({max(trusted):.2f})", str(fails)]
            print(f"| {name} | {rate:g} | " + " | ".join(cells) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
