"""Load and verify MNIST once so that grading starts from the verified cache.

Usage: ``python -m autograder.tools.fetch_data`` (``setup.sh`` runs it on Gradescope).
"""

from __future__ import annotations

import sys

from autograder.paths import ensure_code_on_path


def main() -> int:
    ensure_code_on_path()
    from mnist_data import DataError, load_arrays

    try:
        arrays = load_arrays()
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"MNIST ready: {len(arrays.train_labels)} training and {len(arrays.test_labels)} test images "
          f"({arrays.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
