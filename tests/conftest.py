import sys
from pathlib import Path

# The course code lives in hw/code as plain modules, not an installed package.
_CODE_DIR = str(Path(__file__).resolve().parents[1] / "hw" / "code")
if _CODE_DIR not in sys.path:
    sys.path.insert(0, _CODE_DIR)

