"""Tests for experiments/conv_models.py: the student contract's shapes for the convolutional models."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from experiments.conv_models import ConvCVAE, ConvVAE


def test_conv_vae_shapes():
    model = ConvVAE(28 * 28, latent_size=6)
    x_hat, mu, logvar = model(tf.random.uniform((4, 1, 28, 28)))
    assert x_hat.shape == (4, 1, 28, 28) and mu.shape == (4, 6) and logvar.shape == (4, 6)
    assert float(tf.reduce_min(x_hat)) >= 0.0 and float(tf.reduce_max(x_hat)) <= 1.0
    assert model.decoder(tf.zeros((3, 6))).shape == (3, 1, 28, 28)
    for name in ("encoder", "mu_layer", "logvar_layer", "decoder"):
        assert hasattr(model, name)


def test_conv_cvae_shapes_and_label_use():
    model = ConvCVAE(28 * 28, num_classes=10, latent_size=5)
    c = tf.one_hot([0, 1, 2], 10)
    x_hat, mu, logvar = model(tf.random.uniform((3, 1, 28, 28)), c)
    assert x_hat.shape == (3, 1, 28, 28) and mu.shape == (3, 5) and logvar.shape == (3, 5)
    z = tf.zeros((2, 5))
    decoded = model.decoder(tf.concat([z, tf.one_hot([3, 7], 10)], axis=-1)).numpy()
    assert decoded.shape == (2, 1, 28, 28)
    # The same code with two different labels decodes to two different images.
    assert not np.allclose(decoded[0], decoded[1])
