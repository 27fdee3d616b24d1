"""Test-set metrics of a trained VAE or CVAE: ELBO, importance-weighted likelihood, KL, active units.

Shapes: ``images`` ``(N, 1, 28, 28)`` float32 in [0, 1]; ``labels`` ``(N,)``
integer class ids (used by a CVAE only); codes ``(N, Z)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .likelihoods import (
    kl_per_dimension,
    log_diagonal_normal,
    log_standard_normal,
    reconstruction_nll,
)

NUM_CLASSES = 10
# A latent dimension is "active" when its posterior mean varies over the test
# set by more than this (Burda et al. 2015, section 5.2).
ACTIVE_UNIT_THRESHOLD = 0.01


@dataclass(frozen=True)
class Likelihood:
    """Which ``p(x | z)`` the model was trained with."""

    name: str = "bernoulli"
    sigma: float = 0.1


def _encode(model, x: tf.Tensor, c: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    return model(x) if c is None else model(x, c)


def _decode(model, z: tf.Tensor, c: tf.Tensor | None) -> tf.Tensor:
    return model.decoder(z if c is None else tf.concat([z, c], axis=-1))


def _batches(images: np.ndarray, labels: np.ndarray | None, batch_size: int, is_cvae: bool):
    """Yield ``(x, c)`` tensors; ``c`` is None for a VAE."""
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[start : start + batch_size], tf.float32)
        c = None
        if is_cvae:
            c = tf.one_hot(labels[start : start + batch_size], NUM_CLASSES)
        yield x, c


def posterior_stats(model, images, labels=None, is_cvae=False, batch_size=500):
    """Posterior means and log-variances of every image: two ``(N, Z)`` arrays."""
    mus, logvars = [], []
    for x, c in _batches(images, labels, batch_size, is_cvae):
        _, mu, logvar = _encode(model, x, c)
        mus.append(np.asarray(mu))
        logvars.append(np.asarray(logvar))
    return np.concatenate(mus), np.concatenate(logvars)


def active_units(mu: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[int, np.ndarray]:
    """Number of dimensions whose posterior mean varies over the data: ``(N, Z) -> (count, (Z,) variances)``."""
    variances = np.var(np.asarray(mu, dtype=np.float64), axis=0)
    return int(np.sum(variances > threshold)), variances


def elbo_terms(model, images, labels=None, is_cvae=False, likelihood=Likelihood(),
               batch_size=500) -> dict[str, object]:
    """One-sample negative ELBO on ``images``, its two terms and the KL of each latent dimension.

    Returns ``negative_elbo``, ``reconstruction``, ``kl`` (averages per image,
    nats) and ``kl_per_dim`` (a list of ``Z`` averages).
    """
    reconstruction, kl_dims, count = 0.0, None, 0
    for x, c in _batches(images, labels, batch_size, is_cvae):
        x_hat, mu, logvar = _encode(model, x, c)
        reconstruction += float(tf.reduce_sum(
            reconstruction_nll(x, x_hat, likelihood.name, likelihood.sigma)))
        kl = np.asarray(tf.reduce_sum(kl_per_dimension(mu, logvar), axis=0), dtype=np.float64)
        kl_dims = kl if kl_dims is None else kl_dims + kl
        count += int(x.shape[0])
    kl_dims = kl_dims / count
    reconstruction /= count
    return {
        "negative_elbo": reconstruction + float(kl_dims.sum()),
        "reconstruction": reconstruction,
        "kl": float(kl_dims.sum()),
        "kl_per_dim": [float(v) for v in kl_dims],
    }


def importance_weighted_nll(model, images, labels=None, is_cvae=False, likelihood=Likelihood(),
                            num_samples: int = 100, max_decodes: int = 10_000,
                            progress=None) -> float:
    """Importance-weighted estimate of ``-log p(x)`` (Burda et al. 2015), averaged over images.

    For each image, ``K = num_samples`` codes ``z_k ~ q(z | x)`` give
    ``-(logsumexp_k [log p(x | z_k) + log p(z_k) - log q(z_k | x)] - log K)``.
    Images go through in batches of ``max_decodes // K``, so that at most
    ``max_decodes`` images are decoded at once. ``progress`` is called with the
    number of images done after every batch.
    """
    batch_size = max(1, max_decodes // num_samples)
    total, count = 0.0, 0
    for x, c in _batches(images, labels, batch_size, is_cvae):
        total += float(tf.reduce_sum(_iw_batch(model, x, c, likelihood, num_samples)))
        count += int(x.shape[0])
        if progress is not None:
            progress(count)
    return total / count


def _iw_batch(model, x, c, likelihood: Likelihood, num_samples: int) -> tf.Tensor:
    """Per-image importance-weighted ``-log p(x)``: ``(B,)``."""
    _, mu, logvar = _encode(model, x, c)
    batch, latent = tf.shape(mu)[0], tf.shape(mu)[1]
    eps = tf.random.normal((num_samples, batch, latent))
    z = mu[None] + tf.exp(0.5 * logvar)[None] * eps  # (K, B, Z)
    flat_z = tf.reshape(z, (-1, latent))
    flat_c = None if c is None else tf.tile(c, (num_samples, 1))
    x_hat = _decode(model, flat_z, flat_c)
    flat_x = tf.tile(x, (num_samples, 1, 1, 1))
    log_px_z = -tf.reshape(
        reconstruction_nll(flat_x, x_hat, likelihood.name, likelihood.sigma), (num_samples, batch))
    log_w = log_px_z + log_standard_normal(z) - log_diagonal_normal(z, mu[None], logvar[None])
    return -(tf.reduce_logsumexp(log_w, axis=0) - math.log(num_samples))


def classifier_scores(classifier, predict, samples: np.ndarray, requested: np.ndarray
                      ) -> dict[str, object]:
    """Accuracy and confusion of class-conditional ``samples`` (N, 1, 28, 28) drawn for ``requested`` (N,).

    ``predict(classifier, images) -> (N, 10)`` probabilities. The confusion
    matrix's row ``k`` counts the predicted digits of the samples drawn with label ``k``.
    """
    predicted = np.argmax(predict(classifier, samples), axis=-1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (requested, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float(np.mean(predicted == requested)),
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion": confusion.tolist(),
    }


def sample_diversity(samples: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Mean Euclidean distance between pairs of samples (N, 1, 28, 28), within each group when given.

    Higher is more diverse; a model that always draws the same image scores 0.
    """
    flat = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    group_ids = np.zeros(len(flat), dtype=np.int64) if groups is None else np.asarray(groups)
    means = []
    for group in np.unique(group_ids):
        members = flat[group_ids == group]
        if len(members) < 2:
            continue
        squared = np.sum(members**2, axis=1)
        distances = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * members @ members.T, 0))
        n = len(members)
        means.append(distances.sum() / (n * (n - 1)))
    return float(np.mean(means)) if means else 0.0
