"""The pretrained MNIST classifier that scores generated digits.

Trained by ``python -m autograder.tools.train_classifier``; its SHA-256 is recorded
here and checked on every load, so a changed file is never trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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

    _verified_bytes(Path(path), CLASSIFIER_SHA256 if sha256 is None else sha256)
    return keras.models.load_model(path, compile=False)


def _verified_bytes(path: Path, expected: str) -> bytes:
    """The file's bytes, after checking that their SHA-256 is ``expected``."""
    if not path.is_file():
        raise ClassifierError(f"classifier not found at {path}; run python -m autograder.tools.train_classifier")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ClassifierError(
            f"classifier {path} has SHA-256 {digest}, expected {expected}; "
            "restore the file or retrain it and record the new hash"
        )
    return data


def predict_digits(classifier, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class probabilities of ``images`` (N, 1, 28, 28) in [0, 1]; returns (N, 10) float32."""
    import tensorflow as tf

    channels_last = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
    logits = classifier.predict(channels_last, batch_size=batch_size, verbose=0)
    return tf.nn.softmax(logits).numpy()


# The grader's own process scores samples with the classifier's weights in NumPy: it never imports
# TensorFlow (a second TensorFlow process would not fit beside a training child in Gradescope's
# 768 MB), and its forward pass is small (4 convolutions, 2 poolings, 2 dense layers).
_ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "linear": lambda x: x}


@dataclass(frozen=True)
class NumpyClassifier:
    """The classifier's layers as (kind, weights, activation) in order, read from the ``.keras`` file."""

    layers: tuple

    @classmethod
    def load(cls, path: Path = CLASSIFIER_PATH, sha256: str | None = None) -> "NumpyClassifier":
        """Read the weights after checking the file's SHA-256 (as ``load_classifier``)."""
        import io
        import json
        import zipfile

        import h5py

        data = _verified_bytes(Path(path), CLASSIFIER_SHA256 if sha256 is None else sha256)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = json.loads(archive.read("config.json"))
            weights_file = io.BytesIO(archive.read("model.weights.h5"))
        layers = []
        with h5py.File(weights_file, "r") as weights:
            for layer in config["config"]["layers"]:
                kind, options = layer["class_name"], layer["config"]
                if kind in ("Conv2D", "Dense"):
                    if kind == "Conv2D" and (options["padding"] != "valid" or tuple(options["strides"]) != (1, 1)):
                        raise ClassifierError(f"unsupported convolution {options['name']}")
                    found = weights[f"layers/{options['name']}/vars"]
                    layers.append((kind, (np.asarray(found["0"]), np.asarray(found["1"])), options["activation"]))
                elif kind == "MaxPooling2D":
                    if tuple(options["pool_size"]) != (2, 2) or tuple(options["strides"]) != (2, 2):
                        raise ClassifierError(f"unsupported pooling {options['name']}")
                    layers.append((kind, (), None))
                elif kind == "Flatten":
                    layers.append((kind, (), None))
                elif kind not in ("InputLayer", "Dropout"):
                    raise ClassifierError(f"the NumPy classifier has no {kind} layer")
        return cls(tuple(layers))

    def logits(self, images: np.ndarray, chunk: int = 100) -> np.ndarray:
        """Logits of ``images`` (N, 1, 28, 28) in [0, 1]; returns (N, 10) float32, in chunks of ``chunk``."""
        x = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
        return np.concatenate([self._forward(x[i:i + chunk]) for i in range(0, len(x), chunk)] or
                              [np.zeros((0, 10), np.float32)])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for kind, weights, activation in self.layers:
            if kind == "Conv2D":
                kernel, bias = weights
                height, width = kernel.shape[:2]
                # (N, H', W', C, kh, kw) windows, reordered to match the kernel's (kh, kw, C, out) layout.
                windows = np.lib.stride_tricks.sliding_window_view(x, (height, width), axis=(1, 2))
                patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(*windows.shape[:3], -1)
                x = _ACTIVATIONS[activation](patches @ kernel.reshape(-1, kernel.shape[-1]) + bias)
            elif kind == "MaxPooling2D":
                n, h, w, c = x.shape
                x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
            elif kind == "Flatten":
                x = x.reshape(len(x), -1)
            else:
                kernel, bias = weights
                x = _ACTIVATIONS[activation](x @ kernel + bias)
        return x.astype(np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of the logits), (N, 10) float64."""
        logits = self.logits(images).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
