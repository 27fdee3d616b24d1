"""Benchmark a full grade of the reference solution: wall time and peak memory of all processes.

Each run grades ``hw/code``'s reference (or ``--submission``) with
``python -m autograder grade`` in a fresh process, while this script samples
the memory of the grader and all its descendants every 0.1 s:

- RSS: resident memory summed over the process tree (shared library pages count
  once per process, so this overstates what the kernel must keep);
- anonymous RSS: the part that is not file-backed (heap, tensors), the memory an
  out-of-memory killer reclaims first.

Usage::

    python bench/bench_grade.py [--runs 3] [--cores 0] [--submission DIR] [--small]

``--cores 0`` runs the grade under ``taskset -c 0`` (one core).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) of ``pid`` in kB; zeros when it is gone."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def one_run(submission: Path, small: bool, cores: str | None) -> dict:
    with tempfile.TemporaryDirectory() as work:
        results = Path(work) / "results.json"
        command = [sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results)]
        if small:
            command.append("--small")
        if cores is not None:
            command = ["taskset", "-c", cores, *command]
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        peak_rss = peak_anon = 0
        while process.poll() is None:
            usage = [memory_kb(pid) for pid in descendants(process.pid)]
            peak_rss = max(peak_rss, sum(u[0] for u in usage))
            peak_anon = max(peak_anon, sum(u[1] for u in usage))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        output = process.stdout.read()
        if process.returncode != 0:
            raise SystemExit(f"grading failed:\n{output[-3000:]}")
        data = json.loads(results.read_text())
    return {"wall_seconds": wall, "peak_rss_mb": peak_rss / 1024, "peak_anon_mb": peak_anon / 1024,
            "score": data["score"], "log": [line for line in output.splitlines() if line.startswith("  ")]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark grading the reference solution.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--submission", type=Path, default=None,
                        help="a submission folder (default: the reference solution)")
    parser.add_argument("--small", action="store_true", help="the grader's small budget")
    parser.add_argument("--cores", default=None, help="taskset CPU list, e.g. 0 for one core")
    args = parser.parse_args(argv)
    if args.cores is not None and not shutil.which("taskset"):
        raise SystemExit("taskset is not installed (util-linux)")
    with tempfile.TemporaryDirectory() as work:
        submission = args.submission
        if submission is None:
            submission = Path(work) / "reference"
            submission.mkdir()
            for name in ("vae.py", "assignment.py"):
                shutil.copyfile(REPO_DIR / "hw" / "code" / name, submission / name)
        runs = []
        for index in range(args.runs):
            run = one_run(submission, args.small, args.cores)
            runs.append(run)
            print(f"run {index + 1}: score {run['score']}, wall {run['wall_seconds']:.1f} s, "
                  f"peak RSS {run['peak_rss_mb']:.0f} MB (anonymous {run['peak_anon_mb']:.0f} MB)", flush=True)
            for line in run["log"]:
                print(f"  {line.strip()}")
    print(f"median of {len(runs)}: wall {statistics.median(r['wall_seconds'] for r in runs):.1f} s, "
          f"peak RSS {statistics.median(r['peak_rss_mb'] for r in runs):.0f} MB, "
          f"anonymous {statistics.median(r['peak_anon_mb'] for r in runs):.0f} MB"
          + (f", cores {args.cores}" if args.cores is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
