"""Deep VAE/CVAE: four ELU hidden layers (1024, 512, 256, 128), Adam(1e-3) created in __init__."""
import tensorflow as tf
from tensorflow.keras import layers


ENC_SIZES = [1024, 512, 256, 128]


class VAE(tf.keras.Model):
    def __init__(self, input_size, latent_size=15):
        super(VAE, self).__init__()
        self.input_size = input_size
        self.latent_size = latent_size

        enc_layers = [layers.Dense(units, activation="elu") for units in ENC_SIZES]
        self.encoder = tf.keras.Sequential(enc_layers)
        self.mu_layer = layers.Dense(self.latent_size)
        self.logvar_layer = layers.Dense(self.latent_size)

        dec_layers = [layers.Dense(units, activation="elu") for units in reversed(ENC_SIZES)]
        dec_layers.append(layers.Dense(self.input_size, activation="sigmoid"))
        dec_layers.append(layers.Reshape((1, 28, 28)))
        self.decoder = tf.keras.Sequential(dec_layers)

        self.optimizer = tf.keras.optimizers.Adam(1e-3)

    def call(self, x):
        x_flat = tf.reshape(x, [-1, self.input_size])
        enc_out = self.encoder(x_flat)
        mu = self.mu_layer(enc_out)
        logvar = self.logvar_layer(enc_out)
        z = reparametrize(mu, logvar)
        x_hat = self.decoder(z)
        return x_hat, mu, logvar


class CVAE(tf.keras.Model):
    def __init__(self, input_size, num_classes=10, latent_size=15):
        super(CVAE, self).__init__()
        self.input_size = input_size
        self.num_classes = num_classes
        self.latent_size = latent_size

        enc_layers = [layers.Dense(units, activation="elu") for units in ENC_SIZES]
        self.encoder = tf.keras.Sequential(enc_layers)
        self.mu_layer = layers.Dense(self.latent_size)
        self.logvar_layer = layers.Dense(self.latent_size)

        dec_layers = [layers.Dense(units, activation="elu") for units in reversed(ENC_SIZES)]
        dec_layers.append(layers.Dense(self.input_size, activation="sigmoid"))
        dec_layers.append(layers.Reshape((1, 28, 28)))
        self.decoder = tf.keras.Sequential(dec_layers)

        self.optimizer = tf.keras.optimizers.Adam(1e-3)

    def call(self, x, c):
        x_flat = tf.reshape(x, [-1, self.input_size])
        enc_in = tf.concat([x_flat, c], axis=-1)
        enc_out = self.encoder(enc_in)
        mu = self.mu_layer(enc_out)
        logvar = self.logvar_layer(enc_out)
        z = reparametrize(mu, logvar)
        dec_in = tf.concat([z, c], axis=-1)
        x_hat = self.decoder(dec_in)
        return x_hat, mu, logvar


def reparametrize(mu, logvar):
    """z = mu + sigma * eps with sigma = exp(logvar / 2) and eps ~ N(0, I)."""
    eps = tf.random.normal(shape=tf.shape(mu))
    sigma = tf.exp(logvar / 2)
    return mu + sigma * eps


def bce_function(x_hat, x):
    x_hat = tf.clip_by_value(x_hat, 1e-7, 1.0 - 1e-7)
    loss = -(x * tf.math.log(x_hat) + (1.0 - x) * tf.math.log(1.0 - x_hat))
    return tf.reduce_sum(loss)


def loss_function(x_hat, x, mu, logvar):
    num_images = tf.cast(tf.shape(x)[0], dtype=tf.float32)
    rec_loss = bce_function(x_hat, x)
    kl_loss = -0.5 * tf.reduce_sum(1 + logvar - tf.pow(mu, 2) - tf.exp(logvar))
    return (rec_loss + kl_loss) / num_images
