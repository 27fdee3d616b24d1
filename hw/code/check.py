"""Check your functions with the autograder's own checks, on your machine.

Usage (from this folder)::

    python check.py                  # the unit checks of every function, in seconds
    python check.py --training       # and the grader's training of your VAE and CVAE (minutes)
    python check.py --training --small   # the same with the grader's small budget, a quick try
    python check.py --data_dir DIR   # MNIST from DIR (as in assignment.py)

The unit checks run your vae.py and assignment.py in a child process, so a
crash still leaves a report, and print for each check whether it passes and,
if not, the grader's feedback. ``--training`` then trains your VAE and CVAE
exactly as the grader does (its latent sizes, learning rate schedule, batch
size, epoch caps and time limit) with your train_vae and gives the grader's
feedback on "VAE training". The grader's classifier stays with the grader:
the CVAE's samples for the grader's codes are saved as a picture
(outputs/check_cvae_samples.png) for you to judge.

The checks are the grader's code, in ``_selfcheck/``: do not edit it.
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
