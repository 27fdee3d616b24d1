"""Per-image negative log-likelihoods, KL terms and binarization for the experiments.

Every function returns one value per image (shape ``(N,)``) or per image and
latent dimension (``(N, Z)``), in nats, with every constant included, so that
ELBOs computed with the same likelihood are comparable across models.

Shapes: ``x`` and ``x_hat`` are ``(N, 1, 28, 28)`` (any trailing shape works:
the sums run over every axis but the first); ``mu``, ``logvar``, ``z`` are ``(N, Z)``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

LIKELIHOODS = ("bernoulli", "gaussian")
BINARIZATIONS = ("none", "dynamic", "static")

# Probabilities are kept this far from 0 and 1 inside the logs, as in vae.bce_function.
PROBABILITY_EPSILON = 1e-7
LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_image(values: tf.Tensor) -> tf.Tensor:
    """Sum over every axis but the first: ``(N, ...) -> (N,)``."""
    return tf.reduce_sum(tf.reshape(values, (tf.shape(values)[0], -1)), axis=-1)


def bernoulli_nll(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """``-log p(x | x_hat)`` of independent Bernoulli pixels with means ``x_hat``: ``(N,)``.

    For ``x`` in {0, 1} this is an exact negative log-likelihood; for grey
    levels it is the binary cross-entropy the assignment trains with.
    """
    x_hat = tf.clip_by_value(x_hat, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    x = tf.cast(x, x_hat.dtype)
    return -_sum_per_image(x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat))


def gaussian_nll(x: tf.Tensor, x_hat: tf.Tensor, sigma: float) -> tf.Tensor:
    """``-log N(x; x_hat, sigma^2 I)`` summed over pixels: ``(N,)``.

    Per pixel ``0.5 * ((x - x_hat) / sigma)^2 + log(sigma) + 0.5 * log(2 pi)``.
    """
    x = tf.cast(x, x_hat.dtype)
    per_pixel = 0.5 * tf.square((x - x_hat) / sigma) + math.log(sigma) + 0.5 * LOG_2PI
    return _sum_per_image(per_pixel)


def reconstruction_nll(x: tf.Tensor, x_hat: tf.Tensor, likelihood: str, sigma: float) -> tf.Tensor:
    """The negative log-likelihood named by ``likelihood``: ``(N,)``."""
    if likelihood == "bernoulli":
        return bernoulli_nll(x, x_hat)
    if likelihood == "gaussian":
        return gaussian_nll(x, x_hat, sigma)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose from {LIKELIHOODS}")


def kl_per_dimension(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` for each image and dimension: ``(N, Z)``."""
    return -0.5 * (1.0 + logvar - tf.square(mu) - tf.exp(logvar))


def log_standard_normal(z: tf.Tensor) -> tf.Tensor:
    """``log N(z; 0, I)`` summed over the last axis: ``(..., Z) -> (...)``."""
    return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)


def log_diagonal_normal(z: tf.Tensor, mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last axis: ``(..., Z) -> (...)``."""
    return -0.5 * tf.reduce_sum(tf.square(z - mu) * tf.exp(-logvar) + logvar + LOG_2PI, axis=-1)


def dynamic_binarize(x: tf.Tensor) -> tf.Tensor:
    """A fresh draw ``x_b ~ Bernoulli(x)`` per pixel, same shape and dtype as ``x``."""
    return tf.cast(tf.random.uniform(tf.shape(x), dtype=x.dtype) < x, x.dtype)


def static_binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli draw of uint8 ``images`` (N, H, W) in 0..255; returns uint8 in {0, 255}."""
    rng = np.random.default_rng(seed)
    probabilities = images.astype(np.float32) / 255.0
    return np.where(rng.random(images.shape, dtype=np.float32) < probabilities, 255, 0).astype(np.uint8)
