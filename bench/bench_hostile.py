"""Reliability figures for hostile and broken submissions.

Grades every case of ``tests/hostile_cases.py`` through the grader (each in a
grader process of its own, ``GradeConfig.for_tests()``, as the tests do) and
judges it, then grades a folder holding all of them with
``python -m autograder grade-all --small``, which must finish with one
gradebook row per submission. Prints how many cases there are, how many graded
as expected, the slowest case's grading time and the batch's wall time.

Usage::

    MNIST_DATA_DIR=... python bench/bench_hostile.py [--workers 2] [--python PYTHON]
                                                     [--cases a,b,...] [--skip-batch]

``--python`` is the interpreter of the grader (default: this one); cases that
need children to run as an unprivileged user run only where the grader gets one.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR / "tests"))

import hostile_cases as hc  # noqa: E402


def grade_each(cases: list[hc.Case], work: Path, python: str, workers: int) -> tuple[int, float, str]:
    """Grade and judge every case; returns (cases as expected, slowest time, slowest case)."""
    def progress(graded: hc.Graded) -> None:
        print(f"  graded {graded.name} in {graded.seconds:.1f} s", flush=True)

    graded = hc.grade_cases([hc.REFERENCE, *cases], work, python, workers, progress)
    baseline = hc.baseline_scores(graded["reference"])
    expected = 0
    print(f"\n{'case':32} {'group':9} {'seconds':>7}  outcome")
    for case in cases:
        problems = hc.evaluate(case, graded[case.name], baseline)
        expected += not problems
        outcome = "as expected" if not problems else "UNEXPECTED: " + problems[0][:150]
        print(f"{case.name:32} {case.group:9} {graded[case.name].seconds:7.1f}  {outcome}")
        for problem in problems[1:]:
            print(f"{'':52}{problem[:150]}")
    slowest = max(cases, key=lambda case: graded[case.name].seconds)
    return expected, graded[slowest.name].seconds, slowest.name


def grade_all(cases: list[hc.Case], work: Path, python: str, workers: int) -> tuple[float, int, int, list[int]]:
    """``grade-all --small`` on a folder of every case; returns (wall s, rows, rows with an error, survivors)."""
    folder = work / "submissions"
    markers = []
    with hc.listening_port() as port:
        for case in cases:
            context = hc.Context(REPO_DIR, port, marker=f"{time.time_ns() % 10**9 + 10**9}.5")
            markers.append(context.marker)
            hc.write_submission(case, folder / case.name, context)
        gradebook = work / "grades.csv"
        began = time.monotonic()
        subprocess.run([python, "-m", "autograder", "grade-all", str(folder), "--out", str(gradebook),
                        "--small", "--workers", str(workers)], cwd=REPO_DIR, check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        seconds = time.monotonic() - began
    with open(gradebook, newline="") as file:
        rows = list(csv.DictReader(file))
    if sorted(row["submission"] for row in rows) != sorted(case.name for case in cases):
        raise SystemExit(f"the gradebook does not hold one row per submission: {[row['submission'] for row in rows]}")
    survivors = [pid for marker in markers for pid in hc.live_processes_with(marker)]
    return seconds, len(rows), sum(1 for row in rows if row["error"]), survivors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="submissions graded at once (default 2)")
    parser.add_argument("--python", default=sys.executable, help="the grader's interpreter")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--skip-batch", action="store_true", help="leave out the grade-all run")
    args = parser.parse_args()
    if not os.environ.get("MNIST_DATA_DIR"):
        parser.error("set MNIST_DATA_DIR to the folder of the MNIST files")

    available = hc.platform(args.python)
    wanted = set(args.cases.split(",")) if args.cases else {case.name for case in hc.CASES}
    cases = [case for case in hc.CASES if case.name in wanted and hc.runnable(case, available)]
    left_out = [case.name for case in hc.CASES if case.name in wanted and not hc.runnable(case, available)]
    print(f"platform: children as an unprivileged user: {available['unprivileged']}; "
          f"network namespace: {available['network_namespace']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as work:
        began = time.monotonic()
        expected, slowest_seconds, slowest = grade_each(cases, Path(work) / "each", args.python, args.workers)
        each_seconds = time.monotonic() - began
        print(f"\nhostile submissions: {len(cases)} cases graded"
              + (f" ({len(left_out)} not run here: {', '.join(left_out)})" if left_out else ""))
        print(f"graded as expected: {expected} of {len(cases)}")
        print(f"slowest case: {slowest}, {slowest_seconds:.1f} s "
              f"(the grader's limit: {hc.GradeConfig.for_tests().total_seconds:g} s)")
        print(f"all cases, {args.workers} at a time: {each_seconds:.0f} s")
        if not args.skip_batch:
            print("\ngrade-all --small on a folder of every case:", flush=True)
            seconds, rows, errors, survivors = grade_all(cases, Path(work) / "batch", args.python, args.workers)
            print(f"batch: {rows} submissions, {rows} gradebook rows, {errors} with a grader error, "
                  f"{len(survivors)} surviving processes; wall time {seconds:.0f} s ({args.workers} workers)")
    return 0 if expected == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
