"""Keras 2 style: Sequential with InputLayer(input_shape=...), 2 hidden layers of 400, ReLU."""
import tensorflow as tf


class VAE(tf.keras.Model):
    def __init__(self, input_size, latent_size=15):
        super(VAE, self).__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.hidden_dim = 400

        self.encoder = tf.keras.Sequential([
            tf.keras.layers.InputLayer(input_shape=(input_size,)),
            tf.keras.layers.Dense(self.hidden_dim, input_dim=input_size, activation='relu'),
            tf.keras.layers.Dense(self.hidden_dim, activation='relu'),
        ])
        self.mu_layer = tf.keras.layers.Dense(self.latent_size)
        self.logvar_layer = tf.keras.layers.Dense(self.latent_size)

        self.decoder = tf.keras.Sequential([
            tf.keras.layers.InputLayer(input_shape=(latent_size,)),
            tf.keras.layers.Dense(self.hidden_dim, input_dim=latent_size, activation='relu'),
            tf.keras.layers.Dense(self.hidden_dim, activation='relu'),
            tf.keras.layers.Dense(input_size, activation='sigmoid'),
            tf.keras.layers.Reshape((1, 28, 28)),
        ])

    def call(self, x):
        x_flat = tf.reshape(x, [-1, self.input_size])
        h = self.encoder(x_flat)
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(tf.keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super(CVAE, self).__init__()
        self.input_size = input_size
        self.latent_size = latent_size
        self.num_classes = num_classes
        self.hidden_dim = 400

        self.encoder = tf.keras.Sequential([
            tf.keras.layers.InputLayer(input_shape=(input_size + num_classes,)),
            tf.keras.layers.Dense(self.hidden_dim, input_dim=input_size + num_classes, activation='relu'),
            tf.keras.layers.Dense(self.hidden_dim, activation='relu'),
        ])
        self.mu_layer = tf.keras.layers.Dense(self.latent_size)
        self.logvar_layer = tf.keras.layers.Dense(self.latent_size)

        self.decoder = tf.keras.Sequential([
            tf.keras.layers.InputLayer(input_shape=(latent_size + num_classes,)),
            tf.keras.layers.Dense(self.hidden_dim, input_dim=latent_size + num_classes, activation='relu'),
            tf.keras.layers.Dense(self.hidden_dim, activation='relu'),
            tf.keras.layers.Dense(input_size, activation='sigmoid'),
            tf.keras.layers.Reshape((1, 28, 28)),
        ])

    def call(self, x, c):
        x_flat = tf.reshape(x, [-1, self.input_size])
        h = self.encoder(tf.concat([x_flat, c], axis=1))
        mu = self.mu_layer(h)
        logvar = self.logvar_layer(h)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(tf.concat([z, c], axis=1))
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    std = tf.exp(0.5 * logvar)
    eps = tf.random.normal(tf.shape(mu))
    z = mu + std * eps
    return z


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1 - 1e-7)
    bce = -(x * tf.math.log(x_hat) + (1 - x) * tf.math.log(1 - x_hat))
    return tf.reduce_sum(bce)


def loss_function(x_hat, x, mu, logvar):
    N = tf.cast(tf.shape(x)[0], tf.float32)
    rec_loss = bce_function(x_hat, x)
    kl_loss = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mu) - tf.exp(logvar))
    loss = (rec_loss + kl_loss) / N
    return loss
