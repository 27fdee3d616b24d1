"""The reference solution's generation statistics, measured once and shipped with the grader.

``python -m autograder.tools.measure_reference`` grades the reference solution and writes them to
``autograder/reference_stats.json``. Every grade's feedback then shows them beside the student's own,
without training the reference again. A missing or unreadable file only removes the reference's
values from the feedback.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder.paths import PACKAGE_DIR

REFERENCE_STATS = PACKAGE_DIR / "reference_stats.json"
GENERATION_CHECK = "CVAE generation"
# The master seed of the reference's grade: fixed, so that the stored numbers can be measured again.
DEFAULT_SEED = 0
# The statistics of ``GenerationStats.as_json`` that the file keeps.
STORED_STATS = ("accuracy", "accuracy_interval", "count", "per_digit_accuracy", "per_digit_confidence",
                "per_digit_diversity", "real_digit_diversity", "median_nearest_distance")
PER_DIGIT = ("per_digit_accuracy", "per_digit_confidence", "per_digit_diversity", "real_digit_diversity")
# Decimals kept in the file: far below the sampling error of 200 samples per digit.
DECIMALS = 4


@dataclass(frozen=True)
class ReferenceStats:
    """What the feedback puts beside a student's statistics, and where it came from."""

    accuracy: float
    accuracy_interval: tuple[float, float]
    per_digit_accuracy: list[float]
    per_digit_confidence: list[float]
    per_digit_diversity: list[float]
    real_digit_diversity: list[float]
    median_nearest_distance: float
    seed: int | None = None
    date: str = ""
    commit: str = ""


def _finite(value) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _digits(values) -> list[float]:
    if not isinstance(values, list) or len(values) != 10:
        raise ValueError("expected ten values, one per digit")
    return [_finite(value) for value in values]


def parse_reference_stats(data: dict) -> ReferenceStats:
    """The statistics in ``data`` (the file's content); raises ValueError, KeyError or TypeError if malformed."""
    low, high = (_finite(value) for value in data["accuracy_interval"])
    seed = data.get("seed")
    return ReferenceStats(
        accuracy=_finite(data["accuracy"]), accuracy_interval=(low, high),
        per_digit_accuracy=_digits(data["per_digit_accuracy"]),
        per_digit_confidence=_digits(data["per_digit_confidence"]),
        per_digit_diversity=_digits(data["per_digit_diversity"]),
        real_digit_diversity=_digits(data["real_digit_diversity"]),
        median_nearest_distance=_finite(data["median_nearest_distance"]),
        seed=None if seed is None else int(seed), date=str(data.get("date", "")),
        commit=str(data.get("commit", "")))


def load_reference_stats(path: Path | None = None) -> ReferenceStats | None:
    """The stored statistics (``REFERENCE_STATS`` by default), or None when missing or unreadable."""
    try:
        return parse_reference_stats(json.loads(Path(path or REFERENCE_STATS).read_text()))
    # Whatever is wrong with the file, the grade goes on without the reference's values.
    except Exception:  # noqa: BLE001
        return None


def generation_stats_of(results: dict) -> dict | None:
    """The "CVAE generation" statistics in a Gradescope results file's data (None when there are none)."""
    for test in results.get("tests", []):
        if test.get("name") == GENERATION_CHECK:
            return (test.get("extra_data") or {}).get("generation_stats")
    return None


def rounded(value):
    """``value`` (a float or a list of them) rounded to ``DECIMALS``."""
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return round(value, DECIMALS) if isinstance(value, float) else value


def write_reference_stats(data: dict, path: Path | None = None) -> Path:
    """Write ``data`` as JSON with sorted keys, through a temporary file and a rename; returns the path."""
    path = Path(path or REFERENCE_STATS)
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
    return path
