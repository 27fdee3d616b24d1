"""VAE and CVAE with one tanh hidden layer of 1024; images flattened with tf.reshape in call()."""
import tensorflow as tf
import keras

HIDDEN = 1024


class VAE(keras.Model):
    def __init__(self, input_size, latent_size=15):
        super(VAE, self).__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.hidden_dim = HIDDEN

        self.encoder = keras.Sequential(
            [keras.layers.Dense(self.hidden_dim, activation="tanh")], name="encoder"
        )
        self.mu_layer = keras.layers.Dense(self.latent_size, name="mu")
        self.logvar_layer = keras.layers.Dense(self.latent_size, name="logvar")
        self.decoder = keras.Sequential(
            [
                keras.layers.Dense(self.hidden_dim, activation="tanh"),
                keras.layers.Dense(self.input_size, activation="sigmoid"),
                keras.layers.Reshape((1, 28, 28)),
            ],
            name="decoder",
        )

    def call(self, x):
        flat = tf.reshape(x, [-1, self.input_size])
        hidden = self.encoder(flat)
        mu = self.mu_layer(hidden)
        logvar = self.logvar_layer(hidden)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super(CVAE, self).__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size
        self.hidden_dim = HIDDEN

        self.encoder = keras.Sequential(
            [keras.layers.Dense(self.hidden_dim, activation="tanh")], name="encoder"
        )
        self.mu_layer = keras.layers.Dense(self.latent_size, name="mu")
        self.logvar_layer = keras.layers.Dense(self.latent_size, name="logvar")
        self.decoder = keras.Sequential(
            [
                keras.layers.Dense(self.hidden_dim, activation="tanh"),
                keras.layers.Dense(self.input_size, activation="sigmoid"),
                keras.layers.Reshape((1, 28, 28)),
            ],
            name="decoder",
        )

    def call(self, x, c):
        flat = tf.reshape(x, [-1, self.input_size])
        hidden = self.encoder(tf.concat([flat, c], axis=1))
        mu = self.mu_layer(hidden)
        logvar = self.logvar_layer(hidden)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    sigma = tf.math.exp(logvar / 2.0)
    epsilon = tf.random.normal(shape=tf.shape(mu), dtype=mu.dtype)
    z = mu + sigma * epsilon
    return z


def bce_function(x_hat, x):
    eps = 1e-7
    x_hat = tf.clip_by_value(x_hat, eps, 1.0 - eps)
    bce = x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat)
    return -tf.reduce_sum(bce)


def loss_function(x_hat, x, mu, logvar):
    batch_size = tf.cast(tf.shape(x)[0], tf.float32)
    reconstruction = bce_function(x_hat, x)
    kl_divergence = -0.5 * tf.reduce_sum(1.0 + logvar - mu ** 2 - tf.math.exp(logvar))
    loss = (reconstruction + kl_divergence) / batch_size
    return loss
