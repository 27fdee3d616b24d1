"""Fresh Adam(1e-3) made in each train_vae call, loss printed every batch, returns sum() of loss tensors."""
import argparse

import numpy as np
import tensorflow as tf
from tensorflow import keras

from vae import VAE, CVAE, loss_function


def one_hot(labels, class_size):
    return tf.one_hot(tf.cast(labels, tf.int64), class_size)


def train_vae(model, train_loader, args, is_cvae=False):
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    losses = []
    for i, (images, labels) in enumerate(train_loader):
        with tf.GradientTape() as tape:
            if is_cvae:
                x_hat, mu, logvar = model(images, one_hot(labels, 10))
            else:
                x_hat, mu, logvar = model(images)
            loss = loss_function(x_hat, images, mu, logvar)
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        print(f"batch {i}: loss = {loss.numpy():.4f}")
        losses.append(loss)
    return sum(losses)


def load_mnist(batch_size, buffer_size=1024):
    (x, y), _ = keras.datasets.mnist.load_data()
    x = np.expand_dims(x, 1).astype(np.float32) / 255.0
    data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int64)))
    return data.shuffle(buffer_size).batch(batch_size)


def parseArguments():
    p = argparse.ArgumentParser()
    p.add_argument("--cvae", action="store_true")
    p.add_argument("--load_weights", action="store_true")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--num_epochs", type=int, default=10)
    p.add_argument("--latent_size", type=int, default=15)
    p.add_argument("--input_size", type=int, default=28 * 28)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    args = p.parse_args()
    args.is_cvae = args.cvae
    return args


def main(args):
    train_loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(args.input_size, latent_size=args.latent_size)
    else:
        model = VAE(args.input_size, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(args.learning_rate)
    for epoch in range(args.num_epochs):
        total = train_vae(model, train_loader, args, is_cvae=args.is_cvae)
        print("epoch", epoch, "total loss", float(total))
    model.save_weights("model.weights.h5")


if __name__ == "__main__":
    main(parseArguments())
