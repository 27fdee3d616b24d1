"""Flatten in call() with tf.reshape, 2 hidden layers of 768 ReLU, Sequential decoder ending in Reshape."""
import tensorflow as tf
import keras
from keras import layers


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.hidden_dim = 768
        self.encoder = keras.Sequential([
            layers.Dense(self.hidden_dim, activation='relu'),
            layers.Dense(self.hidden_dim, activation='relu'),
        ])
        self.mu_layer = layers.Dense(latent_size)
        self.logvar_layer = layers.Dense(latent_size)
        self.decoder = keras.Sequential([
            layers.Dense(self.hidden_dim, activation='relu'),
            layers.Dense(self.hidden_dim, activation='relu'),
            layers.Dense(784, activation='sigmoid'),
            layers.Reshape((1, 28, 28)),
        ])

    def call(self, x):
        x = tf.reshape(x, [-1, 784])
        enc = self.encoder(x)
        mu = self.mu_layer(enc)
        logvar = self.logvar_layer(enc)
        z = reparametrize(mu, logvar)
        x_hat = tf.reshape(self.decoder(z), (-1, 1, 28, 28))
        return x_hat, mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.hidden_dim = 768
        self.encoder = keras.Sequential([
            layers.Dense(self.hidden_dim, activation='relu'),
            layers.Dense(self.hidden_dim, activation='relu'),
        ])
        self.mu_layer = layers.Dense(latent_size)
        self.logvar_layer = layers.Dense(latent_size)
        self.decoder = keras.Sequential([
            layers.Dense(self.hidden_dim, activation='relu'),
            layers.Dense(self.hidden_dim, activation='relu'),
            layers.Dense(784, activation='sigmoid'),
            layers.Reshape((1, 28, 28)),
        ])

    def call(self, x, c):
        x = tf.reshape(x, [-1, 784])
        enc = self.encoder(tf.concat([x, c], axis=-1))
        mu = self.mu_layer(enc)
        logvar = self.logvar_layer(enc)
        z = reparametrize(mu, logvar)
        x_hat = tf.reshape(self.decoder(tf.concat([z, c], axis=-1)), (-1, 1, 28, 28))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    std = tf.math.exp(logvar / 2)
    eps = tf.random.normal(shape=tf.shape(std))
    return mu + eps * std


def bce_function(x_hat, x):
    eps = 1e-7
    x_hat = tf.clip_by_value(x_hat, eps, 1 - eps)
    per_pixel = x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat)
    return -tf.reduce_sum(per_pixel)


def loss_function(x_hat, x, mu, logvar):
    batch_size = tf.cast(tf.shape(x)[0], x_hat.dtype)
    bce = bce_function(x_hat, x)
    kld = -0.5 * tf.reduce_sum(1 + logvar - mu ** 2 - tf.math.exp(logvar))
    return (bce + kld) / batch_size
