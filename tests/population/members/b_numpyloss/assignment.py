"""Eager loop that round-trips each batch through float64 NumPy; NumPy one-hot; total kept as a tensor."""
import argparse

import numpy as np
import tensorflow as tf
from tensorflow import keras

import vae


def parseArguments():
    parser = argparse.ArgumentParser(description="VAE / CVAE on MNIST")
    parser.add_argument("--cvae", action="store_true")
    parser.add_argument("--load_weights", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--latent_size", type=int, default=15)
    parser.add_argument("--input_size", type=int, default=784)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    args = parser.parse_args()
    args.is_cvae = args.cvae
    return args


def one_hot(labels, class_size):
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    out = np.zeros((labels.shape[0], class_size), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def train_vae(model, train_loader, args, is_cvae=False):
    total = tf.constant(0.0)
    for images, labels in train_loader:
        imgs = images.numpy().astype(np.float64)
        imgs = tf.convert_to_tensor(imgs, dtype=tf.float32)
        with tf.GradientTape() as tape:
            if is_cvae:
                c = tf.convert_to_tensor(one_hot(labels.numpy(), 10))
                x_hat, mu, logvar = model(imgs, c)
            else:
                x_hat, mu, logvar = model(imgs)
            batch_loss = vae.loss_function(x_hat, imgs, mu, logvar)
        gradients = tape.gradient(batch_loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        total = total + batch_loss
    return total


def load_mnist(batch_size, buffer_size=1024):
    (train_x, train_y), _ = keras.datasets.mnist.load_data()
    train_x = (train_x / 255.0).astype(np.float32)[:, np.newaxis, :, :]
    train_y = train_y.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((train_x, train_y))
    return ds.shuffle(buffer_size).batch(batch_size)


def main():
    args = parseArguments()
    data = load_mnist(args.batch_size)
    if args.is_cvae:
        model = vae.CVAE(args.input_size, num_classes=10, latent_size=args.latent_size)
    else:
        model = vae.VAE(args.input_size, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(args.learning_rate)
    for epoch in range(args.num_epochs):
        total = train_vae(model, data, args, is_cvae=args.is_cvae)
        print(f"epoch {epoch}: {total.numpy() / len(data):.2f}")


if __name__ == "__main__":
    main()
