"""Small MLP VAE/CVAE: 2 hidden layers of 128 with ReLU, decoder ends in Dense(784, sigmoid) + Reshape."""
import tensorflow as tf
from tensorflow.keras import layers


def build_decoder(input_size, hidden=128):
    return tf.keras.Sequential([
        layers.Dense(hidden, activation="relu"),
        layers.Dense(hidden, activation="relu"),
        layers.Dense(input_size, activation="sigmoid"),
        layers.Reshape((1, 28, 28)),
    ])


class VAE(tf.keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.hidden_dim = 128
        self.encoder = tf.keras.Sequential([
            layers.Flatten(),
            layers.Dense(self.hidden_dim, activation="relu"),
            layers.Dense(self.hidden_dim, activation="relu"),
        ])
        self.mu_layer = layers.Dense(latent_size)
        self.logvar_layer = layers.Dense(latent_size)
        self.decoder = build_decoder(input_size, self.hidden_dim)

    def call(self, x):
        h = self.encoder(x)
        mu, logvar = self.mu_layer(h), self.logvar_layer(h)
        x_hat = self.decoder(reparametrize(mu, logvar))
        return x_hat, mu, logvar


class CVAE(tf.keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.hidden_dim = 128
        self.flatten = layers.Flatten()
        self.encoder = tf.keras.Sequential([
            layers.Dense(self.hidden_dim, activation="relu"),
            layers.Dense(self.hidden_dim, activation="relu"),
        ])
        self.mu_layer = layers.Dense(latent_size)
        self.logvar_layer = layers.Dense(latent_size)
        self.decoder = build_decoder(input_size, self.hidden_dim)

    def call(self, x, c):
        h = self.encoder(tf.concat([self.flatten(x), c], axis=-1))
        mu, logvar = self.mu_layer(h), self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=-1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    eps = tf.random.normal(tf.shape(mu), dtype=mu.dtype)
    return mu + tf.exp(0.5 * logvar) * eps


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1.0 - 1e-7)
    return tf.reduce_sum(-x * tf.math.log(x_hat) - (1.0 - x) * tf.math.log(1.0 - x_hat))


def loss_function(x_hat, x, mu, logvar):
    batch_size = tf.cast(tf.shape(x)[0], x_hat.dtype)
    kld = -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar))
    return (bce_function(x_hat, x) + kld) / batch_size
