"""Tests for ``experiments/datasets.py``: Fashion-MNIST's sources (Debian folder, Keras, cache) and tfds errors."""

from __future__ import annotations

import gzip
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import mnist_data as md
from experiments import datasets
from training import UsageError

REAL_MNIST_DIR = os.environ.get("MNIST_DATA_DIR")
DEBIAN_INSTALLED = (datasets.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz").is_file()


def fake_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Small random arrays with MNIST's layout."""
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, 7, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, 3, dtype=np.uint8)}


def fashion_spec_for(arrays: dict[str, np.ndarray]) -> md.DatasetSpec:
    """A "fashion_mnist" spec whose hashes match ``arrays``."""
    return md.DatasetSpec(name="fashion_mnist", files=dict(datasets.FASHION_MNIST.files),
                          sha256={role: md.sha256_of(a) for role, a in arrays.items()})


def write_idx_dir(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for role, array in arrays.items():
        (folder / f"{md.MNIST.files[role]}.gz").write_bytes(gzip.compress(md.idx_bytes(array)))
    return folder


def fake_keras_fashion(monkeypatch, arrays: dict[str, np.ndarray] | None) -> None:
    """Stand in for keras.datasets.fashion_mnist: it returns ``arrays``, or fails like an offline download."""
    module = types.ModuleType("keras.datasets.fashion_mnist")

    def load_data():
        if arrays is None:
            raise OSError("offline in tests")
        return ((arrays["train_images"], arrays["train_labels"]), (arrays["test_images"], arrays["test_labels"]))

    module.load_data = load_data
    monkeypatch.setitem(sys.modules, "keras.datasets.fashion_mnist", module)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private cache, and no real Keras download."""
    monkeypatch.setenv("VAE_KIT_CACHE_DIR", str(tmp_path / "cache"))
    fake_keras_fashion(monkeypatch, None)


def test_fashion_spec_has_mnist_layout():
    assert datasets.FASHION_MNIST.files == md.MNIST.files
    assert set(datasets.FASHION_MNIST.sha256.values()).isdisjoint(md.MNIST.sha256.values())
    assert [getattr(s, "name", s) for s in datasets.FASHION_SOURCES] == ["cache", "debian", "keras"]


def test_debian_folder_is_read_and_not_cached(tmp_path):
    arrays = fake_arrays()
    folder = write_idx_dir(tmp_path / "debian", arrays)
    result = md.load_arrays(spec=fashion_spec_for(arrays), use_env=False,
                            sources=("cache", datasets.debian_source(folder), datasets.KERAS_FASHION))
    for role, expected in arrays.items():
        np.testing.assert_array_equal(getattr(result, role), expected)
    assert result.source == f"IDX files in {folder} (Debian package)"
    assert not (tmp_path / "cache").exists()


def test_every_failed_source_is_listed(tmp_path):
    arrays = fake_arrays()
    folder = write_idx_dir(tmp_path / "debian", arrays)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(md.DataError) as info:
        md.load_arrays(spec=fashion_spec_for(arrays), use_env=False,
                       sources=("cache", datasets.debian_source(folder), datasets.KERAS_FASHION))
    lines = str(info.value).splitlines()
    assert lines[0] == "Could not load fashion_mnist from any source:"
    assert lines[1].startswith("  - cache: no verified cache at ")
    assert lines[2] == (f"  - debian: no t10k-labels-idx1-ubyte[.gz] in {folder} "
                        "(apt-get install dataset-fashion-mnist)")
    assert lines[3].startswith("  - keras: keras.datasets.fashion_mnist.load_data() failed: OSError")


def test_debian_checksum_mismatch_falls_through(tmp_path, monkeypatch):
    arrays = fake_arrays()
    write_idx_dir(tmp_path / "debian", fake_arrays(seed=1))
    fake_keras_fashion(monkeypatch, arrays)
    result = md.load_arrays(spec=fashion_spec_for(arrays), use_env=False,
                            sources=(datasets.debian_source(tmp_path / "debian"), datasets.KERAS_FASHION))
    assert result.source.startswith("keras.datasets.fashion_mnist")


def test_keras_fashion_is_cached(tmp_path, monkeypatch):
    arrays = fake_arrays()
    spec = fashion_spec_for(arrays)
    fake_keras_fashion(monkeypatch, arrays)
    result = md.load_arrays(spec=spec, use_env=False, sources=datasets.FASHION_SOURCES[::2])
    assert result.source.startswith("keras.datasets.fashion_mnist")
    assert (tmp_path / "cache" / "fashion_mnist-verified.npz").is_file()
    fake_keras_fashion(monkeypatch, None)
    assert md.load_arrays(spec=spec, use_env=False, sources=("cache",)).source.startswith("verified cache")


def test_fashion_ignores_mnist_data_dir_but_reads_data_dir(tmp_path, monkeypatch):
    arrays = fake_arrays()
    monkeypatch.setattr(datasets, "FASHION_MNIST", fashion_spec_for(arrays))
    monkeypatch.setattr(datasets, "FASHION_SOURCES", (datasets.debian_source(tmp_path / "none"),))
    monkeypatch.setenv("MNIST_DATA_DIR", str(write_idx_dir(tmp_path / "mnist", arrays)))
    with pytest.raises(md.DataError, match="Could not load fashion_mnist from any source"):
        datasets.load("fashion_mnist", None)
    folder = write_idx_dir(tmp_path / "fashion", arrays)
    loaded, source, num_classes = datasets.load("fashion_mnist", str(folder))
    assert source == f"IDX files in {folder}" and num_classes == 10
    np.testing.assert_array_equal(loaded["test_images"], arrays["test_images"])


@pytest.mark.skipif(not DEBIAN_INSTALLED, reason="the Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_folder(tmp_path):
    arrays, source, num_classes = datasets.load("fashion_mnist", None)
    assert "Debian package" in source and num_classes == 10
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_labels"].shape == (10000,)
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not REAL_MNIST_DIR, reason="MNIST_DATA_DIR is not set")
def test_mnist_comes_from_mnist_data():
    arrays, source, num_classes = datasets.load("mnist", None)
    assert REAL_MNIST_DIR in source and num_classes == 10 and arrays["train_labels"][0] == 5


def test_unavailable_tfds_dataset_is_one_clear_line(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(UsageError) as info:
        datasets.load("tfds:mnist", str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "'mnist' is not available" in message and "does not download" in message
    with pytest.raises(UsageError, match="no dataset 'no_such_dataset_here'") as info:
        datasets.load("tfds:no_such_dataset_here", None)
    assert "\n" not in str(info.value)


def test_known_names():
    assert all(datasets.is_known(name) for name in ("mnist", "fashion_mnist", "tfds:emnist"))
    assert not datasets.is_known("cifar")
    with pytest.raises(UsageError, match="--dataset must be one of"):
        datasets.load("cifar", None)
