"""What students get: the stencil made from the solution, the release folder, the handout's points table.

One source of truth: ``hw/code`` holds the reference solution between
``# BEGIN SOLUTION`` and ``# END SOLUTION``; the release replaces each block
with a stub that raises ``NotImplementedError``, copies the provided modules
unchanged, and ships the grader's unit checks under a private name so that
``check.py`` runs them on the student's machine. ``check_release`` grades the
reference and the stencil of a fresh release and lists any surprise.
"""

from __future__ import annotations

import ast
import json
import dataclasses
import os
import re
import shutil
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder.config import GradeConfig
from autograder.grading.results import Report
from autograder.grading.submission import PROVIDED_MODULES
from autograder.paths import CODE_DIR, PACKAGE_DIR, REPO_DIR
from autograder.scoring.checks import CHECKS, UNIT_CHECKS, CheckSpec

BEGIN_MARKER = "# BEGIN SOLUTION"
END_MARKER = "# END SOLUTION"
_MARKER = re.compile(r"^(?P<indent>\s*)# (?P<kind>BEGIN|END) SOLUTION\b")
# The student files: each must hold solution blocks, or the release would ship the solution.
STENCIL_FILES = ("vae.py", "assignment.py")
# The grader's modules that check.py runs, copied into the release under a private package.
SELF_CHECK_PACKAGE = "_selfcheck"
# The provided modules students get; only these and the stencil files leave hw/code (the instructor's
# experiments live in their own package, experiments/, and never ship).
RELEASED_PROVIDED = (*PROVIDED_MODULES, "check.py")
# Paths inside the package; the release keeps the subpackages, so their relative imports hold as they are.
SELF_CHECK_MODULES = ("scoring/checks.py", "children/harness.py", "scoring/requests.py", "selfcheck.py")
SELF_CHECK_INIT = ('"""A copy of the course autograder\'s checks and self-check, run by ``check.py``.\n\n'
                   'Do not edit these files: the grader uses its own copy.\n"""\n')
HANDOUT = REPO_DIR / "handout.md"
STUDENT_README = PACKAGE_DIR / "templates" / "student_README.md"
TABLE_BEGIN = "<!-- BEGIN POINTS TABLE -->"
TABLE_END = "<!-- END POINTS TABLE -->"
# Files that must never reach students: trained weights and other binary artefacts.
FORBIDDEN_SUFFIXES = (".keras", ".h5", ".npz", ".npy", ".pkl", ".pickle")
MAX_LINE = 100


# Parts of the grader's modules that the self-check's copies leave out: the grader's own formulas (the
# loss, the codes it decodes), its training and its export. ``check.py`` scores the unit checks against
# the expected values the release stores instead (``SELF_CHECK_EXPECTED``).
GRADER_ONLY = re.compile(r"^\s*# (?P<kind>BEGIN|END) GRADER ONLY\s*$")
SELF_CHECK_EXPECTED = "expected.json"


class ReleaseError(Exception):
    """The release cannot be written; the one-line message says why and what to do."""


# The stencil: solution blocks replaced by stubs.


@dataclass(frozen=True)
class SolutionBlock:
    """One ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block (0-based line indices of the markers)."""

    begin: int
    end: int
    indent: str
    owner: str
    todo: str


def _owner(tree: ast.Module, line: int) -> str:
    """The qualified name of the innermost class or function around 1-based ``line``."""
    names: list[str] = []
    nodes = list(tree.body)
    while True:
        inner = next((node for node in nodes
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and node.lineno <= line <= (node.end_lineno or node.lineno)), None)
        if inner is None:
            return ".".join(names)
        names.append(inner.name)
        nodes = list(inner.body)


def _todo_above(lines: list[str], begin: int) -> str:
    """The text of the ``# TODO:`` comment directly above line ``begin``, on one line ("" if none)."""
    start = begin
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    comment = [line.strip().lstrip("#").strip() for line in lines[start:begin]]
    todo = next((i for i, text in enumerate(comment) if text.startswith("TODO")), None)
    if todo is None:
        return ""
    words = [re.sub(r"^TODO:?\s*", "", comment[todo]), *comment[todo + 1:]]
    return " ".join(word for word in words if word)


