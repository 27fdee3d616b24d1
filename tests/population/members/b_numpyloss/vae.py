"""Eager-only VAE: 600-300-150 ReLU MLP, Keras BinaryCrossentropy(reduction='sum') rescaled to a pixel sum."""
import numpy as np
import tensorflow as tf
from tensorflow import keras


def make_mlp(sizes, name):
    layers = []
    for units in sizes:
        layers.append(keras.layers.Dense(units, activation="relu"))
    return keras.Sequential(layers, name=name)


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.encoder = make_mlp([600, 300, 150], "encoder")
        self.mu_layer = keras.layers.Dense(latent_size, name="mu")
        self.logvar_layer = keras.layers.Dense(latent_size, name="logvar")
        self.decoder = keras.Sequential([
            keras.layers.Dense(150, activation="relu"),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(600, activation="relu"),
            keras.layers.Dense(input_size, activation="sigmoid"),
            keras.layers.Reshape((1, 28, 28)),
        ], name="decoder")

    def call(self, x):
        batch = x.shape[0]
        features = self.encoder(tf.reshape(x, (batch, self.input_size)))
        mu = self.mu_layer(features)
        logvar = self.logvar_layer(features)
        z = reparametrize(mu, logvar)
        return self.decoder(z), mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.encoder = make_mlp([600, 300, 150], "encoder")
        self.mu_layer = keras.layers.Dense(latent_size, name="mu")
        self.logvar_layer = keras.layers.Dense(latent_size, name="logvar")
        self.decoder = keras.Sequential([
            keras.layers.Dense(150, activation="relu"),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(600, activation="relu"),
            keras.layers.Dense(input_size, activation="sigmoid"),
            keras.layers.Reshape((1, 28, 28)),
        ], name="decoder")

    def call(self, x, c):
        batch = x.shape[0]
        flat = tf.reshape(x, (batch, self.input_size))
        features = self.encoder(tf.concat([flat, c], axis=1))
        mu = self.mu_layer(features)
        logvar = self.logvar_layer(features)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    sigma = tf.exp(logvar / 2)
    epsilon = tf.random.normal(shape=mu.shape)
    return mu + sigma * epsilon


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    return -tf.reduce_sum(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))


bce_sum = keras.losses.BinaryCrossentropy(reduction="sum")


def loss_function(x_hat, x, mu, logvar):
    n = x.numpy().shape[0]
    x_flat = tf.reshape(x, (n, -1))
    x_hat_flat = tf.reshape(x_hat, (n, -1))
    # keras averages over the last axis before the sum, so multiply the pixels back in
    recon = bce_sum(x_flat, x_hat_flat) * x_flat.shape[1]
    kl = -0.5 * tf.reduce_sum(1.0 + logvar - mu ** 2 - tf.exp(logvar))
    return (recon + kl) / n
