"""Gradescope's results file and the table printed for instructors."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TestResult:
    """One test of Gradescope's results file (its ``tests`` list)."""

    # Not a pytest test class, although its name starts with "Test".
    __test__ = False

    name: str
    score: float
    max_score: float
    output: str
    output_format: str = "md"
    visibility: str = "visible"
    # The score comes from numbers the submission's own process computed (its model could not be exported).
    unverified: bool = False
    # Machine-readable details for the instructor's tools (JSON-serialisable); Gradescope stores them unshown.
    extra_data: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "passed" if self.score >= self.max_score else "failed"

    def as_gradescope(self) -> dict:
        extra = {**self.extra_data, **({"unverified": True} if self.unverified else {})}
        return {
            "name": self.name,
            "score": round(self.score, 2),
            "max_score": self.max_score,
            "status": self.status,
            "output": self.output,
            "output_format": self.output_format,
            "visibility": self.visibility,
            **({"extra_data": extra} if extra else {}),
        }


@dataclass
class Report:
    tests: list[TestResult] = field(default_factory=list)
    output: str = ""
    execution_time: float = 0.0
    error: str | None = None
    # Machine-readable details of the whole grade (each run's status...), for the instructor's tools.
    extra_data: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        return round(sum(test.score for test in self.tests), 2)

    @property
    def max_score(self) -> float:
        return sum(test.max_score for test in self.tests)

    def as_gradescope(self) -> dict:
        return {
            "score": self.score,
            "execution_time": round(self.execution_time, 1),
            "output": self.output,
            "output_format": "md",
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [test.as_gradescope() for test in self.tests],
            **({"extra_data": self.extra_data} if self.extra_data else {}),
        }


def write_results(report: Report, path: Path) -> None:
    """Write ``report`` as Gradescope JSON (``write_json``)."""
    write_json(report.as_gradescope(), path)


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as JSON at ``path``: a temporary file in the same folder, then a rename, so that a
    reader (or a grader killed mid-write) never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_json(path: Path) -> dict | None:
    """The JSON object in the file at ``path``, or None when it cannot be read or is not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _plain(text: str, width: int) -> str:
    """The first sentence-ish of a feedback text, without HTML or Markdown code marks."""
    import re

    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\s+", " ", text.replace("`", "")).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(report: Report, width: int = 100) -> str:
    """A readable table of the checks, their scores and a short reason."""
    rows = [(t.name, f"{t.score:g}/{t.max_score:g}", ("ok" if t.status == "passed" else "FAIL") + "*" * t.unverified,
             _plain(t.output, width)) for t in report.tests]
    name_width = max([len(r[0]) for r in rows] + [5])
    lines = [f"{'check':<{name_width}}  {'points':>7}  {'':4}  feedback"]
    lines.append("-" * (name_width + 2 + 7 + 2 + 4 + 2 + 8))
    for name, points, status, feedback in rows:
        lines.append(f"{name:<{name_width}}  {points:>7}  {status:<4}  {feedback}")
    lines.append(f"{'total':<{name_width}}  {report.score:g}/{report.max_score:g}".rstrip())
    if any(t.unverified for t in report.tests):
        lines.append("* unverified: computed by the submission's own process (its model could not be exported); "
                     "review it by hand")
    if report.error:
        lines.append(f"grader error: {report.error}")
    return "\n".join(lines)
