"""Figures and the Markdown report of ``python -m experiments``.

Every figure is written atomically by the assignment's ``figures.save_figure``.
Images are ``(N, 1, 28, 28)`` in [0, 1]; codes ``(N, Z)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The assignment's figures module (hw/code/figures.py), not this one. It selects
# matplotlib's Agg backend, so it is imported before pyplot.
from figures import decode, image_grid_figure, interpolation_codes, save_figure, tile_images
import matplotlib.pyplot as plt

TRAVERSAL_STEPS = 9
TRAVERSAL_RANGE = 3.0


@dataclass
class Report:
    """A Markdown report assembled section by section, then written as ``report.md``."""

    title: str
    lines: list[str] = field(default_factory=list)

    def text(self, paragraph: str) -> None:
        self.lines += [paragraph, ""]

    def heading(self, title: str) -> None:
        self.lines += [f"## {title}", ""]

    def table(self, header: list[str], rows: list[list[object]]) -> None:
        def cell(value: object) -> str:
            return f"{value:.2f}" if isinstance(value, float) else str(value)

        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("|" + " --- |" * len(header))
        for row in rows:
            self.lines.append("| " + " | ".join(cell(v) for v in row) + " |")
        self.lines.append("")

    def figure(self, path: Path, folder: Path, caption: str) -> None:
        relative = Path(path).resolve().relative_to(Path(folder).resolve())
        self.lines += [f"![{caption}]({relative.as_posix()})", "", f"*{caption}*", ""]

    def render(self) -> str:
        return "\n".join([f"# {self.title}", ""] + self.lines)


def _decode(model, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    return decode(model, z.astype(np.float32), labels)


def reconstructions(model, images: np.ndarray, labels: np.ndarray | None, path: Path,
                    count: int = 10) -> Path:
    """Row pairs: ``count`` test inputs, then their reconstructions from the posterior means."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images[:count], tf.float32)
    if labels is None:
        mu = model(x)[1]
    else:
        mu = model(x, tf.one_hot(labels[:count], 10))[1]
    rebuilt = _decode(model, np.asarray(mu), None if labels is None else labels[:count])
    grid = np.concatenate([images[:count], rebuilt])
    fig = image_grid_figure(grid, 2, count, "Test inputs (top) and reconstructions (bottom)")
    return save_figure(fig, path)


def samples(model, latent_size: int, is_cvae: bool, path: Path, seed: int = 0) -> Path:
    """A 10x10 grid decoded from ``z ~ N(0, I)`` (a CVAE's row k with label k)."""
    z = np.random.default_rng(seed).standard_normal((100, latent_size))
    labels = np.repeat(np.arange(10), 10) if is_cvae else None
    title = "Samples: row k drawn with label k" if is_cvae else "Samples, z ~ N(0, I)"
    fig = image_grid_figure(_decode(model, z, labels), 10, 10, title,
                            row_labels=range(10) if is_cvae else None)
    return save_figure(fig, path)


