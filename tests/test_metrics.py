"""Tests for experiments/metrics.py: active units, the IWAE bound, the ELBO's terms, classifier scores and diversity."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import vae
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


@pytest.mark.parametrize("likelihood", [metrics.Likelihood("bernoulli"), metrics.Likelihood("gaussian", 0.2)],
                         ids=["bernoulli", "gaussian"])
def test_elbo_terms_match_a_hand_computation_with_fixed_noise(likelihood, monkeypatch):
    """Both terms and the KL of each dimension, from the model's own mu, logvar and x_hat, computed here in NumPy."""
    tf.random.set_seed(2)
    model = VAE(28 * 28, latent_size=4, hidden_sizes=(64,))
    images = (np.random.default_rng(2).random((40, 1, 28, 28)) < 0.2).astype(np.float32)
    model(images[:1])
    # The log-variance head starts at zero; other values make every term of the KL count.
    rng = np.random.default_rng(3)
    model.logvar_layer.kernel.assign(rng.normal(scale=0.1, size=(64, 4)).astype(np.float32))
    model.logvar_layer.bias.assign(np.array([-1.5, -0.5, 0.3, 1.0], np.float32))
    # The model draws its noise in vae.reparametrize: one fixed eps makes the decoded x_hat known here.
    eps = np.array([0.8, -1.2, 0.3, 1.9], np.float32)
    monkeypatch.setattr(vae, "reparametrize", lambda mu, logvar: mu + tf.exp(0.5 * logvar) * eps)

    hidden = model.encoder(images)
    mu = model.mu_layer(hidden).numpy().astype(np.float64)
    logvar = model.logvar_layer(hidden).numpy().astype(np.float64)
    sigma = np.exp(logvar / 2)
    z = (mu + sigma * eps).astype(np.float32)
    x_hat = model.decoder(z).numpy().astype(np.float64).reshape(len(images), -1)
    x = images.astype(np.float64).reshape(len(images), -1)
    if likelihood.name == "bernoulli":
        p = np.clip(x_hat, 1e-7, 1 - 1e-7)
        nll = -np.log(np.where(x == 1, p, 1 - p)).sum(axis=1)
    else:
        spread = likelihood.sigma
        density = np.exp(-((x - x_hat) ** 2) / (2 * spread**2)) / (spread * np.sqrt(2 * np.pi))
        nll = -np.log(density).sum(axis=1)
    # KL(N(mu, sigma^2) || N(0, 1)) = log(1 / sigma) + (sigma^2 + mu^2 - 1) / 2 per dimension.
    kl_per_dim = (np.log(1 / sigma) + (sigma**2 + mu**2 - 1) / 2).mean(axis=0)

    # Batches of 16 leave a last one of 8: the averages are over images, not batches.
    terms = metrics.elbo_terms(model, images, likelihood=likelihood, batch_size=16)
    assert terms["reconstruction"] == pytest.approx(nll.mean(), rel=1e-5)
    assert terms["kl_per_dim"] == pytest.approx(list(kl_per_dim), rel=1e-4)
    assert terms["kl"] == pytest.approx(kl_per_dim.sum(), rel=1e-5)
    assert terms["negative_elbo"] == pytest.approx(nll.mean() + kl_per_dim.sum(), rel=1e-5)


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
