"""Instructor-only experiments beyond the assignment: β-VAE, KL annealing, likelihoods, conv models, metrics.

Run from the repository root as ``python -m experiments EXPERIMENT [options]``
(see ``experiments.cli``). Nothing here ships to students: the release tool
copies only listed files from ``hw/code``.

The package uses the assignment's modules (``vae``, ``training``, ``figures``,
``mnist_data``) through their public names. Those are plain modules in
``hw/code`` that import one another by bare name (``from vae import VAE``),
because students run them as scripts from that folder; so this is the one
place that puts ``hw/code`` on ``sys.path``, before any module of the package
imports them.
"""

import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
CODE_DIR = REPO_DIR / "hw" / "code"

if str(CODE_DIR) not in sys.path:
    sys.path.insert(0, str(CODE_DIR))
