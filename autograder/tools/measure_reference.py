"""Measure the reference solution's generation statistics: ``python -m autograder.tools.measure_reference``.

Grades the reference solution (``hw/code``) with the real default configuration and a fixed seed and
writes its "CVAE generation" statistics to ``autograder/reference_stats.json``
(``autograder.scoring.reference_stats``). Run it again whenever the reference, its training or the grader's
defaults change; a test grades the reference the same way and fails when the stored file is stale.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.config import GradeConfig
from autograder.grading.grade import grade
from autograder.paths import CODE_DIR, REPO_DIR
from autograder.scoring.reference_stats import (DEFAULT_SEED, REFERENCE_STATS, STORED_STATS, generation_stats_of,
                                        parse_reference_stats, rounded, write_reference_stats)


def source_commit() -> str:
    """HEAD's short hash, with "+changes" when the grader or the reference differ from it."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False)

    try:
        commit = git("rev-parse", "--short", "HEAD").stdout.strip()
        changed = git("diff", "--quiet", "HEAD", "--", "autograder", "hw/code",
                      f":(exclude)autograder/{REFERENCE_STATS.name}").returncode != 0
    except OSError:
        return ""
    return f"{commit}+changes" if commit and changed else commit


def measure_reference_stats(seed: int = DEFAULT_SEED, log=print) -> dict:
    """Grade the reference solution with the default configuration and ``seed``; returns the file's content."""
    with tempfile.TemporaryDirectory(prefix="reference-stats-") as work:
        work = Path(work)
        reference = work / "reference"
        reference.mkdir()
        for name in ("vae.py", "assignment.py"):
            shutil.copyfile(CODE_DIR / name, reference / name)
        report = grade(reference, work / "results.json", dataclasses.replace(GradeConfig(), seed=seed), log)
        results = json.loads((work / "results.json").read_text())
    stats = generation_stats_of(results)
    if stats is None or report.score < report.max_score:
        raise RuntimeError(f"the reference solution scored {report.score:g}/{report.max_score:g} and its samples "
                           "were not measured; fix the grader or the reference first")
    data = {key: rounded(stats[key]) for key in STORED_STATS}
    data.update(score=report.score, seed=seed, date=time.strftime("%Y-%m-%d", time.gmtime()), commit=source_commit())
    parse_reference_stats(data)
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.tools.measure_reference", description=__doc__)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the master seed of the reference's grade")
    parser.add_argument("--out", type=Path, default=REFERENCE_STATS, help="where to write the statistics")
    args = parser.parse_args(argv)
    data = measure_reference_stats(args.seed, log=lambda line: print(line, file=sys.stderr, flush=True))
    path = write_reference_stats(data, args.out)
    low, high = data["accuracy_interval"]
    print(f"wrote {path}: accuracy {data['accuracy']:.1%} (95% interval {low:.1%} to {high:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
