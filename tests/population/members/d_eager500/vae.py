"""Variational autoencoders for MNIST: the models and the loss.

Shapes used throughout (see the handout):

- ``x``: ``(N, 1, 28, 28)`` float32 images in ``[0, 1]``, channels first.
- ``c``: ``(N, C)`` float32 one-hot labels, ``C = num_classes = 10``.
- ``mu``, ``logvar``, ``z``: ``(N, Z)`` float32, ``Z = latent_size``.
- ``x_hat``: ``(N, 1, 28, 28)`` float32 probabilities in ``[0, 1]``.
"""

import keras
import tensorflow as tf
from keras import layers

IMAGE_SHAPE = (1, 28, 28)

# Probabilities are kept this far from 0 and 1 inside the log of the
# cross-entropy, so that a saturated sigmoid never produces log(0).
BCE_EPSILON = 1e-7


# How much louder the one-hot label speaks to the CVAE's networks (see LabelScale).
LABEL_SCALE = 5.0


def dense_stack(sizes, activation, name):
    """A ``keras.Sequential`` of Dense layers, one per width in ``sizes``: the hidden layers of a network.

    For example ``dense_stack((512, 256), "relu", "encoder_hidden")``: (N, D) -> (N, 256).
    """
    return keras.Sequential(
        [layers.Dense(size, activation=activation) for size in sizes], name=name
    )


class LabelScale(keras.layers.Layer):
    """Multiply the last ``num_classes`` columns of the input (the one-hot label) by ``scale``.

    Adam's step for a weight does not depend on the size of its gradient, so
    scaling an input by ``scale`` makes everything the weights reading it can
    express appear ``scale`` times sooner. A CVAE that is slow to use its label
    stores the digit's identity in ``z`` early in training, and decodes prior
    samples ``z ~ N(0, I)`` into the wrong digit until the KL term slowly
    removes it; a louder label lets the decoder rely on ``c`` from the start.
    Shapes: ``(N, D + C) -> (N, D + C)``.
    """

    def __init__(self, num_classes, scale=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.scale = LABEL_SCALE if scale is None else scale

    def call(self, inputs):
        features = inputs[:, : -self.num_classes]
        label = inputs[:, -self.num_classes :]
        return tf.concat([features, self.scale * label], axis=-1)


class VAE(keras.Model):
    """Fully connected VAE.

    Args:
        input_size: number of pixels, ``28 * 28``.
        latent_size: ``Z``, the size of the latent code.
        hidden_sizes: widths of the hidden layers of the encoder (the decoder
            uses them in reverse order).
    """

    def __init__(self, input_size, latent_size=15, hidden_sizes=(512, 512), **kwargs):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.latent_size = latent_size
        # encoder: flatten the image, then 3 hidden layers of 500 units
        self.encoder = keras.Sequential([
            layers.Flatten(),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
        ], name="encoder")
        self.mu_layer = layers.Dense(latent_size, name="mu")
        # start logvar near 0 (handout tip)
        self.logvar_layer = layers.Dense(latent_size, kernel_initializer="zeros", name="logvar")
        # decoder: 3 hidden layers of 500 units, then 784 sigmoid outputs as an image
        self.decoder = keras.Sequential([
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(784, activation="sigmoid"),
            layers.Reshape((1, 28, 28)),
        ], name="decoder")

    def call(self, x):
        """Encode, sample and decode.

        Args:
            x: (N, 1, 28, 28) float32 in [0, 1].

        Returns:
            x_hat: (N, 1, 28, 28) in [0, 1]; mu, logvar: (N, Z).
        """
        h = self.encoder(x)
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(keras.Model):
    """Fully connected conditional VAE: the encoder and the decoder see the label.

    Args:
        input_size: number of pixels, ``28 * 28``.
        num_classes: ``C``, the number of labels.
        latent_size: ``Z``.
        hidden_sizes: widths of the hidden layers.
    """

    def __init__(
        self, input_size, num_classes=10, latent_size=15, hidden_sizes=(512, 512), **kwargs
    ):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        # encoder: input is already flat (784 + 10), 3 hidden layers of 500 units
        self.encoder = keras.Sequential([
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
        ], name="encoder")
        self.mu_layer = layers.Dense(latent_size, name="mu")
        self.logvar_layer = layers.Dense(latent_size, kernel_initializer="zeros", name="logvar")
        # decoder: input is concat([z, c]) (Z + 10)
        self.decoder = keras.Sequential([
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(500, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(784, activation="sigmoid"),
            layers.Reshape((1, 28, 28)),
        ], name="decoder")

    def call(self, x, c):
        """Encode with the label, sample and decode with the label.

        Args:
            x: (N, 1, 28, 28) float32 in [0, 1].
            c: (N, C) float32 one-hot labels.

        Returns:
            x_hat: (N, 1, 28, 28) in [0, 1]; mu, logvar: (N, Z).
        """
        x_flat = tf.reshape(x, (-1, self.input_size))
        c = tf.cast(c, tf.float32)
        h = self.encoder(tf.concat([x_flat, c], axis=1))
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    """Sample z ~ N(mu, exp(logvar)) so that gradients reach mu and logvar.

    Args:
        mu, logvar: (N, Z) float32.

    Returns:
        z: (N, Z), ``mu + exp(logvar / 2) * eps`` with fresh ``eps ~ N(0, I)``.
    """
    eps = tf.random.normal(tf.shape(mu))
    sigma = tf.exp(logvar / 2)
    z = mu + sigma * eps
    return z


def bce_function(x_hat, x):
    """Binary cross-entropy summed over every pixel of every image.

    Args:
        x_hat: (N, 1, 28, 28) predicted probabilities in [0, 1].
        x: (N, 1, 28, 28) targets in [0, 1].

    Returns:
        Scalar float32: the sum (not the mean) over the batch and the pixels.
    """
    x_hat = tf.clip_by_value(x_hat, BCE_EPSILON, 1.0 - BCE_EPSILON)
    x = tf.cast(x, x_hat.dtype)
    return -tf.reduce_sum(x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat))


def loss_function(x_hat, x, mu, logvar):
    """Negative ELBO averaged over the batch.

    ``(bce_function(x_hat, x) + KL) / N`` where the KL divergence between the
    posterior ``N(mu, exp(logvar))`` and the prior ``N(0, I)``, summed over the
    batch and the latent dimensions, is
    ``-0.5 * sum(1 + logvar - mu**2 - exp(logvar))``.

    Args:
        x_hat, x: (N, 1, 28, 28); mu, logvar: (N, Z).

    Returns:
        Scalar float32 loss per image.
    """
    N = tf.cast(tf.shape(x)[0], tf.float32)
    bce = bce_function(x_hat, x)
    kl = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar))
    loss = (bce + kl) / N
    return loss
