"""Eager loop, fresh Adam(args.learning_rate) each call, tf.one_hot, bottleneck decoder."""
import argparse
import os

import numpy as np
import tensorflow as tf
from tensorflow import keras

from vae import VAE, CVAE, reparametrize, loss_function


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
    return tf.one_hot(labels, depth=class_size, dtype=tf.float32)


def train_vae(model, train_loader, args, is_cvae=False):
    optimizer = tf.keras.optimizers.Adam(args.learning_rate)
    total_loss = 0
    for images, labels in train_loader:
        with tf.GradientTape() as tape:
            if is_cvae:
                x_hat, mu, logvar = model(images, one_hot(labels, 10))
            else:
                x_hat, mu, logvar = model(images)
            loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        total_loss += loss
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (x_train, y_train), _ = tf.keras.datasets.mnist.load_data()
    x_train = (x_train.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y_train = y_train.astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    return dataset.shuffle(buffer_size=buffer_size).batch(batch_size)


def main(args):
    train_loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(784, num_classes=10, latent_size=args.latent_size)
    else:
        model = VAE(784, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(args.learning_rate)
    num_batches = len(train_loader)
    for epoch in range(args.num_epochs):
        total_loss = train_vae(model, train_loader, args, is_cvae=args.is_cvae)
        print(f"Epoch {epoch + 1}/{args.num_epochs}, loss {float(total_loss) / num_batches:.4f}")
    os.makedirs("outputs", exist_ok=True)
    model.save_weights(os.path.join("outputs", "model.weights.h5"))


if __name__ == "__main__":
    main(parseArguments())
