"""Keras 2 style eager GradientTape loop with model.optimizer, tf.one_hot."""
import argparse
import os

import numpy as np
import tensorflow as tf

from vae import VAE, CVAE, loss_function


def parseArguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--load_weights", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--latent_size", type=int, default=15)
    parser.add_argument("--input_size", type=int, default=28 * 28)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--cvae", action="store_true")
    args = parser.parse_args()
    args.is_cvae = args.cvae
    return args


def one_hot(labels, class_size):
    labels = tf.cast(labels, tf.int32)
    return tf.one_hot(labels, depth=class_size, dtype=tf.float32)


def train_vae(model, train_loader, args, is_cvae=False):
    total_loss = 0
    for images, labels in train_loader:
        with tf.GradientTape() as tape:
            if is_cvae:
                y = one_hot(labels, 10)
                x_hat, mu, logvar = model(images, y)
            else:
                x_hat, mu, logvar = model(images)
            loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        total_loss += loss
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (x_train, y_train), _ = tf.keras.datasets.mnist.load_data()
    x_train = x_train.astype(np.float32) / 255.0
    x_train = x_train.reshape(-1, 1, 28, 28)
    y_train = y_train.astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    dataset = dataset.shuffle(buffer_size=buffer_size).batch(batch_size)
    return dataset


def main():
    args = parseArguments()
    train_dataset = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(args.input_size, latent_size=args.latent_size)
    else:
        model = VAE(args.input_size, latent_size=args.latent_size)
    model.optimizer = tf.keras.optimizers.Adam(learning_rate=args.learning_rate)
    num_batches = len(train_dataset)
    for epoch in range(args.num_epochs):
        total = train_vae(model, train_dataset, args, is_cvae=args.is_cvae)
        print("Epoch {}/{}: loss = {:.3f}".format(epoch + 1, args.num_epochs, float(total) / num_batches))
    os.makedirs("outputs", exist_ok=True)
    model.save_weights("outputs/model.weights.h5")


if __name__ == "__main__":
    main()