def interpolations_side_by_side(models: dict[str, object], mus: dict[str, np.ndarray],
                                path: Path, steps: int = 10) -> Path:
    """One panel per model: rows interpolate linearly between the codes of two test images.

    ``mus[name]`` holds ``(2R, Z)`` posterior means; rows go from code ``2r`` to ``2r + 1``.
    """
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items()):
        mu = mus[name]
        codes = interpolation_codes(mu[0::2], mu[1::2], steps)
        rows = len(mu) // 2
        canvas = tile_images(_decode(model, codes, None), rows, steps)
        ax.imshow(1.0 - canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    return save_figure(fig, path)


def traversals(model, mu: np.ndarray, order: np.ndarray, path: Path, labels: np.ndarray | None = None,
               rows: int = 8) -> Path:
    """Row per latent dimension (``order``'s first ``rows``): vary it from -3 to 3 around ``mu`` (Z,)."""
    values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
    dims = order[:rows]
    codes = np.repeat(mu[None], len(dims) * len(values), axis=0)
    for r, dim in enumerate(dims):
        codes[r * len(values) : (r + 1) * len(values), dim] = values
    decoded_labels = None if labels is None else np.repeat(labels[:1], len(codes))
    fig = image_grid_figure(_decode(model, codes, decoded_labels), len(dims), len(values),
                            f"Latent traversals from -{TRAVERSAL_RANGE:g} to {TRAVERSAL_RANGE:g} "
                            "(row: dimension, by KL)", row_labels=[f"z{d}" for d in dims])
    return save_figure(fig, path)


def manifold(model, path: Path, steps: int = 15) -> Path:
    """A 2-D latent space decoded on a grid of prior quantiles (5% to 95%)."""
    from statistics import NormalDist

    quantiles = [NormalDist().inv_cdf(q) for q in np.linspace(0.05, 0.95, steps)]
    grid = np.array([[x, y] for y in reversed(quantiles) for x in quantiles])
    fig = image_grid_figure(_decode(model, grid, None), steps, steps,
                            "The 2-D latent manifold (prior quantiles 5% to 95%)")
    return save_figure(fig, path)


def code_scatter(mu: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """Posterior means (N, 2) of the test set, coloured by digit."""
    fig, ax = plt.subplots(figsize=(6, 5.5))
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z0 (posterior mean)")
    ax.set_ylabel("z1 (posterior mean)")
    ax.set_title("Test-set codes by digit")
    return save_figure(fig, path)


def attribute_arithmetic(model, mu: np.ndarray, images: np.ndarray, labels: np.ndarray, path: Path,
                         rows: int = 6) -> Path:
    """Code arithmetic with mean codes.

    Top row: the decoded mean code of each class. Other rows: a test image's
    code plus ``a * (mean code of the thickest 10% - mean code of the thinnest
    10%)`` for ``a`` from -2 to 2, thickness being the mean ink of the image.
    """
    ink = images.reshape(len(images), -1).mean(axis=1)
    thick = mu[ink >= np.quantile(ink, 0.9)].mean(axis=0)
    thin = mu[ink <= np.quantile(ink, 0.1)].mean(axis=0)
    class_means = np.stack([mu[labels == k].mean(axis=0) if np.any(labels == k) else np.zeros(mu.shape[1])
                            for k in range(10)])
    amounts = np.linspace(-2.0, 2.0, 10)
    codes = [class_means] + [mu[r][None] + amounts[:, None] * (thick - thin)[None] for r in range(rows)]
    fig = image_grid_figure(_decode(model, np.concatenate(codes), None), rows + 1, 10,
                            "Top: mean code of each digit. Below: code + a (thick - thin), a = -2..2",
                            row_labels=["mean"] + [f"x{r}" for r in range(rows)])
    return save_figure(fig, path)


def training_curves(histories: dict[str, list], path: Path) -> Path:
    """Per-epoch negative ELBO, reconstruction, KL and active units of each run."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    panels = [("negative_elbo", "negative ELBO (nats)"), ("reconstruction", "reconstruction (nats)"),
              ("kl", "KL (nats)"), ("active_units", "active units")]
    for ax, (key, label) in zip(axes, panels):
        for name, history in histories.items():
            ax.plot([r.epoch for r in history], [getattr(r, key) for r in history], marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return save_figure(fig, path)


def beta_sweep_plot(rows: list[dict], path: Path) -> Path:
    """Reconstruction, KL, negative ELBO, IWAE NLL (and CVAE sample accuracy) against β, symlog axis."""
    betas = [row["beta"] for row in rows]
    panels = [("reconstruction", "reconstruction (nats)"), ("kl", "KL (nats)"),
              ("negative_elbo", "negative ELBO (nats)"), ("iwae_nll", "IWAE NLL estimate (nats)")]
    if all(row.get("classifier_accuracy") is not None for row in rows):
        panels.append(("classifier_accuracy", "classifier accuracy of samples"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (key, label) in zip(axes, panels):
        ax.plot(betas, [row[key] for row in rows], marker="o")
        # A symmetric log axis is linear near 0, so that β = 0 has a place.
        ax.set_xscale("symlog", linthresh=0.5)
        ax.set_xlabel("β")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def confusion_figure(confusion: np.ndarray, path: Path) -> Path:
    """Rows: requested digit; columns: the classifier's digit; cells: share of the row."""
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(10):
        for j in range(10):
            if confusion[i, j]:
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("classified as")
    ax.set_ylabel("requested label")
    ax.set_title("Class-conditional samples")
    return save_figure(fig, path)
