"""Custom keras.layers.Layer Encoder/Decoder classes with Dense 500 and 300 ReLU hidden layers."""
import numpy as np
import tensorflow as tf
import keras


class Encoder(keras.layers.Layer):
    def __init__(self, hidden_sizes=(500, 300), **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.hidden = [keras.layers.Dense(units, activation="relu") for units in hidden_sizes]

    def call(self, inputs):
        out = self.flatten(inputs)
        for dense in self.hidden:
            out = dense(out)
        return out


class Decoder(keras.layers.Layer):
    def __init__(self, output_size, hidden_sizes=(300, 500), **kwargs):
        super().__init__(**kwargs)
        self.hidden = [keras.layers.Dense(units, activation="relu") for units in hidden_sizes]
        self.out_layer = keras.layers.Dense(output_size, activation="sigmoid")
        self.reshape = keras.layers.Reshape((1, 28, 28))

    def call(self, inputs):
        out = inputs
        for dense in self.hidden:
            out = dense(out)
        return self.reshape(self.out_layer(out))


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super(VAE, self).__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.encoder = Encoder()
        self.mu_layer = keras.layers.Dense(self.latent_size)
        self.logvar_layer = keras.layers.Dense(self.latent_size)
        self.decoder = Decoder(self.input_size)

    def call(self, x):
        features = self.encoder(x)
        mu = self.mu_layer(features)
        logvar = self.logvar_layer(features)
        latent = reparametrize(mu, logvar)
        x_hat = self.decoder(latent)
        return x_hat, mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super(CVAE, self).__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.encoder = Encoder()
        self.mu_layer = keras.layers.Dense(self.latent_size)
        self.logvar_layer = keras.layers.Dense(self.latent_size)
        self.decoder = Decoder(self.input_size)

    def call(self, x, c):
        x_flat = tf.reshape(x, (-1, self.input_size))
        features = self.encoder(tf.concat([x_flat, c], axis=1))
        mu = self.mu_layer(features)
        logvar = self.logvar_layer(features)
        latent = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([latent, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    sigma = tf.math.exp(logvar / 2.0)
    epsilon = tf.random.normal(tf.shape(mu))
    return mu + sigma * epsilon


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    loss = -(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))
    return tf.reduce_sum(loss)


def loss_function(x_hat, x, mu, logvar):
    num_images = tf.cast(tf.shape(x)[0], tf.float32)
    reconstruction = bce_function(x_hat, x)
    divergence = -0.5 * tf.reduce_sum(1 + logvar - tf.pow(mu, 2) - tf.math.exp(logvar))
    return (reconstruction + divergence) / num_images
