"""Eager training loop printing progress every 100 batches; one-hot via keras to_categorical."""
import argparse

import numpy as np
import tensorflow as tf

from vae import VAE, CVAE, loss_function


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


def one_hot(labels, class_size):
    encoded = tf.keras.utils.to_categorical(labels, num_classes=class_size)
    return tf.cast(encoded, tf.float32)


def train_vae(model, train_loader, args, is_cvae=False):
    running = 0.0
    for step, (images, labels) in enumerate(train_loader):
        with tf.GradientTape() as tape:
            if is_cvae:
                c = one_hot(labels, 10)
                recon, mu, logvar = model(images, c)
            else:
                recon, mu, logvar = model(images)
            batch_loss = loss_function(recon, images, mu, logvar)
        grads = tape.gradient(batch_loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        running += float(batch_loss)
        if step % 100 == 0:
            print(f"  batch {step:4d}  loss {batch_loss.numpy():.3f}")
    return running


def load_mnist(batch_size, buffer_size=1024):
    (train_images, train_labels), _ = tf.keras.datasets.mnist.load_data()
    train_images = train_images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    train_labels = train_labels.astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((train_images, train_labels))
    dataset = dataset.shuffle(buffer_size).batch(batch_size)
    return dataset


def main():
    args = parseArguments()
    dataset = load_mnist(args.batch_size)
    if args.is_cvae:
        model = CVAE(args.input_size, latent_size=args.latent_size)
    else:
        model = VAE(args.input_size, latent_size=args.latent_size)
    model.optimizer = tf.keras.optimizers.Adam(learning_rate=args.learning_rate)
    num_batches = len(dataset)
    for epoch in range(1, args.num_epochs + 1):
        total = train_vae(model, dataset, args, is_cvae=args.is_cvae)
        print(f"Epoch {epoch}: average loss {total / num_batches:.3f}")


if __name__ == "__main__":
    main()
