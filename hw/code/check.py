"""Check your functions with the autograder's own checks, on your machine.

Usage (from this folder)::

    python check.py                  # the unit checks of every function, in seconds
    python check.py --training       # and the grader's training of your VAE and CVAE (minutes)
    python check.py --training --small   # the same with the grader's small budget, a quick try
    python check.py --data_dir DIR   # MNIST from DIR (as in assignment.py)

The unit checks run your code in a child process, so a crash still leaves a report. ``--training``
trains your VAE and CVAE exactly as the grader does and gives its feedback; the grader's classifier
stays with the grader, so the CVAE's samples are saved as outputs/check_cvae_samples.png for you to
judge. The checks are the grader's code, in ``_selfcheck/``: do not edit it.
"""

import sys
from pathlib import Path

CODE_DIR = Path(__file__).resolve().parent


def main(argv=None) -> int:
    if (CODE_DIR / "_selfcheck").is_dir():
        from _selfcheck import selfcheck
    else:
        # In the course repository the checks are the autograder package itself.
        repo = CODE_DIR.parent.parent
        if not (repo / "autograder" / "selfcheck.py").is_file():
            print(f"error: the _selfcheck folder is missing from {CODE_DIR}; copy it back from the "
                  "assignment's release", file=sys.stderr)
            return 2
        sys.path.insert(0, str(repo))
        from autograder import selfcheck
    return selfcheck.main(argv, code_dir=CODE_DIR)


if __name__ == "__main__":
    sys.exit(main())
