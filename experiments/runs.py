"""Configuration, data, models, training and resumable runs behind ``python -m experiments``.

A *run* is one trained model: its weights, its per-epoch history and its
test metrics, in ``<outputs_dir>/runs/<name>/``. ``metrics.json`` is written
last, so a run whose ``metrics.json`` exists (with the same settings) is
finished and is skipped when the experiment is run again.

Images inside the training step are ``(N, 1, 28, 28)`` float32 in [0, 1].
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from training import (
    DEFAULT_LATENT_SIZE,
    DEFAULT_OUTPUTS_DIR,
    INPUT_SIZE,
    NUM_CLASSES,
    NonFiniteLossError,
    UsageError,
    learning_rate_schedule,
    progress_bar,
    save_weights_atomically,
)

from . import datasets
from .likelihoods import BINARIZATIONS, LIKELIHOODS, static_binarize

EXPERIMENTS = ("beta-sweep", "anneal", "traverse", "manifold", "compare-ae", "evaluate")
ARCHITECTURES = ("mlp", "conv")
DEFAULT_BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)

# --quick: a small subset and budget, so that every experiment ends within a minute on 2 cores.
QUICK_TRAIN_IMAGES = 2000
QUICK_TEST_IMAGES = 500
QUICK_EPOCHS = 3
QUICK_IW_SAMPLES = 10
# Active units are tracked during training on this many test images.
TRACKING_IMAGES = 1000


@dataclass
class ExperimentConfig:
    """Every option of ``python -m experiments``; the CLI is built from these fields and defaults."""

    experiment: str = "evaluate"
    dataset: str = "mnist"
    data_dir: str | None = None
    arch: str = "mlp"
    cvae: bool = False
    latent_size: int | None = None
    beta: float = 1.0
    betas: list[float] = field(default_factory=lambda: list(DEFAULT_BETAS))
    kl_warmup_epochs: float = 0.0
    kl_hold_epochs: float = 0.0
    likelihood: str = "bernoulli"
    sigma: float = 0.1
    binarize: str = "none"
    batch_size: int = 128
    num_epochs: int = 10
    learning_rate: float = 2e-3
    iw_samples: int = 100
    weights: str | None = None
    quick: bool = False
    outputs_dir: str | None = None
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latent_size is None:
            self.latent_size = DEFAULT_LATENT_SIZE["cvae" if self.cvae else "vae"]
        if self.outputs_dir is None:
            self.outputs_dir = str(DEFAULT_OUTPUTS_DIR / self.experiment)
        if self.quick:
            self.num_epochs = min(self.num_epochs, QUICK_EPOCHS)
            self.iw_samples = min(self.iw_samples, QUICK_IW_SAMPLES)
        self.validate()

    def validate(self) -> None:
        """Raise UsageError (one line) for a value no run can use."""
        if self.experiment not in EXPERIMENTS:
            raise UsageError(f"unknown experiment {self.experiment!r}; choose from {', '.join(EXPERIMENTS)}")
        if self.arch not in ARCHITECTURES:
            raise UsageError(f"--arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.likelihood not in LIKELIHOODS:
            raise UsageError(f"--likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.binarize not in BINARIZATIONS:
            raise UsageError(f"--binarize must be one of {BINARIZATIONS}, got {self.binarize!r}")
        if not datasets.is_known(self.dataset):
            raise UsageError(f"--dataset must be one of {', '.join(datasets.DATASETS)}, got {self.dataset!r}")
        for name in ("beta", "kl_warmup_epochs", "kl_hold_epochs"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"--{name} must be a finite number >= 0, got {value}")
        if any(not (math.isfinite(b) and b >= 0) for b in self.betas) or not self.betas:
            raise UsageError(f"--betas must be finite numbers >= 0, got {self.betas}")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise UsageError(f"--sigma must be a positive number, got {self.sigma}")
        if self.weights is not None and not Path(self.weights).is_file():
            raise UsageError(f"--weights: no file at {self.weights}")

    @property
    def model_name(self) -> str:
        return "cvae" if self.cvae else "vae"


@dataclass(frozen=True)
class RunSpec:
    """The settings that make one trained model differ from another within an experiment."""

    name: str
    beta: float
    kl_warmup_epochs: float
    kl_hold_epochs: float
    latent_size: int


@dataclass
class Data:
    """Training and test images (uint8 (N, 28, 28), binarized when asked) and labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    num_classes: int = NUM_CLASSES

    def test_floats(self) -> np.ndarray:
        """The test images as (N, 1, 28, 28) float32 in [0, 1]."""
        return self.test_images[:, None].astype(np.float32) / 255.0


# ---------------------------------------------------------------------------
# KL weight
# ---------------------------------------------------------------------------


