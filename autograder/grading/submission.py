"""Finding a submission's files and copying them into a fresh sandbox folder."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

from autograder.paths import CODE_DIR, PACKAGE_DIR

REQUIRED_FILES = ("vae.py", "assignment.py")
# Provided modules of the stencil that a submission's assignment.py imports; the
# grader supplies its own copy when the submission does not include one.
PROVIDED_MODULES = ("mnist_data.py", "training.py", "figures.py")
HARNESS_SOURCE = PACKAGE_DIR / "children" / "harness.py"
HARNESS_NAME = "_grader_harness.py"

MAX_FILES = 2_000
MAX_TOTAL_BYTES = 100 * 2**20


class SubmissionError(Exception):
    """The submission cannot be graded at all (a missing file, a bad zip); the message says why."""


def _find_root(names: list[str]) -> str:
    """The folder (relative, '' for the top) that holds the required files, at the top or one level down."""
    candidates = {""} | {name.split("/", 1)[0] + "/" for name in names if "/" in name}
    for root in sorted(candidates, key=len):
        if all(f"{root}{required}" in names for required in REQUIRED_FILES):
            return root
    present = [r for r in REQUIRED_FILES if any(n.rsplit("/", 1)[-1] == r for n in names)]
    missing = [r for r in REQUIRED_FILES if r not in present]
    if missing:
        raise SubmissionError(f"the submission has no {' or '.join(missing)}: submit vae.py and "
                              "assignment.py at the top of the folder or zip.")
    raise SubmissionError("vae.py and assignment.py must sit together at the top of the submission "
                          "(or in one folder inside it).")


def _zip_names(archive: zipfile.ZipFile) -> list[str]:
    names = []
    total = 0
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        if info.is_dir() or name.startswith("__MACOSX/"):
            continue
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or ":" in parts[0]:
            raise SubmissionError(f"the zip holds an unsafe path {name!r}; zip the files themselves.")
        if stat.S_ISLNK(info.external_attr >> 16):
            continue
        total += info.file_size
        names.append(name)
    if len(names) > MAX_FILES or total > MAX_TOTAL_BYTES:
        raise SubmissionError(f"the submission is too large ({len(names)} files, {total / 2**20:.0f} MB); "
                              "submit only your code.")
    return names


def _folder_names(folder: Path) -> list[str]:
    """The regular files under ``folder``, skipping hidden ones and anything reached through a link."""
    names = []
    real_folder = folder.resolve()
    for path in folder.rglob("*"):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or not path.is_file() or "/." in f"/{relative}":
            continue
        if not path.resolve().is_relative_to(real_folder):
            continue
        names.append(relative)
        if len(names) > MAX_FILES:
            raise SubmissionError("the submission folder holds too many files; submit only your code.")
    return names


def _copy_members(names: list[str], open_member, sandbox: Path) -> list[str]:
    """Copy the files under the submission's root folder into ``sandbox``; returns their names there."""
    root = _find_root(names)
    copied = []
    for name in names:
        if name.startswith(root):
            target = sandbox / name[len(root):]
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_member(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            copied.append(name[len(root):])
    return copied


def copy_submission(source: Path, sandbox: Path) -> list[str]:
    """Copy the submission's files (the folder that holds vae.py) into ``sandbox``.

    Symbolic links are skipped, never followed. Returns the copied file names.
    Also copies the harness and any provided module the submission lacks.
    """
    source = Path(source)
    sandbox.mkdir(parents=True, exist_ok=True)
    if source.is_file() and zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                copied = _copy_members(_zip_names(archive), archive.open, sandbox)
        except (zipfile.BadZipFile, OSError, RuntimeError) as error:
            raise SubmissionError(f"the zip could not be read ({error}); zip vae.py and assignment.py again.")
    elif source.is_dir():
        copied = _copy_members(_folder_names(source), lambda name: open(source / name, "rb"), sandbox)
    else:
        raise SubmissionError(f"{source} is neither a folder nor a zip file.")
    for module in PROVIDED_MODULES:
        if not (sandbox / module).exists():
            shutil.copyfile(CODE_DIR / module, sandbox / module)
    shutil.copyfile(HARNESS_SOURCE, sandbox / HARNESS_NAME)
    return sorted(copied)