def solution_blocks(text: str, filename: str) -> list[SolutionBlock]:
    """The solution blocks of a module's source; ReleaseError when the markers do not pair up."""
    lines = text.splitlines()
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as error:
        raise ReleaseError(f"{filename}:{error.lineno}: the solution does not parse: {error.msg}") from None
    blocks: list[SolutionBlock] = []
    open_at: int | None = None
    for index, line in enumerate(lines):
        match = _MARKER.match(line)
        if not match:
            continue
        if match["kind"] == "BEGIN":
            if open_at is not None:
                raise ReleaseError(f"{filename}:{index + 1}: {BEGIN_MARKER} inside the block opened at "
                                   f"line {open_at + 1}; close it with {END_MARKER} first")
            open_at = index
            continue
        if open_at is None:
            raise ReleaseError(f"{filename}:{index + 1}: {END_MARKER} without a {BEGIN_MARKER} above it")
        indent = _MARKER.match(lines[open_at])["indent"]
        blocks.append(SolutionBlock(open_at, index, indent, _owner(tree, open_at + 2),
                                    _todo_above(lines, open_at)))
        open_at = None
    if open_at is not None:
        raise ReleaseError(f"{filename}:{open_at + 1}: {BEGIN_MARKER} is never closed by {END_MARKER}")
    return blocks


def _first_clause(text: str) -> str:
    """``text`` up to the first full stop or colon outside brackets, without it."""
    depth = 0
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif (char in ".:" and depth == 0 and text[max(0, index - 3):index + 1] not in ("e.g.", "i.e.")
              and (index + 1 == len(text) or text[index + 1].isspace())):
            return text[:index]
    return text


def stub_message(block: SolutionBlock, filename: str) -> str:
    """What the stub says: the function to implement and the first clause of its TODO."""
    where = f"{block.owner} in {filename}" if block.owner else f"the block at {filename}:{block.begin + 1}"
    task = _first_clause(block.todo)
    return f"implement {where}: {task}" if task else f"implement {where}"


def stub_lines(indent: str, message: str) -> list[str]:
    """``raise NotImplementedError(message)`` at ``indent``, wrapped to MAX_LINE characters."""
    line = f"{indent}raise NotImplementedError({json.dumps(message)})"
    if len(line) <= MAX_LINE:
        return [line]
    chunks = textwrap.wrap(message, MAX_LINE - len(indent) - 8, break_long_words=False,
                           break_on_hyphens=False)
    literals = [json.dumps(chunk + " ") for chunk in chunks[:-1]] + [json.dumps(chunks[-1])]
    return [f"{indent}raise NotImplementedError(", *(f"{indent}    {text}" for text in literals), f"{indent})"]


def make_stencil(text: str, filename: str) -> str:
    """The student's version of a solution module: every solution block becomes a stub."""
    lines = text.splitlines()
    out: list[str] = []
    position = 0
    for block in solution_blocks(text, filename):
        out.extend(lines[position:block.begin])
        out.extend(stub_lines(block.indent, stub_message(block, filename)))
        position = block.end + 1
    out.extend(lines[position:])
    stencil = "\n".join(out) + "\n"
    try:
        compile(stencil, filename, "exec")
    except SyntaxError as error:
        raise ReleaseError(f"the stencil of {filename} does not compile (line {error.lineno}: {error.msg}); "
                           "check the indentation of its solution markers") from None
    return stencil


# The self-check: the grader's modules without their grader-only parts, and the expected values.


def strip_grader_only(text: str, filename: str) -> str:
    """``text`` without its ``# BEGIN GRADER ONLY`` ... ``# END GRADER ONLY`` blocks (markers included).

    Runs of blank lines left behind shrink to two, and the result must compile.
    """
    kept: list[str] = []
    open_at: int | None = None
    for index, line in enumerate(text.splitlines()):
        match = GRADER_ONLY.match(line)
        if match and match["kind"] == "BEGIN":
            if open_at is not None:
                raise ReleaseError(f"{filename}:{index + 1}: a grader-only block inside the one opened at line "
                                   f"{open_at + 1}")
            open_at = index
        elif match:
            if open_at is None:
                raise ReleaseError(f"{filename}:{index + 1}: END GRADER ONLY without a BEGIN above it")
            open_at = None
        elif open_at is None and not (line == "" and kept[-2:] == ["", ""]):
            kept.append(line)
    if open_at is not None:
        raise ReleaseError(f"{filename}:{open_at + 1}: a grader-only block is never closed")
    stripped = "\n".join(kept).rstrip() + "\n"
    try:
        compile(stripped, filename, "exec")
    except SyntaxError as error:
        raise ReleaseError(f"{filename} without its grader-only blocks does not compile (line {error.lineno}: "
                           f"{error.msg})") from None
    return stripped


