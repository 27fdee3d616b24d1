"""Convolutional VAE and CVAE with the same interface as ``vae.VAE`` and ``vae.CVAE``.

Tensors are channels first at the boundary, as the student contract requires:
images ``(N, 1, 28, 28)`` in and out. Inside, the layers run channels last,
because TensorFlow's CPU convolutions support only that layout.

- Encoder: two stride-2 convolutions (28 -> 14 -> 7), then a dense layer.
- Decoder: a dense layer to ``(7, 7, 64)``, then two stride-2 transposed
  convolutions (7 -> 14 -> 28) and a sigmoid.
- CVAE: the one-hot label enters the encoder as ``C`` constant image channels
  and the decoder as extra inputs next to ``z`` (``decoder(concat([z, c]))``).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from vae import IMAGE_SHAPE, LabelScale, reparametrize

HIDDEN = 256


def _conv_encoder(in_channels: int, name: str) -> keras.Sequential:
    """``(N, in_channels, 28, 28)`` channels first -> ``(N, HIDDEN)``."""
    return keras.Sequential(
        [
            keras.Input((in_channels, 28, 28)),
            layers.Permute((2, 3, 1)),
            layers.Conv2D(32, 4, strides=2, padding="same", activation="relu"),
            layers.Conv2D(64, 4, strides=2, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(HIDDEN, activation="relu"),
        ],
        name=name,
    )


def _conv_decoder(first_layers: list, name: str) -> keras.Sequential:
    """Codes -> ``(N, 1, 28, 28)`` channels first, sigmoid output."""
    return keras.Sequential(
        first_layers
        + [
            layers.Dense(HIDDEN, activation="relu"),
            layers.Dense(7 * 7 * 64, activation="relu"),
            layers.Reshape((7, 7, 64)),
            layers.Conv2DTranspose(32, 4, strides=2, padding="same", activation="relu"),
            layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="sigmoid"),
            layers.Permute((3, 1, 2)),
            layers.Reshape(IMAGE_SHAPE),
        ],
        name=name,
    )


class ConvVAE(keras.Model):
    """Convolutional VAE: ``model(x) -> (x_hat, mu, logvar)``, ``decoder: (N, Z) -> (N, 1, 28, 28)``."""

    def __init__(self, input_size: int = 28 * 28, latent_size: int = 15, **kwargs):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.latent_size = latent_size
        self.encoder = _conv_encoder(1, "encoder")
        self.mu_layer = layers.Dense(latent_size, name="mu")
        # Zero-initialised, as in vae.VAE, so that training starts at logvar = 0.
        self.logvar_layer = layers.Dense(latent_size, kernel_initializer="zeros", name="logvar")
        self.decoder = _conv_decoder([keras.Input((latent_size,))], "decoder")

    def call(self, x):
        """x: (N, 1, 28, 28) -> x_hat (N, 1, 28, 28), mu (N, Z), logvar (N, Z)."""
        h = self.encoder(x)
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        return self.decoder(reparametrize(mu, logvar)), mu, logvar


class ConvCVAE(keras.Model):
    """Convolutional CVAE: ``model(x, c)``, ``decoder: (N, Z + C) -> (N, 1, 28, 28)``."""

    def __init__(self, input_size: int = 28 * 28, num_classes: int = 10, latent_size: int = 15,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.encoder = _conv_encoder(1 + num_classes, "encoder")
        self.mu_layer = layers.Dense(latent_size, name="mu")
        self.logvar_layer = layers.Dense(latent_size, kernel_initializer="zeros", name="logvar")
        self.decoder = _conv_decoder(
            [keras.Input((latent_size + num_classes,)), LabelScale(num_classes)], "decoder"
        )

    def call(self, x, c):
        """x: (N, 1, 28, 28), c: (N, C) one-hot -> x_hat (N, 1, 28, 28), mu, logvar (N, Z)."""
        c = tf.cast(c, x.dtype)
        # Each label becomes a constant 28x28 channel next to the image.
        label_planes = tf.tile(c[:, :, None, None], (1, 1, 28, 28))
        h = self.encoder(tf.concat([x, label_planes], axis=1))
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        return self.decoder(tf.concat([z, c], axis=-1)), mu, logvar