def kl_weight(epoch_progress: float, beta: float, warmup_epochs: float, hold_epochs: float) -> float:
    """Weight of the KL term after ``epoch_progress`` epochs of training (0 at the first step).

    0 during the first ``hold_epochs``, then a linear ramp from 0 to ``beta``
    over ``warmup_epochs``, then ``beta``. Without a warm-up the weight is
    ``beta`` from the first step (after any hold).
    """
    if epoch_progress < hold_epochs:
        return 0.0
    if warmup_epochs <= 0:
        return float(beta)
    return float(beta * min(1.0, (epoch_progress - hold_epochs) / warmup_epochs))


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def load_data(config: ExperimentConfig) -> Data:
    """The dataset named by ``config.dataset``, subsampled for --quick and binarized as asked."""
    arrays, source, num_classes = datasets.load(config.dataset, config.data_dir)
    if config.cvae and num_classes != NUM_CLASSES:
        raise UsageError(f"--cvae needs {NUM_CLASSES} classes; {config.dataset} has {num_classes}")
    if config.quick:
        arrays = {
            "train_images": arrays["train_images"][:QUICK_TRAIN_IMAGES],
            "train_labels": arrays["train_labels"][:QUICK_TRAIN_IMAGES],
            "test_images": arrays["test_images"][:QUICK_TEST_IMAGES],
            "test_labels": arrays["test_labels"][:QUICK_TEST_IMAGES],
        }
    if config.binarize == "static":
        arrays["train_images"] = static_binarize(arrays["train_images"], config.seed)
    if config.binarize != "none":
        # The test set is binarized once, with its own fixed seed, so that every
        # run of every experiment is evaluated on the same binary images.
        arrays["test_images"] = static_binarize(arrays["test_images"], 12345)
    return Data(source=source, num_classes=num_classes, **arrays)


# ---------------------------------------------------------------------------
# Models and training
# ---------------------------------------------------------------------------


def build_model(config: ExperimentConfig, latent_size: int):
    """The VAE or CVAE of ``config.arch``, called once on a dummy batch so that its weights exist."""
    import tensorflow as tf

    if config.arch == "conv":
        from .conv_models import ConvCVAE as CVAE, ConvVAE as VAE
    else:
        from vae import CVAE, VAE
    images = tf.zeros((1, 1, 28, 28))
    if config.cvae:
        model = CVAE(INPUT_SIZE, num_classes=NUM_CLASSES, latent_size=latent_size)
        model(images, tf.one_hot([0], NUM_CLASSES))
    else:
        model = VAE(INPUT_SIZE, latent_size=latent_size)
        model(images)
    return model


@dataclass
class EpochLog:
    """Averages per training image over one epoch, and the active units after it."""

    epoch: int
    negative_elbo: float
    reconstruction: float
    kl: float
    kl_weight: float
    active_units: int
    seconds: float


def format_epoch(record: EpochLog, num_epochs: int) -> str:
    return (
        f"epoch {record.epoch:>{len(str(num_epochs))}}/{num_epochs}: negative ELBO "
        f"{record.negative_elbo:.2f} (reconstruction {record.reconstruction:.2f}, KL {record.kl:.2f}), "
        f"KL weight {record.kl_weight:.3g}, active units {record.active_units}  [{record.seconds:.1f} s]"
    )


def train(model, data: Data, config: ExperimentConfig, run: RunSpec, log: Callable[[str], None]
          ) -> list[EpochLog]:
    """Train ``model`` on ``data`` with the run's β schedule; returns the per-epoch log.

    The objective per image is ``reconstruction + w * KL`` with ``w`` from
    ``kl_weight``, updated at every step. Raises NonFiniteLossError.
    """
    import keras
    import tensorflow as tf

    from mnist_data import make_dataset

    from .likelihoods import dynamic_binarize, kl_per_dimension, reconstruction_nll
    from .metrics import active_units, posterior_stats

    dataset = make_dataset(data.train_images, data.train_labels, config.batch_size,
                           buffer_size=len(data.train_labels), seed=config.seed)
    steps = int(dataset.cardinality())
    optimizer = keras.optimizers.Adam(learning_rate_schedule(config, steps))
    optimizer.build(model.trainable_variables)
    weight = tf.Variable(0.0, trainable=False)
    dynamic = config.binarize == "dynamic"

    # XLA compilation costs seconds per model, which a --quick run does not win back.
    @tf.function(jit_compile=not config.quick)
    def step(x, labels):
        if dynamic:
            x = dynamic_binarize(x)
        with tf.GradientTape() as tape:
            if config.cvae:
                x_hat, mu, logvar = model(x, tf.one_hot(labels, NUM_CLASSES))
            else:
                x_hat, mu, logvar = model(x)
            reconstruction = tf.reduce_mean(reconstruction_nll(x, x_hat, config.likelihood, config.sigma))
            kl = tf.reduce_mean(tf.reduce_sum(kl_per_dimension(mu, logvar), axis=-1))
            loss = reconstruction + weight * kl
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return reconstruction, kl

    tracked = data.test_floats()[:TRACKING_IMAGES]
    tracked_labels = data.test_labels[:TRACKING_IMAGES]
    history: list[EpochLog] = []
    for epoch in range(1, config.num_epochs + 1):
        start = time.perf_counter()
        totals = np.zeros(2)
        for index, (x, labels) in enumerate(progress_bar(dataset, f"{run.name} epoch {epoch}")):
            progress = epoch - 1 + index / steps
            weight.assign(kl_weight(progress, run.beta, run.kl_warmup_epochs, run.kl_hold_epochs))
            reconstruction, kl = step(x, labels)
            totals += (float(reconstruction), float(kl))
            if not np.all(np.isfinite(totals)):
                raise NonFiniteLossError(batch=index + 1, epoch=epoch)
        mu, _ = posterior_stats(model, tracked, tracked_labels, config.cvae)
        reconstruction, kl = totals / steps
        record = EpochLog(epoch, reconstruction + kl, reconstruction, kl, float(weight.numpy()),
                          active_units(mu)[0], time.perf_counter() - start)
        history.append(record)
        log(format_epoch(record, config.num_epochs))
    return history


