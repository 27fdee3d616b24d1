"""``grade-all``: grade every submission in a folder and write a CSV gradebook."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograder.checks import CHECKS
from autograder.paths import REPO_DIR

# One submission's whole grading may not take longer than this; a stuck grade
# is stopped and recorded as an error, and the batch goes on.
GRADE_TIMEOUT_S = 1800


def find_submissions(folder: Path) -> list[Path]:
    """Every sub-folder and .zip file of ``folder``, in name order."""
    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() == ".zip"))


def grade_one(submission: Path, results: Path, small: bool) -> dict:
    """Grade one submission in a grader process of its own; returns its gradebook row."""
    row = {"submission": submission.name, "total": 0.0, "unverified": "", "error": ""}
    command = [sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results)]
    if small:
        command.append("--small")
    try:
        done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True, timeout=GRADE_TIMEOUT_S)
        if done.returncode != 0:
            row["error"] = (done.stderr.strip().splitlines() or ["grader exited with an error"])[-1][:300]
    except subprocess.TimeoutExpired:
        row["error"] = f"grading took longer than {GRADE_TIMEOUT_S} s"
    try:
        data = json.loads(results.read_text())
        row["total"] = data["score"]
        for test in data["tests"]:
            row[test["name"]] = test["score"]
        # Checks scored from the submission's own numbers, for a TA to review.
        row["unverified"] = "; ".join(test["name"] for test in data["tests"]
                                      if (test.get("extra_data") or {}).get("unverified"))
    except (OSError, ValueError, KeyError) as error:
        row["error"] = row["error"] or f"no results file ({type(error).__name__})"
    return row


def write_gradebook(rows: list[dict], path: Path) -> None:
    columns = ["submission", "total", *[spec.name for spec in CHECKS], "unverified", "error"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grades-", suffix=".csv")
    with os.fdopen(fd, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def grade_all(folder: Path, out: Path, results_dir: Path | None, workers: int, small: bool) -> int:
    submissions = find_submissions(folder)
    if not submissions:
        print(f"error: no submissions (folders or .zip files) in {folder}", file=sys.stderr)
        return 2
    results_dir = results_dir or out.parent / "results"
    results_dir.mkdir(parents=True, exist_ok=True)

    def job(submission: Path) -> dict:
        row = grade_one(submission, results_dir / f"{submission.stem}.json", small)
        print(f"{submission.name}: {row['total']:g}{'  (' + row['error'] + ')' if row['error'] else ''}",
              flush=True)
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(job, submissions))
    write_gradebook(rows, out)
    print(f"graded {len(rows)} submissions; gradebook {out}; results in {results_dir}")
    return 0
