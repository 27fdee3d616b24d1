"""Experiments beyond the assignment: β-VAE, KL annealing, likelihoods, conv models, metrics, figures.

    python -m experiments beta-sweep --betas 0 0.5 1 2 4 8
    python -m experiments anneal --kl_warmup_epochs 5
    python -m experiments traverse | manifold | compare-ae | evaluate [--quick]

Everything here is optional: ``assignment.py`` and the student API are unchanged.
Results go to ``--outputs_dir`` (default ``hw/outputs/<experiment>/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import Callable

from training import UsageError

from .likelihoods import BINARIZATIONS, LIKELIHOODS
from .runs import ARCHITECTURES, EXPERIMENTS, ExperimentConfig

PROG = "python -m experiments"


def positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a finite number of ``kind`` greater than 0."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def non_negative(text: str) -> float:
    """An argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line; every default comes from ``ExperimentConfig``."""
    d = ExperimentConfig()
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--dataset", default=d.dataset, help="mnist, fashion_mnist or tfds:NAME")
    parser.add_argument("--data_dir", default=None,
                        help="folder with the dataset's IDX files (or tensorflow-datasets' data_dir)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=d.arch)
    parser.add_argument("--cvae", action="store_true", help="the conditional VAE")
    parser.add_argument("--latent_size", type=positive(int), default=None)
    parser.add_argument("--beta", type=non_negative, default=d.beta,
                        help="weight of the KL term (0: a plain autoencoder)")
    parser.add_argument("--betas", type=non_negative, nargs="+", default=d.betas,
                        help="the β values of beta-sweep")
    parser.add_argument("--kl_warmup_epochs", type=non_negative, default=d.kl_warmup_epochs,
                        help="epochs of the linear ramp of the KL weight from 0 to β")
    parser.add_argument("--kl_hold_epochs", type=non_negative, default=d.kl_hold_epochs,
                        help="epochs at KL weight 0 before the ramp")
    parser.add_argument("--likelihood", choices=LIKELIHOODS, default=d.likelihood)
    parser.add_argument("--sigma", type=positive(float), default=d.sigma,
                        help="standard deviation of the Gaussian likelihood")
    parser.add_argument("--binarize", choices=BINARIZATIONS, default=d.binarize)
    parser.add_argument("--batch_size", type=positive(int), default=d.batch_size)
    parser.add_argument("--num_epochs", type=positive(int), default=d.num_epochs)
    parser.add_argument("--learning_rate", type=positive(float), default=d.learning_rate)
    parser.add_argument("--iw_samples", type=positive(int), default=d.iw_samples,
                        help="K of the importance-weighted likelihood estimate")
    parser.add_argument("--weights", default=None,
                        help="evaluate: load these weights (e.g. hw/outputs/vae.weights.h5) instead of training")
    parser.add_argument("--quick", action="store_true",
                        help="a small subset and budget (under a minute)")
    parser.add_argument("--outputs_dir", default=None, help="default hw/outputs/<experiment>")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default=d.device)
    parser.add_argument("--seed", type=int, default=d.seed)
    return parser


def parse_config(argv: list[str] | None = None) -> ExperimentConfig:
    """The command line as an ExperimentConfig; raises UsageError for inconsistent values."""
    args = build_parser().parse_args(argv)
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    return ExperimentConfig(**{k: v for k, v in vars(args).items() if k in names})


def load_scorer():
    """The autograder's classifier as a Scorer, or ``(None, why)`` when its file is not there.

    A classifier file that is there but cannot be loaded (changed, corrupted)
    raises ClassifierError: skipping the score would hide the fault.
    """
    # The autograder package sits beside this one at the repository root, so it
    # imports whenever this package does; the classifier's file may still be missing.
    from autograder.scoring import classifier

    from .commands import Scorer

    path = classifier.CLASSIFIER_PATH
    if not path.is_file():
        return None, (f"Classifier accuracy skipped: there is no classifier at {path} "
                      "(python -m autograder.tools.train_classifier trains one).")
    try:
        model = classifier.load_classifier(path)
    except Exception as error:
        # Keras's own messages may span lines; the command's error is one line.
        reason = " ".join(str(error).split()) or type(error).__name__
        raise classifier.ClassifierError(f"the classifier that scores the CVAE's samples could not be loaded: "
                                         f"{reason}") from error
    return Scorer(model, classifier.predict_digits), ""


def main(argv: list[str] | None = None) -> int:
    """Run the experiment the command line names; returns the exit status.

    2: a usage or data error; 1: the loss became NaN, or the classifier's file is there but cannot be loaded.
    """
    from autograder.scoring.classifier import ClassifierError
    from mnist_data import DataError
    from training import NonFiniteLossError, select_device, seed_everything

    try:
        config = parse_config(argv)
        print(f"Device: {select_device(config.device)}")
        seed_everything(config.seed)
        scorer, note = load_scorer() if config.cvae else (None, "")
        from .commands import run_experiment

        run_experiment(config, scorer, note)
    except (UsageError, DataError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except (NonFiniteLossError, ClassifierError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    return 0

