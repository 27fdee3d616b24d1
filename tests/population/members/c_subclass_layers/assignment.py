"""Plain eager loop, getattr(model, 'optimizer'), NumPy eye one-hot, returns float(total)."""
import argparse

import numpy as np
import tensorflow as tf
import keras

from vae import VAE, CVAE, loss_function


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
    labels = np.array(labels, dtype=np.int64)
    return np.eye(class_size, dtype=np.float32)[labels]


def train_vae(model, train_loader, args, is_cvae=False):
    optimizer = getattr(model, "optimizer")
    total = 0.0
    for batch in train_loader:
        imgs, labels = batch
        with tf.GradientTape() as tape:
            if is_cvae:
                recon, mu, logvar = model(imgs, one_hot(labels, 10))
            else:
                recon, mu, logvar = model(imgs)
            loss = loss_function(recon, imgs, mu, logvar)
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        total += loss.numpy()
    return float(total)


def load_mnist(batch_size, buffer_size=1024):
    (x_train, y_train), _ = keras.datasets.mnist.load_data()
    x_train = x_train[:, None, :, :].astype(np.float32) / 255.0
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train.astype(np.int64)))
    dataset = dataset.shuffle(buffer_size).batch(batch_size)
    return dataset


def main(args):
    dataset = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(784, num_classes=10, latent_size=args.latent_size)
    else:
        model = VAE(784, latent_size=args.latent_size)
    model.optimizer = keras.optimizers.Adam(learning_rate=args.learning_rate)
    for epoch in range(1, args.num_epochs + 1):
        epoch_loss = train_vae(model, dataset, args, is_cvae=args.is_cvae)
        print("Epoch %d  loss per image: %.3f" % (epoch, epoch_loss / len(dataset)))


if __name__ == "__main__":
    main(parseArguments())
