"""Eager loop VAE/CVAE: 3 hidden ReLU layers (512, 384, 256), Flatten inside the encoder Sequential."""
import tensorflow as tf
import keras
from keras import layers


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size

        self.encoder = keras.Sequential([
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(384, activation="relu"),
            layers.Dense(256, activation="relu"),
        ])
        self.mu_layer = layers.Dense(latent_size)
        self.logvar_layer = layers.Dense(latent_size)

        self.decoder = keras.Sequential([
            keras.Input(shape=(latent_size,)),
            layers.Dense(256, activation="relu"),
            layers.Dense(384, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(input_size, activation="sigmoid"),
            layers.Reshape((1, 28, 28)),
        ])

    def call(self, x):
        h = self.encoder(x)
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size

        # encoder sees the flattened image concatenated with the one-hot label
        self.encoder = keras.Sequential([
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(384, activation="relu"),
            layers.Dense(256, activation="relu"),
        ])
        self.mu_layer = layers.Dense(latent_size)
        self.logvar_layer = layers.Dense(latent_size)

        self.decoder = keras.Sequential([
            keras.Input(shape=(latent_size + num_classes,)),
            layers.Dense(256, activation="relu"),
            layers.Dense(384, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(input_size, activation="sigmoid"),
            layers.Reshape((1, 28, 28)),
        ])

    def call(self, x, c):
        x_flat = tf.reshape(x, (-1, self.input_size))
        h = self.encoder(tf.concat([x_flat, c], axis=-1))
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=-1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    std = tf.exp(0.5 * logvar)
    eps = tf.random.normal(tf.shape(mu))
    return mu + std * eps


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    per_pixel = -(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))
    return tf.reduce_sum(per_pixel)


def loss_function(x_hat, x, mu, logvar):
    n = tf.cast(tf.shape(x)[0], tf.float32)
    recon = bce_function(x_hat, x)
    kl = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar))
    return (recon + kl) / n
