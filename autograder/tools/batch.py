"""``grade-all``: grade a folder of submissions into a gradebook that survives interruptions.

Each submission is graded by a grader process of its own (``python -m autograder
grade``). After each one, its row is stored beside its results file and the
whole gradebook is rewritten atomically, so a batch killed at any point keeps
every finished row, and a rerun grades only what is missing (or changed).
At the end come one feedback file per student and a summary of the class.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from autograder.config import LOCAL_TIME_LIMIT_SECONDS, GradeConfig
from autograder.grading.results import read_json
from autograder.grading.unfinished import finish, stop_summary
from autograder.paths import REPO_DIR
from autograder.scoring.checks import CHECKS

# One submission's whole grading may not take longer than this (the grader plans its own grade to
# LOCAL_TIME_LIMIT_SECONDS, less a margin); a stuck grade is stopped and recorded as a timeout, and the
# batch goes on.
GRADE_TIMEOUT_S = LOCAL_TIME_LIMIT_SECONDS + 300
# What one grade needs at its peak: a training child (its memory limit) and the grader beside it.
MEMORY_PER_GRADE_GB = 3.0
# The gradebook's status column, worst first: how the grade of a submission ended.
STATUSES = ("grader-error", "invalid", "memory", "timeout", "crashed", "ok")
# How a child that ran the submission ended (sandbox.ChildResult.status) -> the submission's status.
RUN_STATUS = {"ok": "ok", "timeout": "timeout", "memory": "memory", "exit": "crashed", "signal": "crashed",
              "processes": "crashed", "error": "grader-error"}
ROW_SUFFIX = ".row.json"
SAMPLES_IMAGE = re.compile(r'<img alt="samples" src="data:image/png;base64,([A-Za-z0-9+/=]+)"\s*/?>')


@dataclass(frozen=True)
class BatchConfig:
    """What ``grade-all`` grades and where it writes (the command's options)."""

    submissions: Path
    out: Path = Path("grades.csv")
    # Results files and stored rows; default: ``results/`` beside the gradebook.
    results_dir: Path | None = None
    # Feedback files, one per student; default: ``feedback/`` beside the gradebook.
    feedback_dir: Path | None = None
    # Submissions graded at once; None: as many as the machine's cores and memory allow.
    workers: int | None = None
    small: bool = False
    seed: int | None = None
    # Regrade every submission, even those whose results are complete.
    force: bool = False

    @property
    def results(self) -> Path:
        return self.results_dir or self.out.parent / "results"

    @property
    def feedback(self) -> Path:
        return self.feedback_dir or self.out.parent / "feedback"


def columns() -> list[str]:
    return ["submission", "status", "minutes", "total", *[spec.name for spec in CHECKS], "unverified", "warnings",
            "error"]


def find_submissions(folder: Path) -> list[Path]:
    """Every sub-folder and .zip file of ``folder``, in name order."""
    return sorted(p for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() == ".zip"))


