"""The grader's classifier: accuracy on the 10,000 MNIST test images, size, hash check, NumPy forward pass."""

import shutil

import numpy as np
import pytest

from autograder.scoring.classifier import (CLASSIFIER_PATH, ClassifierError, NumpyClassifier, load_classifier,
                                   predict_digits)
from helpers import require_mnist_dir


def test_classifier_file_is_small():
    assert CLASSIFIER_PATH.stat().st_size <= 2 * 2**20


@pytest.mark.slow
def test_classifier_accuracy_on_the_test_set():
    from mnist_data import load_arrays

    arrays = load_arrays(require_mnist_dir())
    images = arrays.test_images.astype(np.float32)[:, None] / 255.0
    predicted = predict_digits(load_classifier(), images).argmax(axis=1)
    assert np.mean(predicted == arrays.test_labels) >= 0.993


def test_a_changed_classifier_file_is_refused(tmp_path):
    copy = tmp_path / "classifier.keras"
    shutil.copyfile(CLASSIFIER_PATH, copy)
    with open(copy, "ab") as file:
        file.write(b"\0")
    with pytest.raises(ClassifierError, match="SHA-256"):
        load_classifier(copy)
    with pytest.raises(ClassifierError, match="not found"):
        load_classifier(tmp_path / "missing.keras")
    with pytest.raises(ClassifierError, match="SHA-256"):
        NumpyClassifier.load(copy)


@pytest.mark.slow
def test_the_numpy_forward_pass_matches_keras_on_the_test_set():
    """The grader scores with the classifier's weights in NumPy: the same digits, the same accuracy."""
    from mnist_data import load_arrays

    arrays = load_arrays(require_mnist_dir())
    images = arrays.test_images.astype(np.float32)[:, None] / 255.0
    numpy_logits = NumpyClassifier.load().logits(images)
    keras_logits = load_classifier().predict(images.reshape(-1, 28, 28, 1), batch_size=500, verbose=0)
    assert np.array_equal(numpy_logits.argmax(axis=1), keras_logits.argmax(axis=1))
    assert np.abs(numpy_logits - keras_logits).max() < 1e-3
    assert np.mean(numpy_logits.argmax(axis=1) == arrays.test_labels) >= 0.993
    probabilities = NumpyClassifier.load().probabilities(images[:50])
    assert probabilities.shape == (50, 10) and np.allclose(probabilities.sum(axis=1), 1.0)
