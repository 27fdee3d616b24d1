"""VAE and CVAE with 2 hidden layers of 512 (ReLU); loss written as per-image means."""
import tensorflow as tf
from tensorflow import keras


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.H = 512
        self.encoder = keras.Sequential(
            [
                keras.layers.Flatten(),
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
            ]
        )
        self.mu_layer = keras.layers.Dense(self.latent_size)
        self.logvar_layer = keras.layers.Dense(self.latent_size)
        self.decoder = keras.Sequential(
            [
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
                keras.layers.Dense(self.input_size),
                keras.layers.Activation("sigmoid"),
                keras.layers.Reshape((1, 28, 28)),
            ]
        )

    def call(self, x):
        enc = self.encoder(x)
        mu = self.mu_layer(enc)
        logvar = self.logvar_layer(enc)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.num_classes = num_classes
        self.H = 512
        self.encoder = keras.Sequential(
            [
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
            ]
        )
        self.mu_layer = keras.layers.Dense(self.latent_size)
        self.logvar_layer = keras.layers.Dense(self.latent_size)
        self.decoder = keras.Sequential(
            [
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
                keras.layers.Dense(self.H),
                keras.layers.ReLU(),
                keras.layers.Dense(self.input_size, activation="sigmoid"),
                keras.layers.Reshape((1, 28, 28)),
            ]
        )

    def call(self, x, c):
        x = keras.layers.Flatten()(x)
        enc = self.encoder(tf.concat([x, c], axis=1))
        mu = self.mu_layer(enc)
        logvar = self.logvar_layer(enc)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    std = tf.math.exp(logvar * 0.5)
    noise = tf.random.normal(shape=tf.shape(std))
    return mu + noise * std


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    per_pixel = x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat)
    return -tf.reduce_sum(per_pixel)


def loss_function(x_hat, x, mu, logvar):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    bce_pixels = -(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))
    bce_per_image = tf.reduce_sum(tf.reshape(bce_pixels, [tf.shape(x)[0], -1]), axis=1)
    kl_per_image = tf.reduce_sum(-0.5 * (1 + logvar - tf.square(mu) - tf.exp(logvar)), axis=1)
    return tf.reduce_mean(bce_per_image) + tf.reduce_mean(kl_per_image)
