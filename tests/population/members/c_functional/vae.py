"""Functional keras.Model encoder/decoder built in __init__, 3 hidden layers of 256 ReLU."""
import tensorflow as tf
import keras


def build_encoder(in_dim, hidden=256, depth=3, name="encoder"):
    inp = keras.Input(shape=(in_dim,))
    h = inp
    for _ in range(depth):
        h = keras.layers.Dense(hidden, activation="relu")(h)
    return keras.Model(inp, h, name=name)


def build_decoder(in_dim, out_dim, hidden=256, depth=3, name="decoder"):
    inp = keras.Input(shape=(in_dim,))
    h = inp
    for _ in range(depth):
        h = keras.layers.Dense(hidden, activation="relu")(h)
    out = keras.layers.Dense(out_dim, activation="sigmoid")(h)
    out = keras.layers.Reshape((1, 28, 28))(out)
    return keras.Model(inp, out, name=name)


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.encoder = build_encoder(input_size)
        self.mu_layer = keras.layers.Dense(latent_size)
        self.logvar_layer = keras.layers.Dense(latent_size)
        self.decoder = build_decoder(latent_size, input_size)

    def call(self, x):
        flat = tf.reshape(x, (tf.shape(x)[0], self.input_size))
        hidden = self.encoder(flat)
        mu = self.mu_layer(hidden)
        logvar = self.logvar_layer(hidden)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super().__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.encoder = build_encoder(input_size + num_classes)
        self.mu_layer = keras.layers.Dense(latent_size)
        self.logvar_layer = keras.layers.Dense(latent_size)
        self.decoder = build_decoder(latent_size + num_classes, input_size)

    def call(self, x, c):
        flat = tf.reshape(x, (tf.shape(x)[0], self.input_size))
        hidden = self.encoder(tf.concat([flat, c], axis=-1))
        mu = self.mu_layer(hidden)
        logvar = self.logvar_layer(hidden)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=-1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    noise = tf.random.normal(shape=tf.shape(mu), dtype=mu.dtype)
    std_dev = tf.exp(logvar * 0.5)
    z = mu + std_dev * noise
    return z


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1.0 - 1e-7)
    return -tf.reduce_sum(x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat))


def loss_function(x_hat, x, mu, logvar):
    n = tf.cast(tf.shape(mu)[0], tf.float32)
    recon = bce_function(x_hat, x)
    kl = -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar))
    return (recon + kl) / n