# What ``check.py --training`` needs of the grader's config: the training budget, the time limit of a
# training run and the bars. The handout states all of them; the secret and the classifier stay out.
TRAINING_SETTINGS = ("budget", "train_limits", "early_stop", "vae_loss_threshold", "vae_stop_margin",
                     "samples_per_digit", "generation_full_credit")


def training_settings(config: GradeConfig) -> dict:
    """The grader's training settings in ``config``, as JSON data."""
    everything = dataclasses.asdict(config)
    return {key: everything[key] for key in TRAINING_SETTINGS}


def self_check_expected() -> dict:
    """The expected values of the self-check's unit checks, as JSON data (the self-check's seed).

    Also the grader's training settings, full and small, for ``check.py --training``.
    """
    import numpy as np

    from autograder.scoring.checks import expected_values
    from autograder.scoring.requests import SELF_CHECK_SEED, unit_request

    # The expected values depend only on the seed, not on the training images the train_vae probe uses.
    request = unit_request(SELF_CHECK_SEED, np.zeros((512, 28, 28), np.uint8), np.zeros(512, np.int64))
    expected = {key: np.asarray(value).tolist() for key, value in expected_values(request).items()}
    return {"seed": SELF_CHECK_SEED, "values": expected,
            "training": {"full": training_settings(GradeConfig()), "small": training_settings(GradeConfig().small())}}


# Leaks: solution lines or grader-only files in a release.


def _is_trivial(line: str) -> bool:
    """Lines too generic to reveal anything (brackets, a bare return, a marker)."""
    return (not line or bool(re.fullmatch(r"[\[\](){},:;]*", line))
            or line in ("return", "pass", "else:", "try:", "break", "continue")
            or bool(_MARKER.match(line)))


def solution_lines(code_dir: Path = CODE_DIR) -> set[str]:
    """The stripped, non-trivial lines of every solution block that appear nowhere outside one.

    "Outside" covers the rest of ``code_dir`` and the grader modules the
    release ships for ``check.py``: a line the grader's harness also writes
    (``with tf.GradientTape() as tape:``) reveals nothing.
    """
    inside: set[str] = set()
    outside: set[str] = set()
    for module in SELF_CHECK_MODULES:
        shipped = strip_grader_only((PACKAGE_DIR / module).read_text(), module)
        outside.update(line.strip() for line in shipped.splitlines())
    for path in sorted(code_dir.glob("*.py")):
        lines = path.read_text().splitlines()
        in_block = set()
        for block in solution_blocks("\n".join(lines), path.name):
            in_block.update(range(block.begin + 1, block.end))
        for index, line in enumerate(lines):
            (inside if index in in_block else outside).add(line.strip())
    return {line for line in inside - outside if not _is_trivial(line)}


def find_leaks(release_dir: Path, code_dir: Path = CODE_DIR) -> list[str]:
    """Every solution line, solution marker or grader-only binary file in ``release_dir``."""
    secret = solution_lines(code_dir)
    leaks = []
    for path in sorted(p for p in Path(release_dir).rglob("*") if p.is_file()):
        name = path.relative_to(release_dir).as_posix()
        if path.suffix in FORBIDDEN_SUFFIXES:
            leaks.append(f"{name}: a grader-only binary file")
            continue
        try:
            lines = path.read_text().splitlines()
        except (UnicodeDecodeError, OSError):
            leaks.append(f"{name}: an unexpected binary file")
            continue
        for number, line in enumerate(lines, 1):
            if line.strip() in secret or _MARKER.match(line):
                leaks.append(f"{name}:{number}: {line.strip()}")
    return leaks


# The handout's points table, generated from CHECKS.


