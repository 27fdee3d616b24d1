"""Grade the calibration population as one class with ``grade-all``: wall time, workers, rows, statuses.

Writes every member and mutant of ``tests/population`` into a folder of
submissions, runs ``python -m autograder grade-all`` on it (the real defaults
unless ``--small``), then checks the gradebook: one row per submission, each
correct member at full marks, no mutant at full marks, and prints what the closing note and BENCHMARKS.md
quote. The members alone took 17 minutes on 2 cores with 2 workers (BENCHMARKS.md); run it in
the background::

    python bench/bench_grade_all.py --out build/class [--members-only | --mutants-only] [--workers N] [--small]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR / "tests"))
sys.path.insert(0, str(REPO_DIR))

from autograder.scoring.checks import TOTAL_POINTS  # noqa: E402
from population import members, mutants, write_submission  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the class and its gradebook")
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument("--members-only", action="store_true", help="only the correct members")
    subset.add_argument("--mutants-only", action="store_true", help="only the single-bug mutants")
    parser.add_argument("--workers", type=int, default=None, help="grade-all's --workers (default: its own)")
    parser.add_argument("--small", action="store_true", help="the grader's small budget (a quick smoke run)")
    args = parser.parse_args(argv)

    if args.out.exists():
        shutil.rmtree(args.out)
    folder = args.out / "submissions"
    correct = set(members())
    names = ([] if args.mutants_only else sorted(correct)) + ([] if args.members_only else sorted(mutants()))
    for name in names:
        write_submission(name, folder / name)
    command = [sys.executable, "-m", "autograder", "grade-all", str(folder), "--out", str(args.out / "grades.csv")]
    command += ["--workers", str(args.workers)] if args.workers else []
    command += ["--small"] if args.small else []
    print(" ".join(command), flush=True)
    start = time.monotonic()
    done = subprocess.run(command, cwd=REPO_DIR)
    wall = time.monotonic() - start
    rows = list(csv.DictReader((args.out / "grades.csv").open()))
    statuses = Counter(row["status"] for row in rows)
    short = [row["submission"] for row in rows if row["submission"] in correct and float(row["total"]) < TOTAL_POINTS]
    # Every mutant's bug belongs to at least one check, so none may keep every point.
    unnoticed = [row["submission"] for row in rows
                 if row["submission"] not in correct and float(row["total"]) >= TOTAL_POINTS]
    print(f"grade-all exited {done.returncode} after {wall / 60:.1f} min: {len(rows)} rows for {len(names)} "
          f"submissions; statuses: " + ", ".join(f"{s} {n}" for s, n in statuses.most_common())
          + f"; correct members below full marks: {', '.join(short) or 'none'}"
          + f"; mutants at full marks: {', '.join(unnoticed) or 'none'}")
    return 0 if done.returncode == 0 and len(rows) == len(names) and not short and not unnoticed else 1


if __name__ == "__main__":
    sys.exit(main())
