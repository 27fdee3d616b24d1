"""Eager loop with enumerate, model.optimizer, tf.one_hot on int32 labels, total via tf.add."""
import argparse

import numpy as np
import tensorflow as tf
import keras
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from vae import VAE, CVAE, loss_function


def parseArguments():
    parser = argparse.ArgumentParser(description="VAE / CVAE on MNIST")
    parser.add_argument("--cvae", action="store_true", help="train a conditional VAE")
    parser.add_argument("--load_weights", action="store_true")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--latent_size", type=int, default=15)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    args = parser.parse_args()
    args.is_cvae = args.cvae
    return args


def one_hot(labels, class_size):
    return tf.one_hot(tf.cast(labels, tf.int32), class_size)


def train_vae(model, train_loader, args, is_cvae=False):
    total_loss = tf.constant(0.0)
    for step, (images, labels) in enumerate(train_loader):
        with tf.GradientTape() as tape:
            if is_cvae:
                onehots = one_hot(labels, 10)
                x_hat, mu, logvar = model(images, onehots)
            else:
                x_hat, mu, logvar = model(images)
            batch_loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(batch_loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        total_loss = tf.add(total_loss, batch_loss)
        if step % 100 == 0 and getattr(args, "verbose", False):
            print(f"  batch {step}: {float(batch_loss):.3f}")
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (images, labels), _ = tf.keras.datasets.mnist.load_data()
    images = images.reshape(-1, 1, 28, 28).astype("float32") / 255.0
    labels = labels.astype("int64")
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    return data.shuffle(buffer_size).batch(batch_size)


def save_samples(model, args, path="samples.png"):
    z = tf.random.normal((10, args.latent_size))
    if args.is_cvae:
        z = tf.concat([z, one_hot(np.arange(10), 10)], axis=-1)
    imgs = model.decoder(z).numpy()
    fig, axes = plt.subplots(1, 10, figsize=(10, 1.2))
    for ax, img in zip(axes, imgs):
        ax.imshow(img[0], cmap="gray")
        ax.axis("off")
    fig.savefig(path)
    plt.close(fig)


def main(args):
    train_loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(784, 10, latent_size=args.latent_size)
    else:
        model = VAE(784, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(args.learning_rate)
    n_batches = int(train_loader.cardinality())
    for epoch in range(args.num_epochs):
        total = train_vae(model, train_loader, args, is_cvae=args.is_cvae)
        print(f"Epoch {epoch}: {float(total) / n_batches:.4f}")
    save_samples(model, args)


if __name__ == "__main__":
    main(parseArguments())
