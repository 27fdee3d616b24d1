"""The copy detector: disguised training images are flagged, blurred typical digits are not."""

import numpy as np
import pytest

from autograder.scoring import copies
from helpers import require_mnist_dir


@pytest.fixture(scope="module")
def mnist():
    from mnist_data import load_arrays

    return load_arrays(require_mnist_dir())


@pytest.fixture(scope="module")
def features(mnist):
    return copies.spectrum_features(mnist.train_images)


def test_shifted_noisy_and_recontrasted_training_images_are_copies(mnist, features):
    rng = np.random.default_rng(0)
    chosen = mnist.train_images[rng.choice(len(mnist.train_images), 300, replace=False)] / 255.0
    padded = np.pad(chosen, ((0, 0), (2, 2), (2, 2)))
    moved = padded[:, 0:28, 1:29]  # two pixels up, one left
    disguised = np.clip(0.7 * moved + 0.1 + rng.normal(scale=0.08, size=moved.shape), 0, 1)
    for images, share in ((chosen, 0.95), (moved, 0.95), (disguised, 0.7)):
        flagged = copies.copies_of_training_images(images[:, None], mnist.train_images, features)
        # The grader refuses credit above MAX_COPIED_SHARE: each set is well above it.
        assert flagged.mean() > max(share, copies.MAX_COPIED_SHARE + 0.2)


def test_blurred_typical_digits_are_not_copies(mnist, features):
    """Means of a few training digits of one class look like a VAE's samples: typical and blurred."""
    rng = np.random.default_rng(1)
    means = []
    for digit in range(10):
        pool = mnist.test_images[mnist.test_labels == digit] / 255.0
        means += [pool[rng.choice(len(pool), 6, replace=False)].mean(axis=0) for _ in range(30)]
    flagged = copies.copies_of_training_images(np.stack(means), mnist.train_images, features)
    assert flagged.mean() < 0.2


def test_correlations_ignore_contrast_and_find_a_shifted_source(mnist, features):
    source = mnist.train_images[123] / 255.0
    moved = np.roll(source, (2, -2), axis=(0, 1)) * 0.5 + 0.25  # MNIST's border is empty: no digit wraps
    ranked = copies.correlations(moved[None], mnist.train_images, features)
    assert ranked.shape == (1, copies.CANDIDATES) and ranked[0, 0] > 0.99
    assert np.all(np.diff(ranked[0]) <= 0)
