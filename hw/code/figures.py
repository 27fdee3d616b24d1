"""PNG figures of a trained VAE or CVAE: samples, interpolations, one code with ten labels, the loss curve.

Every figure is written atomically (``save_figure``): an interrupted run never leaves a half-written PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from mnist_data import NUM_CLASSES, atomic_output  # noqa: E402

GRID_SIZE = 10
# Pixels of a tile, of the line between tiles, and of the gap after a column in ``gaps_after``.
TILE, PAD, GAP = 28, 1, 8


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and close it."""
    path = Path(path)
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def column_starts(cols: int, gaps_after=()) -> list[int]:
    """The first pixel column of each tile of a grid drawn by ``tile_images``."""
    return [PAD + c * (TILE + PAD) + GAP * sum(c > gap for gap in gaps_after) for c in range(cols)]


def tile_images(images: np.ndarray, rows: int, cols: int, gaps_after=()) -> np.ndarray:
    """Arrange ``images`` (rows * cols, [1,] 28, 28) in a grid, row by row: a 2-D float array.

    A line of ones separates the tiles; a band of zeros follows each column index in ``gaps_after``.
    """
    images = np.asarray(images, dtype=np.float32).reshape(rows, cols, TILE, TILE)
    starts = column_starts(cols, gaps_after)
    canvas = np.ones((PAD + rows * (TILE + PAD), starts[-1] + TILE + PAD), dtype=np.float32)
    for gap in gaps_after:
        canvas[:, starts[gap] + TILE + PAD : starts[gap + 1]] = 0.0
    for r in range(rows):
        for c, x in enumerate(starts):
            canvas[PAD + r * (TILE + PAD) : PAD + r * (TILE + PAD) + TILE, x : x + TILE] = images[r, c]
    return canvas


def image_grid_figure(images, rows, cols, title, row_labels=None, col_labels=None, gaps_after=()):
    """A figure showing ``images`` (rows * cols, 1, 28, 28) as a grid (dark digits on white).

    ``row_labels`` and ``col_labels`` name the rows (left) and the columns (top); a white gap
    follows each column index in ``gaps_after``.
    """
    canvas = 1.0 - tile_images(images, rows, cols, gaps_after)
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / (TILE + PAD) * 0.6 + 1, rows * 0.6 + 0.8))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    ax.set_xticks([x + TILE // 2 for x in column_starts(cols, gaps_after)] if col_labels is not None else [],
                  [str(label) for label in col_labels or ()], fontsize="small")
    ax.set_yticks([PAD + (TILE + PAD) * r + TILE // 2 for r in range(rows)] if row_labels is not None else [],
                  [str(label) for label in row_labels or ()])
    ax.set_frame_on(False)
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
    ax.set(xlabel="epoch", ylabel="loss per image (nats)", title="Loss per image")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def decode(model, z, labels=None) -> np.ndarray:
    """Decode codes ``z`` (N, Z), with integer ``labels`` (N,) for a CVAE: (N, 1, 28, 28) float32 in [0, 1]."""
    import tensorflow as tf

    z = tf.constant(np.asarray(z, dtype=np.float32))
    if labels is not None:
        z = tf.concat([z, tf.one_hot(labels, NUM_CLASSES)], axis=-1)
    return np.asarray(model.decoder(z))


def conditional_samples(model, latent_size: int, per_class: int = GRID_SIZE, seed: int = 0) -> np.ndarray:
    """``per_class`` samples ``z ~ N(0, I)`` of each digit, label k's in row k: (10 * per_class, 1, 28, 28)."""
    z = np.random.default_rng(seed).standard_normal((NUM_CLASSES * per_class, latent_size))
    return decode(model, z, np.repeat(np.arange(NUM_CLASSES), per_class))


def one_code_ten_labels(model, latent_size: int, rows: int = GRID_SIZE, seed: int = 0) -> np.ndarray:
    """``rows`` codes ``z ~ N(0, I)``, each decoded with every label (column k: label k): (rows * 10, 1, 28, 28)."""
    z = np.random.default_rng(seed).standard_normal((rows, latent_size))
    return decode(model, np.repeat(z, NUM_CLASSES, axis=0), np.tile(np.arange(NUM_CLASSES), rows))


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
    ``mu``, so its first and last decodings are reconstructions. Returns (R * (steps + 2), 1, 28, 28).
    """
    mu_first, mu_last = (np.asarray(model(images)[1]) for images in (first, last))
    decoded = decode(model, interpolation_codes(mu_first, mu_last, steps)).reshape(len(first), steps, 1, 28, 28)
    return np.concatenate([first[:, None], decoded, last[:, None]], axis=1).reshape(-1, 1, 28, 28)


def draw_model_figures(model, config, arrays, outputs: Path, seed: int = 0) -> list[Path]:
    """The figures of the trained ``model``, written to ``outputs``; returns their paths.

    A CVAE: ``cvae_samples.png`` (row k decoded with label k) and ``cvae_one_z_ten_labels.png``
    (row r: one z decoded with the labels 0-9). A VAE: ``vae_samples.png`` and
    ``vae_interpolation.png`` (two test images per row and the decodings between them).
    """
    outputs, size = Path(outputs), config.latent_size
    if config.cvae:
        samples = conditional_samples(model, size, seed=seed)
        written = [save_figure(image_grid_figure(samples, GRID_SIZE, GRID_SIZE, "CVAE samples: row k is decoded "
                                                 "with label k", row_labels=range(GRID_SIZE)),
                               outputs / "cvae_samples.png")]
        sweep = one_code_ten_labels(model, size, seed=seed + 1)
        fig = image_grid_figure(sweep, GRID_SIZE, NUM_CLASSES, "CVAE: each row decodes one z ~ N(0, I) with the "
                                "labels 0-9", col_labels=["label 0", *range(1, NUM_CLASSES)])
        return written + [save_figure(fig, outputs / "cvae_one_z_ten_labels.png")]

    rng = np.random.default_rng(seed)
    samples = decode(model, rng.standard_normal((GRID_SIZE * GRID_SIZE, size)))
    written = [save_figure(image_grid_figure(samples, GRID_SIZE, GRID_SIZE, "VAE samples, z ~ N(0, I)"),
                           outputs / "vae_samples.png")]
    # Interpolate between the posterior means of pairs of test images.
    pairs = rng.choice(len(arrays.test_images), size=(GRID_SIZE, 2), replace=False)
    test = arrays.test_images[pairs.reshape(-1)].astype(np.float32)[:, None] / 255.0
    columns = GRID_SIZE + 2
    labels = ["test\nimage", "decoded\nμ", *[""] * (GRID_SIZE - 2), "decoded\nμ", "test\nimage"]
    fig = image_grid_figure(interpolation_rows(model, test[0::2], test[1::2]), GRID_SIZE, columns,
                            "VAE interpolation between two test images per row:\n"
                            "decoded codes on the line from one image's μ to the other's",
                            col_labels=labels, gaps_after=(0, columns - 2))
    return written + [save_figure(fig, outputs / "vae_interpolation.png")]
