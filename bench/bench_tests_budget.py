"""How far the tests' budget (``GradeConfig.for_tests``) keeps the reference from each training bar.

Grades the reference solution (``hw/code``) once per seed with the tests' configuration, as the
tests' pool of grades does, and prints for each: the VAE's negative ELBO against its bar, the share
of the CVAE's samples the classifier recognises, their spread within a digit against the diversity
gate, the score and the grade's time. The bars of ``for_tests`` must leave the reference full marks
with a margin on every seed.

Usage::

    MNIST_DATA_DIR=... python bench/bench_tests_budget.py [--seeds 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

from autograder.config import TEST_SEED, GradeConfig  # noqa: E402
from autograder.grading.grade import grade  # noqa: E402
from autograder.scoring.checks import CHECKS_BY_KEY, MIN_WITHIN_DIGIT_STD  # noqa: E402

VAE_LOSS = re.compile(r"test images[^:]*: (\d+\.\d)")


def measure(seed: int, work: Path) -> dict:
    """Grade the reference with ``GradeConfig.for_tests(seed)``; returns what the bars are compared with."""
    submission = work / f"reference-{seed}"
    submission.mkdir()
    for name in ("vae.py", "assignment.py"):
        shutil.copyfile(REPO_DIR / "hw" / "code" / name, submission / name)
    config = GradeConfig.for_tests(seed)
    began = time.monotonic()
    report = grade(submission, work / f"results-{seed}.json", config, log=lambda line: None)
    tests = {test["name"]: test for test in json.loads((work / f"results-{seed}.json").read_text())["tests"]}
    vae = tests[CHECKS_BY_KEY["vae_training"].name]
    stats = (tests[CHECKS_BY_KEY["cvae_generation"].name].get("extra_data") or {}).get("generation_stats") or {}
    found = VAE_LOSS.search(vae["output"])
    return {"seed": seed, "score": report.score, "seconds": time.monotonic() - began,
            "vae_loss": float(found.group(1)) if found else float("nan"), "vae_bar": config.vae_loss_threshold,
            "accuracy": stats.get("accuracy", float("nan")), "spread": stats.get("within_digit_std", float("nan"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[TEST_SEED, 1, 2])
    args = parser.parse_args(argv)
    print(f"{'seed':>10s}  {'score':>6s}  {'VAE loss':>8s} (bar)  {'CVAE acc':>8s}  {'spread':>6s} "
          f"(gate {MIN_WITHIN_DIGIT_STD})  {'seconds':>7s}")
    with tempfile.TemporaryDirectory(prefix="tests-budget-") as work:
        rows = [measure(seed, Path(work)) for seed in args.seeds]
        for row in rows:
            print(f"{row['seed']:>10d}  {row['score']:6.2f}  {row['vae_loss']:8.1f} ({row['vae_bar']:g})  "
                  f"{row['accuracy']:8.1%}  {row['spread']:6.3f}               {row['seconds']:7.1f}", flush=True)
    return 0 if all(row["score"] == 100 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
