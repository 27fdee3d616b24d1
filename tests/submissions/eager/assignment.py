"""A correct submission written the usual student way: eager loop, numpy one-hot."""
import argparse
import numpy as np
import tensorflow as tf
from vae import VAE, CVAE, loss_function


def parseArguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--is_cvae", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--latent_size", type=int, default=15)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    return parser.parse_args()


def one_hot(labels, class_size):
    targets = np.zeros((len(labels), class_size), dtype=np.float32)
    for i, label in enumerate(labels):
        targets[i, int(label)] = 1
    return targets


def train_vae(model, train_loader, args, is_cvae=False):
    total_loss = 0
    for images, labels in train_loader:
        with tf.GradientTape() as tape:
            if is_cvae:
                x_hat, mu, logvar = model(images, one_hot(labels.numpy(), 10))
            else:
                x_hat, mu, logvar = model(images)
            loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        total_loss += loss
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (x, y), _ = tf.keras.datasets.mnist.load_data()
    x = (x.astype(np.float32) / 255.0)[:, None]
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(buffer_size).batch(batch_size)