# ---------------------------------------------------------------------------
# Resumable runs
# ---------------------------------------------------------------------------


def write_json_atomically(value, path: Path) -> Path:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as file:
        json.dump(value, file, indent=1)
    os.replace(tmp, path)
    return path


def write_text_atomically(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(tmp, path)
    return path


def run_fingerprint(config: ExperimentConfig, run: RunSpec) -> str:
    """A hash of every setting that changes what a run trains or measures."""
    settings = dataclasses.asdict(config)
    for ignored in ("experiment", "betas", "outputs_dir", "device", "data_dir", "beta",
                    "kl_warmup_epochs", "kl_hold_epochs", "latent_size"):
        settings.pop(ignored)
    if config.weights is not None:
        settings["weights"] = hashlib.sha256(Path(config.weights).read_bytes()).hexdigest()
    settings["run"] = dataclasses.asdict(run)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class RunResult:
    """A finished run: its model (weights loaded), per-epoch log and test metrics."""

    spec: RunSpec
    model: object
    history: list[EpochLog]
    metrics: dict
    folder: Path
    skipped: bool


def run_folder(config: ExperimentConfig, run: RunSpec) -> Path:
    return Path(config.outputs_dir) / "runs" / run.name


def execute_run(config: ExperimentConfig, run: RunSpec, data: Data, evaluate: Callable,
                log: Callable[[str], None] = print) -> RunResult:
    """Train and evaluate ``run``, or load it when a finished run with the same settings exists.

    ``evaluate(model, run) -> dict`` computes the metrics. With
    ``config.weights`` the weights are loaded from that file instead of trained.
    """
    folder = run_folder(config, run)
    weights = folder / "weights.weights.h5"
    metrics_path = folder / "metrics.json"
    fingerprint = run_fingerprint(config, run)
    model = build_model(config, run.latent_size)
    if metrics_path.is_file() and weights.is_file():
        saved = json.loads(metrics_path.read_text())
        if saved.get("fingerprint") == fingerprint:
            model.load_weights(weights)
            log(f"{run.name}: finished earlier, skipped (delete {folder} to redo it)")
            history = [EpochLog(**record) for record in saved["history"]]
            return RunResult(run, model, history, saved["metrics"], folder, skipped=True)
        log(f"{run.name}: settings changed since the saved run; training it again")
    start = time.perf_counter()
    if config.weights is not None:
        model.load_weights(config.weights)
        log(f"{run.name}: loaded weights from {config.weights}")
        history: list[EpochLog] = []
    else:
        log(f"{run.name}: training (β {run.beta:g}, warm-up {run.kl_warmup_epochs:g} epochs, "
            f"hold {run.kl_hold_epochs:g}, Z {run.latent_size}, {config.num_epochs} epochs)")
        history = train(model, data, config, run, log)
    train_seconds = time.perf_counter() - start
    save_weights_atomically(model, weights)
    start = time.perf_counter()
    metrics = evaluate(model, run)
    metrics["train_seconds"] = train_seconds
    metrics["evaluate_seconds"] = time.perf_counter() - start
    write_json_atomically(
        {"fingerprint": fingerprint, "run": dataclasses.asdict(run),
         "history": [dataclasses.asdict(r) for r in history], "metrics": metrics},
        metrics_path,
    )
    return RunResult(run, model, history, metrics, folder, skipped=False)
