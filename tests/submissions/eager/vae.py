"""A correct submission written the usual student way: plain eager Keras layers."""
import tensorflow as tf
from tensorflow.keras.layers import Dense, Flatten, Reshape
from tensorflow.keras import Sequential
import numpy as np


class VAE(tf.keras.Model):
    def __init__(self, input_size, latent_size=15):
        super(VAE, self).__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.hidden_dim = 400
        self.encoder = Sequential([Flatten(), Dense(self.hidden_dim, activation="relu"),
                                   Dense(self.hidden_dim, activation="relu")])
        self.mu_layer = Dense(self.latent_size)
        self.logvar_layer = Dense(self.latent_size)
        self.decoder = Sequential([Dense(self.hidden_dim, activation="relu"),
                                   Dense(self.hidden_dim, activation="relu"),
                                   Dense(self.input_size, activation="sigmoid"),
                                   Reshape((1, 28, 28))])

    def call(self, x):
        h = self.encoder(x)
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(tf.keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super(CVAE, self).__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.hidden_dim = 400
        self.encoder = Sequential([Dense(self.hidden_dim, activation="relu"),
                                   Dense(self.hidden_dim, activation="relu")])
        self.mu_layer = Dense(self.latent_size)
        self.logvar_layer = Dense(self.latent_size)
        self.decoder = Sequential([Dense(self.hidden_dim, activation="relu"),
                                   Dense(self.hidden_dim, activation="relu"),
                                   Dense(self.input_size, activation="sigmoid"),
                                   Reshape((1, 28, 28))])

    def call(self, x, c):
        x = tf.reshape(x, (-1, self.input_size))
        h = self.encoder(tf.concat([x, c], axis=1))
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    std = tf.math.exp(0.5 * logvar)
    eps = tf.random.normal(shape=tf.shape(mu))
    return mu + std * eps


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    return -tf.reduce_sum(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))


def loss_function(x_hat, x, mu, logvar):
    bce = bce_function(x_hat, x)
    kl = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar))
    return (bce + kl) / x.shape[0]
