"""Eager loop, encoder 512-256, decoder starts with a 15-unit Dense bottleneck then 256-512 ReLU."""
import tensorflow as tf
from tensorflow import keras
from keras import layers


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super(VAE, self).__init__()
        self.input_size = input_size  # H*W
        self.latent_size = latent_size  # Z
        self.hidden_dim = 512  # H_d
        self.encoder = keras.Sequential([
            layers.Flatten(),
            layers.Dense(self.hidden_dim, activation="relu"),
            layers.Dense(256, activation="relu"),
        ])
        self.mu_layer = layers.Dense(self.latent_size)
        self.logvar_layer = layers.Dense(self.latent_size)
        self.decoder = keras.Sequential([
            layers.Dense(15),
            layers.Dense(256, activation="relu"),
            layers.Dense(self.hidden_dim, activation="relu"),
            layers.Dense(self.input_size, activation="sigmoid"),
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
        super(CVAE, self).__init__()
        self.input_size = input_size  # H*W
        self.latent_size = latent_size  # Z
        self.num_classes = num_classes  # C
        self.hidden_dim = 512  # H_d
        self.encoder = keras.Sequential([
            layers.Dense(self.hidden_dim, activation="relu"),
            layers.Dense(256, activation="relu"),
        ])
        self.mu_layer = layers.Dense(self.latent_size)
        self.logvar_layer = layers.Dense(self.latent_size)
        self.decoder = keras.Sequential([
            layers.Dense(15),
            layers.Dense(256, activation="relu"),
            layers.Dense(self.hidden_dim, activation="relu"),
            layers.Dense(self.input_size, activation="sigmoid"),
            layers.Reshape((1, 28, 28)),
        ])

    def call(self, x, c):
        x_flat = tf.reshape(x, (-1, self.input_size))
        h = self.encoder(tf.concat([x_flat, c], axis=1))
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    sigma = tf.exp(0.5 * logvar)
    eps = tf.random.normal(tf.shape(mu))
    z = mu + sigma * eps
    return z


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    bce = -(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))
    return tf.reduce_sum(bce)


def loss_function(x_hat, x, mu, logvar):
    N = tf.cast(tf.shape(x)[0], tf.float32)
    rec_term = bce_function(x_hat, x)
    kl_term = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar))
    loss = (rec_term + kl_term) / N
    return loss
