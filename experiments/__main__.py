"""``python -m experiments``: the command line of ``experiments.cli``."""

import sys

from experiments.cli import main

sys.exit(main())
