"""The reference solution's generation statistics, measured once and shipped with the grader.

``python -m autograder.reference_stats`` grades the reference solution (``hw/code``) with the real
defaults and writes its "CVAE generation" statistics to ``autograder/reference_stats.json``; every
grade's feedback then shows them beside the student's own, without training the reference again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.paths import CODE_DIR, PACKAGE_DIR, REPO_DIR

REFERENCE_STATS = PACKAGE_DIR / "reference_stats.json"
GENERATION_CHECK = "CVAE generation"


@dataclass(frozen=True)
class ReferenceStats:
    """What the feedback puts beside a student's statistics (the fields of ``GenerationStats.as_json``)."""

    accuracy: float
    accuracy_interval: tuple[float, float]
    per_digit_accuracy: list[float]
    per_digit_confidence: list[float]
    per_digit_diversity: list[float]
    median_nearest_distance: float


def load_reference_stats(path: Path = REFERENCE_STATS) -> ReferenceStats | None:
    """The stored statistics, or None when the file is missing or unreadable (the feedback then omits them)."""
    try:
        data = json.loads(Path(path).read_text())["generation_stats"]
        return ReferenceStats(
            accuracy=float(data["accuracy"]), accuracy_interval=tuple(float(v) for v in data["accuracy_interval"]),
            per_digit_accuracy=[float(v) for v in data["per_digit_accuracy"]],
            per_digit_confidence=[float(v) for v in data["per_digit_confidence"]],
            per_digit_diversity=[float(v) for v in data["per_digit_diversity"]],
            median_nearest_distance=float(data["median_nearest_distance"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def generation_stats_of(results: dict) -> dict | None:
    """The "CVAE generation" statistics of a Gradescope results file's data (None when there are none)."""
    for test in results.get("tests", []):
        if test.get("name") == GENERATION_CHECK:
            return (test.get("extra_data") or {}).get("generation_stats")
    return None


def measure(log=print) -> dict:
    """Grade the reference solution with the real defaults; returns what ``reference_stats.json`` holds."""
    from autograder.config import GradeConfig
    from autograder.grade import grade

    with tempfile.TemporaryDirectory(prefix="reference-stats-") as work:
        work = Path(work)
        reference = work / "reference"
        reference.mkdir()
        for name in ("vae.py", "assignment.py"):
            shutil.copyfile(CODE_DIR / name, reference / name)
        report = grade(reference, work / "results.json", GradeConfig(), log)
        results = json.loads((work / "results.json").read_text())
    stats = generation_stats_of(results)
    if stats is None or report.score < report.max_score:
        raise RuntimeError(f"the reference solution scored {report.score:g}/{report.max_score:g} and its samples "
                           "were not measured; fix the grader or the reference first")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True,
                            text=True).stdout.strip()
    return {"generation_stats": stats, "measured": time.strftime("%Y-%m-%d"), "commit": commit or None,
            "score": report.score}


def write(data: dict, path: Path = REFERENCE_STATS) -> None:
    """Write ``data`` as sorted JSON, through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=1, sort_keys=True)
            file.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main() -> int:
    data = measure(log=lambda line: print(line, file=sys.stderr, flush=True))
    write(data)
    print(f"wrote {REFERENCE_STATS}: accuracy {data['generation_stats']['accuracy']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