def fingerprint(submission: Path) -> str:
    """SHA-256 of the submission's files (names and contents); a changed submission is graded again."""
    digest = hashlib.sha256()
    if submission.is_file():
        digest.update(submission.read_bytes())
        return digest.hexdigest()
    for path in sorted(p for p in submission.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(path.relative_to(submission).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def default_workers() -> tuple[int, str]:
    """How many submissions to grade at once, and why.

    One per core: the grader's time limits are wall-clock and calibrated for
    half a core (Gradescope's box), so a grade needs no more than one core, but
    must not share it. And one per ``MEMORY_PER_GRADE_GB`` of available memory.
    """
    cores = len(os.sched_getaffinity(0))
    try:
        available_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):
        available_gb = MEMORY_PER_GRADE_GB
    workers = max(1, min(cores, int(available_gb // MEMORY_PER_GRADE_GB)))
    return workers, (f"{workers} worker(s): {cores} core(s) and {available_gb:.0f} GB of free memory allow one per "
                     f"core and per {MEMORY_PER_GRADE_GB:g} GB (set --workers to change it)")


def status_of(data: dict | None, returncode: int | None) -> str:
    """The submission's status from its results (``grade``'s extra_data) and the grader's exit status."""
    if data is None or returncode not in (0, None):
        return "grader-error"
    extra = data.get("extra_data") or {}
    if "invalid" in extra:
        return "invalid"
    found = {RUN_STATUS.get(status, "crashed") for status in (extra.get("runs") or {}).values()}
    return next((status for status in STATUSES if status in found), "ok")


def row_from_results(name: str, data: dict) -> dict:
    """The gradebook's score columns from a Gradescope results file's data."""
    row: dict = {"submission": name, "total": data["score"]}
    for test in data["tests"]:
        row[test["name"]] = test["score"]
    # Checks scored from the submission's own numbers, for a TA to review.
    row["unverified"] = "; ".join(test["name"] for test in data["tests"]
                                  if (test.get("extra_data") or {}).get("unverified"))
    # What the grade found wrong with the machine it ran on (a container below the recommended memory).
    row["warnings"] = "; ".join((data.get("extra_data") or {}).get("warnings") or ())
    return row


def write_atomically(path: Path, write, mode: str = "w") -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as file:
            write(file)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def grade_one(submission: Path, results: Path, config: BatchConfig) -> dict:
    """Grade one submission in a grader process of its own; returns its gradebook row."""
    command = [sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results)]
    if config.small:
        command.append("--small")
    if config.seed is not None:
        command += ["--seed", str(config.seed)]
    if results.exists():
        results.unlink()
    start = time.monotonic()
    error, returncode = "", None
    try:
        done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True, timeout=GRADE_TIMEOUT_S)
        returncode = done.returncode
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["the grader exited with an error"]
            first = next((index for index, line in enumerate(lines) if line.startswith("error:")), len(lines) - 1)
            error = " ".join(line.strip() for line in lines[first:]
                             if not line.startswith("results written to"))[:300]
    except subprocess.TimeoutExpired:
        error = f"grading took longer than {GRADE_TIMEOUT_S:g} s"
    if returncode != 0:
        # A grader killed from outside (the out-of-memory killer, the timeout above) left provisional results.
        cause = finish(results, -signal.SIGKILL if returncode is None else returncode,
                       GradeConfig().recommended_memory_mb)
        if cause is not None and returncode is not None:
            error = stop_summary(cause)
    minutes = (time.monotonic() - start) / 60
    data = read_json(results)
    if data is None:
        row = {"submission": submission.name, "total": 0.0,
               "status": "timeout" if returncode is None else "grader-error",
               "error": error or "the grader wrote no results file"}
    else:
        row = {**row_from_results(submission.name, data),
               "status": "timeout" if returncode is None else status_of(data, returncode),
               "error": error or (data.get("extra_data") or {}).get("invalid", "")}
    row["minutes"] = round(minutes, 2)
    return row


def stored_row(submission: Path, config: BatchConfig) -> dict | None:
    """The row stored by an earlier run, if its grade is complete and the submission unchanged."""
    row = read_json(config.results / f"{submission.stem}{ROW_SUFFIX}")
    if (row is None or row.get("fingerprint") != fingerprint(submission) or row.get("status") == "grader-error"
            or read_json(config.results / f"{submission.stem}.json") is None):
        return None
    return row


def write_gradebook(rows: list[dict], path: Path) -> None:
    def write(file) -> None:
        writer = csv.DictWriter(file, fieldnames=columns(), extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: row["submission"]))

    write_atomically(path, write)


# Feedback files.


def feedback_markdown(name: str, data: dict, image_name: str) -> tuple[str, bytes | None]:
    """The student's feedback as Markdown (the same text as on Gradescope) and the sample grid's PNG, if any."""
    total = sum(test["max_score"] for test in data["tests"])
    lines = [f"# Feedback for {name}", "", f"**Total: {data['score']:g} / {total:g}**", ""]
    if data.get("output"):
        lines += [data["output"], ""]
    image = None
    for test in data["tests"]:
        output = test.get("output", "")
        found = SAMPLES_IMAGE.search(output)
        if found:
            image = base64.b64decode(found.group(1))
            output = SAMPLES_IMAGE.sub(f'<img alt="samples" src="{image_name}"/>', output)
        lines += [f"## {test['name']}: {test['score']:g} / {test['max_score']:g}", "", output, ""]
    return "\n".join(lines), image


def write_feedback(name: str, data: dict, folder: Path) -> Path:
    """``folder/<name>.md`` and, when the grade drew samples, ``folder/<name>.png`` beside it."""
    image_name = f"{name}.png"
    text, image = feedback_markdown(name, data, image_name)
    if image is not None:
        write_atomically(folder / image_name, lambda file: file.write(image), mode="wb")
    path = folder / f"{name}.md"
    write_atomically(path, lambda file: file.write(text))
    return path


# The class's summary.


def summary_lines(rows: list[dict]) -> list[str]:
    """Mean, spread and range of every check and of the total; how many grades ended in each status."""
    names = [*[spec.name for spec in CHECKS], "total"]
    width = max(len(name) for name in names)
    lines = [f"{'check':<{width}} {'mean':>7} {'std':>7} {'min':>7} {'median':>7} {'max':>7}"]
    for column in names:
        values = [float(row[column]) for row in rows if row.get(column, "") != ""]
        if not values:
            continue
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        lines.append(f"{column:<{width}} {statistics.mean(values):>7.2f} {spread:>7.2f} {min(values):>7.2f} "
                     f"{statistics.median(values):>7.2f} {max(values):>7.2f}")
    counts = Counter(row.get("status", "") for row in rows)
    lines.append("status: " + ", ".join(f"{status} {counts[status]}" for status in STATUSES if counts[status]))
    return lines


def write_histogram(rows: list[dict], path: Path) -> None:
    """A histogram of the totals, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maximum = sum(spec.points for spec in CHECKS)
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.hist([float(row["total"]) for row in rows], bins=range(0, int(maximum) + 6, 5), color="#4472c4",
              edgecolor="white")
    axes.set_xlabel(f"total (of {maximum:g})")
    axes.set_ylabel("submissions")
    axes.set_title(f"{len(rows)} submissions")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# The batch.


def grade_all(config: BatchConfig, log=print) -> int:
    """Grade every submission of ``config.submissions``; returns the exit status (2: nothing to grade)."""
    folder = Path(config.submissions)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder of submissions", file=sys.stderr)
        return 2
    submissions = find_submissions(folder)
    if not submissions:
        print(f"error: no submissions (folders or .zip files) in {folder}", file=sys.stderr)
        return 2
    config.results.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    todo = []
    for submission in submissions:
        row = None if config.force else stored_row(submission, config)
        if row is None:
            todo.append(submission)
        else:
            rows[submission.name] = row
    try:
        write_gradebook(list(rows.values()), config.out)
    except OSError as error:
        print(f"error: cannot write the gradebook {config.out} ({error.strerror}); choose another --out",
              file=sys.stderr)
        return 2
    if rows:
        log(f"{len(rows)} submission(s) already graded, kept (pass --force to grade them again)")
    workers, why = (config.workers, f"{config.workers} worker(s)") if config.workers else default_workers()
    if todo:
        log(f"grading {len(todo)} submission(s) with {why}")
    lock = threading.Lock()

    def job(submission: Path) -> dict:
        results = config.results / f"{submission.stem}.json"
        row = grade_one(submission, results, config)
        row["fingerprint"] = fingerprint(submission)
        data = read_json(results)
        # A grade the grader could not finish is for the staff to look into, not for the student.
        if data is not None and "tests" in data and row["status"] != "grader-error":
            write_feedback(submission.stem, data, config.feedback)
        write_atomically(config.results / f"{submission.stem}{ROW_SUFFIX}",
                         lambda file: json.dump(row, file, indent=1))
        with lock:
            rows[submission.name] = row
            write_gradebook(list(rows.values()), config.out)
        return row

    # The bar (on stderr) shows how many are done and, from the rate so far, the time left.
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1)))
    try:
        with tqdm(total=len(todo), unit="grade", file=sys.stderr, dynamic_ncols=True, disable=not todo) as bar:
            for future in as_completed([pool.submit(job, submission) for submission in todo]):
                row = future.result()
                bar.write(f"{row['submission']}: {float(row['total']):g} ({row['status']}, "
                          f"{row['minutes']:.1f} min{'; ' + row['error'] if row.get('error') else ''})",
                          file=sys.stdout)
                bar.update()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        print(f"interrupted: {len(rows)} row(s) kept in {config.out}; run the same command again to go on",
              file=sys.stderr)
        return 130
    pool.shutdown()
    for submission in submissions:
        data = read_json(config.results / f"{submission.stem}.json")
        if (data is not None and "tests" in data and rows[submission.name]["status"] != "grader-error"
                and not (config.feedback / f"{submission.stem}.md").exists()):
            write_feedback(submission.stem, data, config.feedback)
    all_rows = [rows[submission.name] for submission in submissions]
    histogram = config.out.with_name(f"{config.out.stem}-histogram.png")
    write_histogram(all_rows, histogram)
    for line in summary_lines(all_rows):
        log(line)
    log(f"graded {len(todo)}, kept {len(submissions) - len(todo)}: gradebook {config.out}, results in "
        f"{config.results}, feedback in {config.feedback}, histogram {histogram}")
    return 0


def config_from(args) -> BatchConfig:
    return BatchConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(BatchConfig)
                          if hasattr(args, field.name)})
