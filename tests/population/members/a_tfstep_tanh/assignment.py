"""Module-level @tf.function train step (model, optimizer, images, one-hot labels), NumPy-loop one_hot."""
import argparse

import numpy as np
import tensorflow as tf
import keras

from vae import *


def one_hot(labels, class_size):
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    targets = np.zeros((len(labels), class_size), dtype=np.float32)
    for i, label in enumerate(labels):
        targets[i, label] = 1.0
    return targets


@tf.function
def train_step(model, optimizer, images, labels_1hot, conditional):
    with tf.GradientTape() as tape:
        if conditional:
            x_hat, mu, logvar = model(images, labels_1hot)
        else:
            x_hat, mu, logvar = model(images)
        loss = loss_function(x_hat, images, mu, logvar)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


def _build(model, optimizer, images, labels_1hot, conditional):
    # variables have to exist before the tf.function runs (it may be traced again for a new model)
    if not model.built:
        if conditional:
            model(images, labels_1hot)
        else:
            model(images)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)


def train_vae(model, train_loader, args, is_cvae=False):
    optimizer = model.optimizer
    total_loss = 0
    for step, (images, labels) in enumerate(train_loader):
        labels_1hot = tf.convert_to_tensor(one_hot(labels.numpy(), 10))
        if step == 0:
            _build(model, optimizer, images, labels_1hot, is_cvae)
        loss = train_step(model, optimizer, images, labels_1hot, bool(is_cvae))
        total_loss += loss
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (train_images, train_labels), _ = tf.keras.datasets.mnist.load_data()
    train_images = train_images.reshape(-1, 1, 28, 28).astype("float32") / 255.0
    train_labels = train_labels.astype("int64")
    dataset = tf.data.Dataset.from_tensor_slices((train_images, train_labels))
    dataset = dataset.shuffle(buffer_size=buffer_size).batch(batch_size)
    return dataset


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


def main(args):
    dataset = load_mnist(args.batch_size)
    num_batches = len(dataset)
    if args.is_cvae:
        model = CVAE(args.input_size, num_classes=10, latent_size=args.latent_size)
    else:
        model = VAE(args.input_size, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(learning_rate=args.learning_rate)

    for epoch in range(args.num_epochs):
        total = train_vae(model, dataset, args, is_cvae=args.is_cvae)
        print("Epoch {}: average loss {:.4f}".format(epoch, float(total) / num_batches))


if __name__ == "__main__":
    main(parseArguments())