def points_table(checks: tuple[CheckSpec, ...] = CHECKS) -> str:
    """The Markdown table of the checks, their points and where each one runs."""
    rows = ["| check | points | what it does | runs in `check.py` |", "| --- | ---: | --- | --- |"]
    for spec in checks:
        local = "yes" if spec.key in UNIT_CHECKS else (
            "with `--training`" if spec.key == "vae_training" else "`--training` trains it; the score is the grader's")
        summary = spec.summary.replace("|", r"\|")
        rows.append(f"| {spec.name} | {spec.points:g} | {summary} | {local} |")
    rows.append(f"| **total** | **{sum(spec.points for spec in checks):g}** | | |")
    return "\n".join(rows)


def handout_with_table(text: str, table: str | None = None) -> str:
    """``text`` with the part between the points-table markers replaced by the current table."""
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ReleaseError(f"the handout has no {TABLE_BEGIN} ... {TABLE_END} markers for the points table")
    table = points_table() if table is None else table
    return f"{text[:begin + len(TABLE_BEGIN)]}\n{table}\n{text[end:]}"


def update_handout(path: Path = HANDOUT, write: bool = False) -> bool:
    """Whether the handout's points table matches CHECKS; with ``write``, rewrite it when not."""
    text = path.read_text()
    current = handout_with_table(text)
    if current == text:
        return True
    if write:
        _write_text_atomically(path, current)
    return False


# The release folder.


# Requirements only tests and development need: the student release leaves them out.
DEV_PACKAGES = re.compile(r"(pytest\S*|ruff|mypy|black|flake8|pylint|isort|coverage|hypothesis|pre-commit)"
                          r"\s*(\[.*\])?\s*([<>=!~;].*)?", re.IGNORECASE)
DEV_SECTION = re.compile(r"#\s*(tests?|testing|dev(elopment)?|lint(ing)?|ci|instructor)\b", re.IGNORECASE)


def runtime_requirements(text: str) -> str:
    """``requirements.txt`` without its test and development lines (a ``# Tests.`` section, pytest...)."""
    kept: list[str] = []
    in_dev_section = previous_is_comment = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            # A section's heading may take several comment lines; its first one names it.
            if not previous_is_comment:
                in_dev_section = bool(DEV_SECTION.match(stripped))
            if not in_dev_section:
                kept.append(line)
        elif not stripped:
            in_dev_section = False
            kept.append(line)
        elif not in_dev_section and not DEV_PACKAGES.fullmatch(stripped):
            kept.append(line)
        previous_is_comment = stripped.startswith("#")
    return "\n".join(kept).rstrip() + "\n"


def build_release(target: Path) -> None:
    """Write the student release into ``target`` (a new or empty folder)."""
    code = target / "hw" / "code"
    code.mkdir(parents=True, exist_ok=True)
    stencilled = set()
    for path in sorted(CODE_DIR.glob("*.py")):
        if path.name not in (*STENCIL_FILES, *RELEASED_PROVIDED):
            continue
        text = path.read_text()
        if solution_blocks(text, path.name):
            (code / path.name).write_text(make_stencil(text, path.name))
            stencilled.add(path.name)
        else:
            shutil.copyfile(path, code / path.name)
    unmarked = [name for name in STENCIL_FILES if name not in stencilled]
    if unmarked:
        raise ReleaseError(f"{', '.join(unmarked)} in {CODE_DIR} hold no {BEGIN_MARKER} block; "
                           "the release would ship the whole solution")
    package = code / SELF_CHECK_PACKAGE
    package.mkdir()
    for module in SELF_CHECK_MODULES:
        shipped = package / module
        shipped.parent.mkdir(exist_ok=True)
        (shipped.parent / "__init__.py").write_text(SELF_CHECK_INIT)
        shipped.write_text(strip_grader_only((PACKAGE_DIR / module).read_text(), module))
    (package / SELF_CHECK_EXPECTED).write_text(json.dumps(self_check_expected(), indent=1) + "\n")
    outputs = target / "hw" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / ".gitkeep").write_text("")
    (target / "handout.md").write_text(handout_with_table(HANDOUT.read_text()))
    (target / "requirements.txt").write_text(runtime_requirements((REPO_DIR / "requirements.txt").read_text()))
    shutil.copyfile(STUDENT_README, target / "README.md")


