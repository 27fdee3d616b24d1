"""Eager GradientTape loop with model.optimizer, tf.one_hot, returns a float total."""
import argparse
import os

import numpy as np
import tensorflow as tf
import keras

from vae import VAE, CVAE, loss_function


def one_hot(labels, class_size):
    labels = tf.cast(labels, tf.int32)
    return tf.one_hot(labels, depth=class_size, dtype=tf.float32)


def train_vae(model, train_loader, args, is_cvae=False):
    total_loss = 0.0
    for images, labels in train_loader:
        with tf.GradientTape() as tape:
            if is_cvae:
                c = one_hot(labels, 10)
                x_hat, mu, logvar = model(images, c)
            else:
                x_hat, mu, logvar = model(images)
            loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        total_loss += float(loss)
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (x_train, y_train), _ = tf.keras.datasets.mnist.load_data()
    x_train = (x_train.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y_train = y_train.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    ds = ds.shuffle(buffer_size).batch(batch_size)
    return ds


def parseArguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cvae", action="store_true")
    parser.add_argument("--load_weights", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--latent_size", type=int, default=15)
    parser.add_argument("--input_size", type=int, default=28 * 28)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    args = parser.parse_args()
    args.is_cvae = args.cvae
    return args


def save_samples(model, args, path="samples.png"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = tf.random.normal((10, args.latent_size))
    if args.is_cvae:
        c = one_hot(np.arange(10), 10)
        imgs = model.decoder(tf.concat([z, c], axis=-1))
    else:
        imgs = model.decoder(z)
    imgs = imgs.numpy().reshape(-1, 28, 28)
    fig, axes = plt.subplots(1, 10, figsize=(10, 1.5))
    for ax, img in zip(axes, imgs):
        ax.imshow(img, cmap="gray")
        ax.axis("off")
    fig.savefig(path)
    plt.close(fig)


def main(args):
    train_loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(args.input_size, latent_size=args.latent_size)
    else:
        model = VAE(args.input_size, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(args.learning_rate)

    num_batches = int(np.ceil(60000 / args.batch_size))
    for epoch in range(args.num_epochs):
        total = train_vae(model, train_loader, args, is_cvae=args.is_cvae)
        print(f"epoch {epoch + 1}/{args.num_epochs}  loss {total / num_batches:.3f}")

    save_samples(model, args, "cvae_samples.png" if args.is_cvae else "vae_samples.png")


if __name__ == "__main__":
    main(parseArguments())
