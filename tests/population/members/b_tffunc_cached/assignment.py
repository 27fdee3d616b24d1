"""Training step compiled with @tf.function, defined inside train_vae; tf.one_hot labels."""
import argparse

import numpy as np
import tensorflow as tf

from vae import VAE, CVAE, loss_function


def parseArguments():
    p = argparse.ArgumentParser()
    p.add_argument("--cvae", action="store_true")
    p.add_argument("--load_weights", action="store_true")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--num_epochs", type=int, default=10)
    p.add_argument("--latent_size", type=int, default=15)
    p.add_argument("--input_size", type=int, default=28 * 28)
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    args = p.parse_args()
    args.is_cvae = args.cvae
    return args


def one_hot(labels, class_size):
    return tf.one_hot(tf.cast(labels, tf.int64), class_size, dtype=tf.float32)


def train_vae(model, train_loader, args, is_cvae=False):

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            if is_cvae:
                x_hat, mu, logvar = model(x, one_hot(y, 10))
            else:
                x_hat, mu, logvar = model(x)
            loss = loss_function(x_hat, x, mu, logvar)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    total_loss = 0.0
    for x, y in train_loader:
        total_loss += float(train_step(x, y))
    return total_loss


def load_mnist(batch_size, buffer_size=1024):
    (x_train, y_train), _ = tf.keras.datasets.mnist.load_data()
    x_train = np.expand_dims(x_train.astype("float32") / 255.0, 1)
    dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train.astype("int64")))
    return dataset.shuffle(buffer_size).batch(batch_size)


def main():
    args = parseArguments()
    loader = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(args.input_size, args.num_classes, args.latent_size)
    else:
        model = VAE(args.input_size, args.latent_size)
    model.optimizer = tf.keras.optimizers.Adam(learning_rate=args.learning_rate)
    n = len(loader)
    for epoch in range(args.num_epochs):
        total = train_vae(model, loader, args, args.is_cvae)
        print("epoch %d  loss %.3f" % (epoch + 1, total / n))


if __name__ == "__main__":
    main()
