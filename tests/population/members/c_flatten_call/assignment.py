"""Compiled @tf.function train step cached per model in a module-level dict, model.optimizer."""
import argparse

import numpy as np
import tensorflow as tf
import keras

from vae import VAE, CVAE, loss_function

_train_steps = {}


def parseArguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cvae", action="store_true")
    parser.add_argument("--load_weights", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--latent_size", type=int, default=15)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    args = parser.parse_args()
    args.is_cvae = args.cvae
    return args


def one_hot(labels, class_size):
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    targets = np.zeros((labels.shape[0], class_size), dtype=np.float32)
    targets[np.arange(labels.shape[0]), labels] = 1.0
    return tf.convert_to_tensor(targets)


def _make_train_step(model, is_cvae):
    @tf.function
    def train_step(x, c):
        with tf.GradientTape() as tape:
            if is_cvae:
                x_hat, mu, logvar = model(x, c)
            else:
                x_hat, mu, logvar = model(x)
            loss = loss_function(x_hat, x, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return train_step


def train_vae(model, train_loader, args, is_cvae=False):
    key = id(model)
    if key not in _train_steps:
        _train_steps[key] = _make_train_step(model, is_cvae)
    step = _train_steps[key]
    total_loss = 0.0
    for x, y in train_loader:
        c = one_hot(y, 10)
        loss = step(x, c)
        total_loss += float(loss)
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (train_x, train_y), _ = keras.datasets.mnist.load_data()
    train_x = np.expand_dims(train_x, 1).astype(np.float32) / 255.0
    train_y = train_y.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((train_x, train_y))
    ds = ds.shuffle(buffer_size).batch(batch_size)
    return ds


def main(args):
    loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(784, 10, latent_size=args.latent_size)
    else:
        model = VAE(784, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(args.learning_rate)
    for epoch in range(args.num_epochs):
        total = train_vae(model, loader, args, is_cvae=args.is_cvae)
        print("epoch", epoch, "train loss", total / len(loader))


if __name__ == "__main__":
    main(parseArguments())
