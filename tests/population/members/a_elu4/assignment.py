"""Eager training loop on model.optimizer, NumPy one-hot via np.eye."""
import argparse

import numpy as np
import tensorflow as tf

from vae import VAE, CVAE, loss_function


def one_hot(labels, class_size):
    labels = np.array(labels, dtype=np.int64)
    return np.eye(class_size, dtype=np.float32)[labels]


def train_vae(model, train_loader, args, is_cvae=False):
    total_loss = 0.0
    for batch_images, batch_labels in train_loader:
        with tf.GradientTape() as tape:
            if is_cvae:
                c = one_hot(batch_labels, 10)
                x_hat, mu, logvar = model(batch_images, c)
            else:
                x_hat, mu, logvar = model(batch_images)
            batch_loss = loss_function(x_hat, batch_images, mu, logvar)
        grads = tape.gradient(batch_loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        total_loss += batch_loss.numpy()
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (train_x, train_y), (_, _) = tf.keras.datasets.mnist.load_data()
    train_x = train_x[:, np.newaxis, :, :].astype(np.float32) / 255.0
    train_y = train_y.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((train_x, train_y))
    ds = ds.shuffle(buffer_size).batch(batch_size)
    return ds


def parseArguments():
    parser = argparse.ArgumentParser()
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


def main():
    args = parseArguments()
    train_loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(args.input_size, num_classes=10, latent_size=args.latent_size)
    else:
        model = VAE(args.input_size, latent_size=args.latent_size)

    n_batches = len(train_loader)
    for epoch in range(1, args.num_epochs + 1):
        total = train_vae(model, train_loader, args, is_cvae=args.is_cvae)
        print("epoch %d  train loss %.3f" % (epoch, total / n_batches))


if __name__ == "__main__":
    main()
