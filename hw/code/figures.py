"""PNG figures of a trained VAE or CVAE: samples, interpolations, the loss curve.

Every figure is written to a temporary file and renamed into place, so an
interrupted run never leaves a half-written PNG.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

GRID_SIZE = 10


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def tile_images(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Arrange ``images`` (rows * cols, 28, 28) (any leading channel axis is dropped) in a grid.

    Returns a 2-D float array with ``pad`` white pixels between tiles.
    """
    images = np.asarray(images, dtype=np.float32).reshape(rows * cols, 28, 28)
    height, width = 28 + pad, 28 + pad
    canvas = np.ones((rows * height + pad, cols * width + pad), dtype=np.float32)
    for index, image in enumerate(images):
        r, c = divmod(index, cols)
        canvas[pad + r * height : pad + r * height + 28, pad + c * width : pad + c * width + 28] = image
    return canvas


def image_grid_figure(images, rows, cols, title, row_labels=None):
    """A figure showing ``images`` as a grid (dark digits on white)."""
    canvas = tile_images(images, rows, cols)
    fig, ax = plt.subplots(figsize=(cols * 0.6 + 1, rows * 0.6 + 0.8))
    ax.imshow(1.0 - canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    if row_labels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks([1 + 29 * r + 14 for r in range(rows)], [str(label) for label in row_labels])
        ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def save_loss_curve(history, path: Path) -> Path:
    """Average training loss per image against the epoch (and its two terms when known)."""
    epochs = [record.epoch for record in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [record.loss for record in history], marker="o", label="negative ELBO (loss)")
    if history and all(record.reconstruction is not None for record in history):
        ax.plot(epochs, [r.reconstruction for r in history], marker=".", label="reconstruction (BCE)")
        ax.plot(epochs, [r.kl for r in history], marker=".", label="KL")
    ax.set_xlabel("epoch")
    ax.set_ylabel("average loss per image (nats)")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def decode(model, z, labels=None, num_classes: int = 10) -> np.ndarray:
    """Decode latent codes ``z`` (N, Z), with one-hot ``labels`` (N,) for a CVAE.

    Returns (N, 1, 28, 28) float32 in [0, 1].
    """
    import tensorflow as tf

    z = tf.convert_to_tensor(z, dtype=tf.float32)
    if labels is not None:
        z = tf.concat([z, tf.one_hot(labels, num_classes)], axis=-1)
    return np.asarray(model.decoder(z))


def conditional_samples(model, latent_size: int, per_class: int = GRID_SIZE, num_classes: int = 10,
                        seed: int = 0) -> np.ndarray:
    """``per_class`` samples of each digit, row k decoded with label k, ``z ~ N(0, I)``.

    Returns (num_classes * per_class, 1, 28, 28).
    """
    z = np.random.default_rng(seed).standard_normal((num_classes * per_class, latent_size))
    labels = np.repeat(np.arange(num_classes), per_class)
    return decode(model, z.astype(np.float32), labels, num_classes)


def interpolation_codes(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """Codes on the straight line from each row of ``start`` to the same row of ``end``.

    start, end: (R, Z). Returns (R * steps, Z), row r's codes contiguous.
    """
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    codes = (1.0 - weights) * start[:, None, :] + weights * end[:, None, :]
    return codes.reshape(-1, start.shape[1])


def draw_model_figures(model, config, arrays, outputs: Path, seed: int = 0) -> list[Path]:
    """The figures for the trained ``model``: a CVAE's digit grid, or a VAE's samples and interpolations."""
    rng = np.random.default_rng(seed)
    outputs = Path(outputs)
    latent_size = config.latent_size
    if config.cvae:
        images = conditional_samples(model, latent_size, seed=seed)
        fig = image_grid_figure(images, GRID_SIZE, GRID_SIZE,
                                "CVAE samples: row k is decoded with label k",
                                row_labels=range(GRID_SIZE))
        return [save_figure(fig, outputs / "cvae_samples.png")]

    z = rng.standard_normal((GRID_SIZE * GRID_SIZE, latent_size)).astype(np.float32)
    samples = decode(model, z)
    written = [save_figure(image_grid_figure(samples, GRID_SIZE, GRID_SIZE,
                                             "VAE samples, z ~ N(0, I)"),
                           outputs / "vae_samples.png")]

    # Interpolate between the posterior means of pairs of test images.
    pairs = rng.choice(len(arrays.test_images), size=(GRID_SIZE, 2), replace=False)
    test = arrays.test_images[pairs.reshape(-1)].astype(np.float32)[:, None] / 255.0
    mu = np.asarray(model(test)[1])
    codes = interpolation_codes(mu[0::2], mu[1::2], GRID_SIZE)
    fig = image_grid_figure(decode(model, codes), GRID_SIZE, GRID_SIZE,
                            "VAE interpolation between two test images per row")
    written.append(save_figure(fig, outputs / "vae_interpolation.png"))
    return written
