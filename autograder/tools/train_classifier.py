"""Train the autograder's MNIST classifier and store it as ``autograder/classifier.keras``.

Usage: ``python -m autograder.tools.train_classifier [--epochs 6] [--data_dir DIR]``.
Prints the test accuracy and the SHA-256 to record in ``autograder/scoring/classifier.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from autograder.paths import ensure_code_on_path
from autograder.scoring.classifier import CLASSIFIER_PATH


def build_classifier():
    """A small CNN: two 3x3 convolution pairs with max-pooling, then a dense layer.

    Input (N, 28, 28, 1) float32 in [0, 1]; output (N, 10) logits.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(10),
        ],
        name="mnist_classifier",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CLASSIFIER_PATH)
    args = parser.parse_args(argv)

    ensure_code_on_path()
    import keras

    from mnist_data import load_arrays

    keras.utils.set_random_seed(args.seed)
    arrays = load_arrays(args.data_dir)
    x_train = arrays.train_images[..., None].astype("float32") / 255.0
    x_test = arrays.test_images[..., None].astype("float32") / 255.0
    model = build_classifier()
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, arrays.train_labels, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_test, arrays.test_labels), verbose=2)
    _, accuracy = model.evaluate(x_test, arrays.test_labels, verbose=0)

    # Store the weights without the optimizer state: the file is then well under 2 MB.
    inference = keras.Sequential(model.layers, name="mnist_classifier")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".keras")
    os.close(fd)
    inference.save(tmp)
    os.replace(tmp, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"test accuracy {accuracy:.4f}; wrote {args.out} ({args.out.stat().st_size} bytes)")
    print(f"CLASSIFIER_SHA256 = \"{digest}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
