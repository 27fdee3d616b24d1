"""The figures: what each grid shows, and the PNG files on disk."""

import os
import stat
from types import SimpleNamespace

import numpy as np
import pytest

import figures
import training


class FakeVAE:
    """A stand-in model: ``mu`` is the mean of each image's pixels in both latent dimensions, the
    decoder paints an image with the value of the code's first coordinate."""

    def __call__(self, x):
        x = np.asarray(x)
        mu = np.repeat(x.reshape(len(x), -1).mean(axis=1, keepdims=True), 2, axis=1)
        return x, mu, np.zeros_like(mu)

    def decoder(self, z):
        z = np.asarray(z)
        return np.broadcast_to(z[:, :1, None, None], (len(z), 1, 28, 28)).astype(np.float32)


class FakeCVAE:
    """A stand-in CVAE whose decoder writes the label into row 0 and the code into row 1 of the image."""

    latent_size = 3

    def decoder(self, zc):
        zc = np.asarray(zc)
        images = np.zeros((len(zc), 1, 28, 28), np.float32)
        images[:, 0, 0, 0] = zc[:, self.latent_size:].argmax(axis=1)
        images[:, 0, 1, : self.latent_size] = zc[:, : self.latent_size]
        return images


@pytest.fixture
def umask():
    """Set the process's umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_figures_get_the_mode_the_umask_gives_a_new_file(tmp_path, umask, mask, mode):
    umask(mask)
    path = figures.save_figure(figures.image_grid_figure(np.zeros((4, 1, 28, 28)), 2, 2, "t"),
                               tmp_path / "sub" / "grid.png")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]


def test_a_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"old")

    fig = figures.image_grid_figure(np.zeros((1, 1, 28, 28)), 1, 1, "t")

    def savefig(*args, **kwargs):
        raise OSError("disk full")

    fig.savefig = savefig
    with pytest.raises(OSError, match="disk full"):
        figures.save_figure(fig, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_interpolation_rows_put_the_test_images_at_both_ends():
    rng = np.random.default_rng(0)
    first = rng.uniform(0.0, 0.2, (3, 1, 28, 28)).astype(np.float32)
    last = rng.uniform(0.8, 1.0, (3, 1, 28, 28)).astype(np.float32)
    steps = 5
    rows = figures.interpolation_rows(FakeVAE(), first, last, steps).reshape(3, steps + 2, 1, 28, 28)
    np.testing.assert_array_equal(rows[:, 0], first)
    np.testing.assert_array_equal(rows[:, -1], last)
    # Between them: the decodings of the line from mu(first) to mu(last), ends included.
    painted = rows[:, 1:-1, 0, 0, 0]
    np.testing.assert_allclose(painted[:, 0], first.reshape(3, -1).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(painted[:, -1], last.reshape(3, -1).mean(axis=1), rtol=1e-5)
    assert np.all(np.diff(painted, axis=1) > 0)


def test_one_code_ten_labels_decodes_each_row_s_code_with_every_label():
    model = FakeCVAE()
    images = figures.one_code_ten_labels(model, model.latent_size, rows=4).reshape(4, 10, 28, 28)
    np.testing.assert_array_equal(images[:, :, 0, 0], np.tile(np.arange(10), (4, 1)))
    codes = images[:, :, 1, : model.latent_size]
    assert np.all(codes == codes[:, :1])
    assert not np.allclose(codes[0, 0], codes[1, 0])


def test_grid_labels_and_gaps():
    fig = figures.image_grid_figure(np.zeros((6, 1, 28, 28)), 2, 3, "title", row_labels=["a", "b"],
                                    col_labels=["x", "y", "z"], gaps_after=(0,))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    width = ax.images[0].get_array().shape[1]
    assert width == 3 * 29 + 1 + 8
    centers = ax.get_xticks()
    assert centers[1] - centers[0] > centers[2] - centers[1]
    figures.plt.close(fig)


@pytest.mark.slow
@pytest.mark.parametrize("cvae, names", [
    (False, ["vae_samples.png", "vae_interpolation.png"]),
    (True, ["cvae_samples.png", "cvae_one_z_ten_labels.png"]),
])
def test_draw_model_figures_writes_each_figure(tmp_path, cvae, names):
    config = training.TrainConfig(cvae=cvae, latent_size=3, outputs_dir=str(tmp_path))
    model = training.build_model(config)
    rng = np.random.default_rng(0)
    arrays = SimpleNamespace(test_images=rng.integers(0, 256, (40, 28, 28), dtype=np.uint8))
    written = figures.draw_model_figures(model, config, arrays, tmp_path)
    assert [path.name for path in written] == names
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG")
