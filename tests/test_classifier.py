"""The grader's classifier: accuracy on the 10,000 MNIST test images, size, and hash check."""

import shutil

import numpy as np
import pytest

from autograder.classifier import CLASSIFIER_PATH, ClassifierError, load_classifier, predict_digits
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
