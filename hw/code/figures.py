"""PNG figures of a trained VAE or CVAE: samples, interpolations, one code with ten labels, the loss curve.

Every figure is written to a temporary file and renamed into place, so an
interrupted run never leaves a half-written PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from training import atomic_output  # noqa: E402

GRID_SIZE = 10
# Pixels of a tile and of the line between tiles in ``tile_images``.
TILE = 28
PAD = 1


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it."""
    path = Path(path)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
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


def image_grid_figure(images, rows, cols, title, row_labels=None, col_labels=None, gaps_after=()):
    """A figure showing ``images`` (rows * cols, 1, 28, 28) as a grid (dark digits on white).

    ``row_labels`` and ``col_labels`` name the rows (left) and the columns (top); a white gap
    follows each column index in ``gaps_after``.
    """
    canvas = 1.0 - tile_images(images, rows, cols)
    column_starts = [PAD + (TILE + PAD) * c for c in range(cols)]
    for gap in sorted(gaps_after, reverse=True):
        split = column_starts[gap] + TILE + PAD
        canvas = np.concatenate([canvas[:, :split], np.ones((canvas.shape[0], 2 * TILE // 7)), canvas[:, split:]],
                                axis=1)
        column_starts = [start + (2 * TILE // 7 if c > gap else 0) for c, start in enumerate(column_starts)]
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / (TILE + PAD) * 0.6 + 1, rows * 0.6 + 0.8))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.tick_params(length=0)
    if col_labels is None:
        ax.set_xticks([])
    else:
        ax.xaxis.tick_top()
        ax.set_xticks([start + TILE // 2 for start in column_starts], [str(label) for label in col_labels],
                      fontsize="small")
    if row_labels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks([PAD + (TILE + PAD) * r + TILE // 2 for r in range(rows)], [str(label) for label in row_labels])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def save_loss_curve(history, path: Path) -> Path:
    """The training loss per image against the epoch, and the test loss's two terms when measured."""
    epochs = [record.epoch for record in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [record.loss for record in history], marker="o", label="training loss (negative ELBO)")
    if history and all(record.test_reconstruction is not None for record in history):
        ax.plot(epochs, [r.test_reconstruction + r.test_kl for r in history], marker="o",
                label="test loss, end of epoch")
        ax.plot(epochs, [r.test_reconstruction for r in history], marker=".", label="test reconstruction (BCE)")
        ax.plot(epochs, [r.test_kl for r in history], marker=".", label="test KL")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image (nats)")
    ax.set_title("Loss per image")
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


def one_code_ten_labels(model, latent_size: int, rows: int = GRID_SIZE, num_classes: int = 10,
                        seed: int = 0) -> np.ndarray:
    """``rows`` codes ``z ~ N(0, I)``, each decoded with every label: row r is one z, column k label k.

    Returns (rows * num_classes, 1, 28, 28).
    """
    z = np.random.default_rng(seed).standard_normal((rows, latent_size)).astype(np.float32)
    labels = np.tile(np.arange(num_classes), rows)
    return decode(model, np.repeat(z, num_classes, axis=0), labels, num_classes)


def interpolation_codes(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """Codes on the straight line from each row of ``start`` to the same row of ``end``.

    start, end: (R, Z). Returns (R * steps, Z), row r's codes contiguous.
    """
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    codes = (1.0 - weights) * start[:, None, :] + weights * end[:, None, :]
    return codes.reshape(-1, start.shape[1])


def interpolation_rows(model, first: np.ndarray, last: np.ndarray, steps: int = GRID_SIZE) -> np.ndarray:
    """Each row: a test image, ``steps`` decodings along the line between the two codes, the other image.

    first, last: (R, 1, 28, 28) float32 test images in [0, 1]. The line joins their posterior means
    ``mu``, so its end columns are reconstructions, not the images. Returns (R * (steps + 2), 1, 28, 28).
    """
    mu_first = np.asarray(model(first)[1])
    mu_last = np.asarray(model(last)[1])
    decoded = decode(model, interpolation_codes(mu_first, mu_last, steps)).reshape(len(first), steps, 1, 28, 28)
    rows = np.concatenate([first[:, None], decoded, last[:, None]], axis=1)
    return rows.reshape(-1, 1, 28, 28)


def draw_model_figures(model, config, arrays, outputs: Path, seed: int = 0) -> list[Path]:
    """The figures of the trained ``model``, written to ``outputs``; returns their paths.

    A CVAE: ``cvae_samples.png`` (row k decoded with label k) and ``cvae_one_z_ten_labels.png``
    (row r: one z decoded with the labels 0-9). A VAE: ``vae_samples.png`` and
    ``vae_interpolation.png`` (two test images per row and the decodings between them).
    """
    rng = np.random.default_rng(seed)
    outputs = Path(outputs)
    latent_size = config.latent_size
    if config.cvae:
        images = conditional_samples(model, latent_size, seed=seed)
        fig = image_grid_figure(images, GRID_SIZE, GRID_SIZE,
                                "CVAE samples: row k is decoded with label k",
                                row_labels=range(GRID_SIZE))
        written = [save_figure(fig, outputs / "cvae_samples.png")]
        sweep = one_code_ten_labels(model, latent_size, seed=seed + 1)
        fig = image_grid_figure(sweep, GRID_SIZE, GRID_SIZE,
                                "CVAE: each row decodes one z ~ N(0, I) with the labels 0-9",
                                col_labels=[f"label {k}" if k == 0 else k for k in range(GRID_SIZE)])
        written.append(save_figure(fig, outputs / "cvae_one_z_ten_labels.png"))
        return written

    z = rng.standard_normal((GRID_SIZE * GRID_SIZE, latent_size)).astype(np.float32)
    samples = decode(model, z)
    written = [save_figure(image_grid_figure(samples, GRID_SIZE, GRID_SIZE,
                                             "VAE samples, z ~ N(0, I)"),
                           outputs / "vae_samples.png")]

    # Interpolate between the posterior means of pairs of test images.
    pairs = rng.choice(len(arrays.test_images), size=(GRID_SIZE, 2), replace=False)
    test = arrays.test_images[pairs.reshape(-1)].astype(np.float32)[:, None] / 255.0
    rows = interpolation_rows(model, test[0::2], test[1::2])
    columns = GRID_SIZE + 2
    labels = ["test\nimage", "decoded\nμ", *[""] * (GRID_SIZE - 2), "decoded\nμ", "test\nimage"]
    fig = image_grid_figure(rows, GRID_SIZE, columns,
                            "VAE interpolation between two test images per row:\n"
                            "decoded codes on the line from one image's μ to the other's",
                            col_labels=labels, gaps_after=(0, columns - 2))
    written.append(save_figure(fig, outputs / "vae_interpolation.png"))
    return written
