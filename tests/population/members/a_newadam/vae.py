"""Two hidden layers of 256 with LeakyReLU(0.2) as separate layers, for both VAE and CVAE."""
import tensorflow as tf
from tensorflow import keras
from keras.layers import Dense, LeakyReLU, Reshape


def make_encoder(hidden_dim=256):
    return keras.Sequential([
        Dense(hidden_dim),
        LeakyReLU(negative_slope=0.2),
        Dense(hidden_dim),
        LeakyReLU(negative_slope=0.2),
    ])


def make_decoder(input_size, hidden_dim=256):
    return keras.Sequential([
        Dense(hidden_dim),
        LeakyReLU(negative_slope=0.2),
        Dense(hidden_dim),
        LeakyReLU(negative_slope=0.2),
        Dense(input_size, activation="sigmoid"),
        Reshape((1, 28, 28)),
    ])


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.encoder = make_encoder()
        self.mu_layer = Dense(latent_size)
        self.logvar_layer = Dense(latent_size)
        self.decoder = make_decoder(input_size)

    def call(self, x):
        x = tf.reshape(x, (tf.shape(x)[0], -1))
        enc = self.encoder(x)
        mu, logvar = self.mu_layer(enc), self.logvar_layer(enc)
        z = reparametrize(mu, logvar)
        return self.decoder(z), mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.encoder = make_encoder()
        self.mu_layer = Dense(latent_size)
        self.logvar_layer = Dense(latent_size)
        # decoder input is [z, one-hot c]
        self.decoder = make_decoder(input_size)

    def call(self, x, c):
        x = tf.reshape(x, (tf.shape(x)[0], -1))
        enc = self.encoder(tf.concat([x, c], axis=1))
        mu, logvar = self.mu_layer(enc), self.logvar_layer(enc)
        z = reparametrize(mu, logvar)
        zc = tf.concat([z, c], axis=1)
        return self.decoder(zc), mu, logvar


def reparametrize(mu, logvar):
    std = tf.exp(logvar * 0.5)
    noise = tf.random.normal(tf.shape(std))
    return mu + noise * std


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    return -tf.reduce_sum(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))


def loss_function(x_hat, x, mu, logvar):
    N = x.shape[0]
    kld = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar))
    return (bce_function(x_hat, x) + kld) / N
