"""Tests for experiments/metrics.py: active units, the IWAE bound, classifier scores and diversity."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from experiments import metrics
from vae import VAE


def test_active_units_on_constructed_codes():
    rng = np.random.default_rng(0)
    mu = np.zeros((1000, 4))
    mu[:, 0] = rng.standard_normal(1000)          # variance ~1: active
    mu[:, 1] = 0.05 * rng.standard_normal(1000)   # variance ~0.0025: inactive
    mu[:, 2] = 0.2 * rng.standard_normal(1000)    # variance ~0.04: active
    count, variances = metrics.active_units(mu)
    assert count == 2 and variances.shape == (4,)


@pytest.fixture(scope="module")
def model_and_data():
    tf.random.set_seed(0)
    model = VAE(28 * 28, latent_size=4, hidden_sizes=(64,))
    images = (np.random.default_rng(0).random((40, 1, 28, 28)) < 0.2).astype(np.float32)
    model(images[:1])
    return model, images


def test_iwae_is_tighter_than_elbo_and_converges(model_and_data):
    model, images = model_and_data
    tf.random.set_seed(1)
    elbos = [metrics.elbo_terms(model, images)["negative_elbo"] for _ in range(5)]
    negative_elbo = float(np.mean(elbos))
    estimates = {k: metrics.importance_weighted_nll(model, images, num_samples=k, max_decodes=2000)
                 for k in (1, 10, 100)}
    # K = 1 is the ELBO itself; larger K can only tighten the bound (up to Monte-Carlo noise).
    assert estimates[1] == pytest.approx(negative_elbo, abs=2.0)
    assert estimates[10] <= negative_elbo + 0.5
    assert estimates[100] <= estimates[10] + 0.5
    # Two independent K = 100 estimates agree closely: the estimate converges.
    again = metrics.importance_weighted_nll(model, images, num_samples=100, max_decodes=2000)
    assert abs(again - estimates[100]) < abs(negative_elbo - estimates[100]) + 0.5


def test_elbo_terms_add_up(model_and_data):
    model, images = model_and_data
    terms = metrics.elbo_terms(model, images, likelihood=metrics.Likelihood("gaussian", 0.2))
    assert terms["negative_elbo"] == pytest.approx(terms["reconstruction"] + terms["kl"])
    assert len(terms["kl_per_dim"]) == 4 and sum(terms["kl_per_dim"]) == pytest.approx(terms["kl"])


def test_classifier_scores_and_diversity():
    requested = np.repeat(np.arange(10), 2)
    predicted = requested.copy()
    predicted[0] = 5

    def predict(_classifier, images):
        return np.eye(10)[predicted]

    scores = metrics.classifier_scores(None, predict, np.zeros((20, 1, 28, 28)), requested)
    assert scores["accuracy"] == pytest.approx(19 / 20)
    assert scores["confusion"][0][5] == 1 and scores["per_class_accuracy"][0] == 0.5
    same = np.zeros((5, 1, 28, 28))
    assert metrics.sample_diversity(same) == 0.0
    two = np.stack([np.zeros((1, 28, 28)), np.ones((1, 28, 28))])
    assert metrics.sample_diversity(two) == pytest.approx(28.0)
    assert metrics.sample_diversity(two, groups=np.array([0, 1])) == 0.0
