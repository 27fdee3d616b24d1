"""``build-zip``: the Gradescope autograder archive (setup.sh, run_autograder and the grader)."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import zipfile
from pathlib import Path

from autograder.config import DEFAULT_TIME_LIMIT_SECONDS, DEPLOYMENT_FILE
from autograder.grading.submission import PROVIDED_MODULES
from autograder.paths import CODE_DIR, PACKAGE_DIR, REPO_DIR

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image; AUTOGRADER_ROOT lets a bench deploy it
# elsewhere.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="${AUTOGRADER_ROOT:-/autograder}"
apt-get update -q && apt-get install -y -q python3 python3-venv python3-pip
# The interpreter apt installed, not whichever python3 comes first on PATH: one under a private folder
# (a pyenv under /root) cannot be started by the unprivileged user that runs the submission's code.
/usr/bin/python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/python" -m pip install -q --upgrade pip
"$ROOT/venv/bin/python" -m pip install -q -r autograder/requirements.txt
# Put verified MNIST arrays in the grader's cache (Keras's download works on Gradescope).
VAE_KIT_CACHE_DIR="$ROOT/cache" "$ROOT/venv/bin/python" -m autograder.tools.fetch_data
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; AUTOGRADER_ROOT lets a test run it elsewhere.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
export VAE_KIT_CACHE_DIR="${VAE_KIT_CACHE_DIR:-$ROOT/cache}"
cd "$ROOT/source"
mkdir -p "$ROOT/results"
"$PYTHON" -m autograder grade "$ROOT/submission" --results "$ROOT/results/results.json" "$@"
status=$?
if [ "$status" -ne 0 ]; then
    # A grader killed from outside (the container's out-of-memory killer) wrote no final results: complete
    # the provisional ones it kept with what stopped it.
    "$PYTHON" -m autograder finish-grade --results "$ROOT/results/results.json" --exit-status "$status"
fi
exit "$status"
"""


def archive_members() -> dict[str, Path]:
    """Zip name -> file on disk: the grader package, the classifier, the reference solution's statistics
    (``reference_stats.json``) and the provided modules."""
    members = {}
    for path in sorted(PACKAGE_DIR.rglob("*")):
        inside = path.relative_to(PACKAGE_DIR)
        if path.suffix in (".py", ".keras", ".txt", ".json") and path.is_file() and "__pycache__" not in inside.parts \
                and path != DEPLOYMENT_FILE:
            members[f"autograder/{inside.as_posix()}"] = path
    for module in PROVIDED_MODULES:
        members[f"hw/code/{module}"] = CODE_DIR / module
    members["requirements.txt"] = REPO_DIR / "requirements.txt"
    return members


def unpack(archive_path: Path, folder: Path) -> Path:
    """Unpack the zip at ``archive_path`` into ``folder`` (``/autograder/source`` on Gradescope) with the modes
    it records, which ``ZipFile.extractall`` drops (``setup.sh`` and ``run_autograder`` are executable)."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            archive.extract(info, folder)
            os.chmod(folder / info.filename, (info.external_attr >> 16) or 0o644)
    return folder


def build_zip(out: Path, time_limit_minutes: float = DEFAULT_TIME_LIMIT_SECONDS / 60) -> Path:
    """Write the Gradescope autograder zip to ``out`` (atomically) and return its path.

    ``time_limit_minutes``: the autograder timeout set on Gradescope, recorded in the zip
    (``config.DEPLOYMENT_FILE``) so that every grade plans its budget to it.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".autograder-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o755 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, text)
            for name, path in archive_members().items():
                archive.write(path, name)
            archive.writestr(f"autograder/{DEPLOYMENT_FILE.name}",
                             json.dumps({"time_limit_seconds": time_limit_minutes * 60}) + "\n")
            # A fresh secret per archive (never in the student release): every input of every grade is
            # drawn from it and the submission's files (grade.grade_seeds).
            secret = zipfile.ZipInfo("autograder/secret")
            secret.external_attr = 0o600 << 16
            archive.writestr(secret, secrets.token_hex(32) + "\n")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out
