"""Tests for experiments/likelihoods.py: each negative log-likelihood against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from experiments import likelihoods as lk


def test_bernoulli_nll_by_hand():
    x = np.array([[1.0, 0.0, 1.0]], dtype=np.float32)
    x_hat = np.array([[0.9, 0.2, 0.5]], dtype=np.float32)
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.5))
    assert float(lk.bernoulli_nll(x, x_hat)[0]) == pytest.approx(expected, rel=1e-5)


def test_gaussian_nll_by_hand():
    x = np.zeros((2, 1, 2, 2), dtype=np.float32)
    x_hat = np.full((2, 1, 2, 2), 0.3, dtype=np.float32)
    sigma = 0.5
    per_pixel = 0.5 * (0.3 / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)
    values = lk.gaussian_nll(x, x_hat, sigma).numpy()
    assert values.shape == (2,)
    assert values == pytest.approx([4 * per_pixel] * 2, rel=1e-5)


def test_kl_and_normal_densities_by_hand():
    mu = np.array([[1.0, 0.0]], dtype=np.float32)
    logvar = np.array([[0.0, math.log(4.0)]], dtype=np.float32)
    kl = lk.kl_per_dimension(mu, logvar).numpy()
    assert kl[0] == pytest.approx([0.5, 0.5 * (4.0 - 1.0 - math.log(4.0))], rel=1e-5)
    z = np.array([[0.0, 0.0]], dtype=np.float32)
    assert float(lk.log_standard_normal(z)[0]) == pytest.approx(-math.log(2 * math.pi), rel=1e-6)
    expected = -0.5 * (1.0 + 2 * math.log(2 * math.pi) + math.log(4.0))
    assert float(lk.log_diagonal_normal(z, mu, logvar)[0]) == pytest.approx(expected, rel=1e-5)


def test_reconstruction_nll_dispatches_and_rejects_unknown():
    x = tf.ones((1, 4))
    x_hat = tf.fill((1, 4), 0.5)
    assert float(lk.reconstruction_nll(x, x_hat, "bernoulli", 1.0)[0]) == pytest.approx(4 * math.log(2), rel=1e-5)
    with pytest.raises(ValueError):
        lk.reconstruction_nll(x, x_hat, "laplace", 1.0)


def test_binarizations():
    tf.random.set_seed(0)
    x = tf.fill((200, 1, 28, 28), 0.25)
    drawn = lk.dynamic_binarize(x).numpy()
    assert set(np.unique(drawn)) <= {0.0, 1.0}
    assert drawn.mean() == pytest.approx(0.25, abs=0.01)
    assert not np.array_equal(drawn, lk.dynamic_binarize(x).numpy())
    images = np.full((50, 28, 28), 128, dtype=np.uint8)
    first = lk.static_binarize(images, seed=3)
    assert set(np.unique(first)) <= {0, 255}
    assert np.array_equal(first, lk.static_binarize(images, seed=3))
    assert not np.array_equal(first, lk.static_binarize(images, seed=4))
