"""Where the grader's files and the assignment's code live."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
CODE_DIR = REPO_DIR / "hw" / "code"


def ensure_code_on_path() -> None:
    """Make the assignment's provided modules (``mnist_data``, ...) importable in the grader."""
    if str(CODE_DIR) not in sys.path:
        sys.path.insert(0, str(CODE_DIR))