def _check_target(out_dir: Path, force: bool) -> None:
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise ReleaseError(f"{out_dir} exists and is not a folder; choose another OUT_DIR")
    protected = (REPO_DIR / "hw", PACKAGE_DIR, REPO_DIR / "tests")
    if REPO_DIR.is_relative_to(out_dir) or any(out_dir.is_relative_to(p) for p in protected):
        raise ReleaseError(f"{out_dir} would overwrite the course repository; choose a folder outside "
                           "hw/, autograder/ and tests/ (build/ is ignored by git)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ReleaseError(f"{out_dir} is not empty; pass --force to replace it")


def _replace_dir(staging: Path, out_dir: Path) -> None:
    """Move the finished ``staging`` folder to ``out_dir``, replacing what was there."""
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    # The old release moves aside first and is deleted only once the new one is in place.
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
    os.rename(out_dir, trash / out_dir.name)
    try:
        os.rename(staging, out_dir)
    except OSError:
        os.rename(trash / out_dir.name, out_dir)
        raise
    shutil.rmtree(trash, ignore_errors=True)


def _write_zip(folder: Path, zip_path: Path, top: str) -> None:
    """Zip ``folder``'s files under ``top/`` into ``zip_path``, via a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}-", dir=zip_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, zip_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_text_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_release(out_dir: Path, force: bool = False, make_zip: bool = False) -> Path:
    """Build the release next to ``out_dir`` and rename it into place; with ``make_zip``, also ``OUT_DIR.zip``.

    Refuses a non-empty ``out_dir`` (or an existing zip) unless ``force``.
    Returns the release folder.
    """
    out_dir = Path(os.path.abspath(out_dir))
    _check_target(out_dir, force)
    zip_path = out_dir.with_name(out_dir.name + ".zip")
    if make_zip and zip_path.exists() and not force:
        raise ReleaseError(f"{zip_path} exists; pass --force to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        build_release(staging)
        staging.chmod(0o755)
        if make_zip:
            _write_zip(staging, zip_path, out_dir.name)
        _replace_dir(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir


# check-release: grade the reference and the stencil of a fresh release.


@dataclass
class ReleaseCheck:
    """The reports of the reference and of the stencil, and every surprise found."""

    reference: Report
    stencil: Report
    problems: list[str] = field(default_factory=list)


def _short(text: str, width: int = 160) -> str:
    text = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def report_problems(reference: Report, stencil: Report) -> list[str]:
    """Surprises in the two reports: the reference must earn every point, the stencil none.

    Every check in CHECKS grades the student's work, so a stencil that earns
    a point means a check passes without the student's code, and a stencil
    that fails without naming a stub means the stencil itself is broken.
    """
    problems = []
    for who, report in (("reference solution", reference), ("stencil", stencil)):
        if report.error:
            problems.append(f"grading the {who} failed: {report.error}")
        if len(report.tests) != len(CHECKS):
            problems.append(f"the {who}'s report has {len(report.tests)} checks, CHECKS has {len(CHECKS)}")
    for test in reference.tests:
        if test.score < test.max_score:
            problems.append(f"the reference solution earns {test.score:g}/{test.max_score:g} on "
                            f"{test.name}: {_short(test.output)}")
    for test in stencil.tests:
        if test.score > 0:
            problems.append(f"the stencil earns {test.score:g}/{test.max_score:g} on {test.name}: "
                            f"{_short(test.output)}")
        elif "NotImplementedError" not in test.output:
            problems.append(f"the stencil fails {test.name} without reaching a stub: {_short(test.output)}")
    return problems


def check_release(config: GradeConfig, log=print) -> ReleaseCheck:
    """Build a release in a temporary folder, grade the reference and the stencil, list the surprises.

    Raises GraderError when the grader itself cannot run (no MNIST, no classifier).
    """
    from autograder.grading.grade import grade

    with tempfile.TemporaryDirectory(prefix="check-release-") as work:
        work = Path(work)
        release = work / "release"
        build_release(release)
        problems = [f"the release leaks {leak}" for leak in find_leaks(release)]
        if not update_handout():
            problems.append("the points table of handout.md differs from CHECKS "
                            "(run python -m autograder handout-table --write)")
        reference = work / "reference"
        reference.mkdir()
        for name in STENCIL_FILES:
            shutil.copyfile(CODE_DIR / name, reference / name)
        log("grading the reference solution")
        reference_report = grade(reference, work / "results-reference.json", config, log)
        log("grading the stencil")
        stencil_report = grade(release / "hw" / "code", work / "results-stencil.json", config, log)
    problems += report_problems(reference_report, stencil_report)
    return ReleaseCheck(reference_report, stencil_report, problems)
