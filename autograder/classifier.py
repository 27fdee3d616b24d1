"""The pretrained MNIST classifier that scores generated digits.

Trained by ``python -m autograder.train_classifier``; its SHA-256 is recorded
here and checked on every load, so a changed file is never trusted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from autograder.paths import PACKAGE_DIR

CLASSIFIER_PATH = PACKAGE_DIR / "classifier.keras"
CLASSIFIER_SHA256 = "945ce6c3b93d5a71b46791cb747b3d744b999ad85be5bc65b6556e4ead8abd38"


class ClassifierError(Exception):
    """The classifier file is missing or is not the recorded one."""


def load_classifier(path: Path = CLASSIFIER_PATH, sha256: str | None = None):
    """Load the classifier after checking its SHA-256 against the recorded value."""
    import keras

    expected = CLASSIFIER_SHA256 if sha256 is None else sha256
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"classifier not found at {path}; run python -m autograder.train_classifier")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ClassifierError(
            f"classifier {path} has SHA-256 {digest}, expected {expected}; "
            "restore the file or retrain it and record the new hash"
        )
    return keras.models.load_model(path, compile=False)


def predict_digits(classifier, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class probabilities of ``images`` (N, 1, 28, 28) in [0, 1]; returns (N, 10) float32."""
    import tensorflow as tf

    channels_last = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
    logits = classifier.predict(channels_last, batch_size=batch_size, verbose=0)
    return tf.nn.softmax(logits).numpy()
