"""Tests for ``experiments/datasets.py``: Fashion-MNIST's sources (a folder, the Debian package, Keras) and tfds."""

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
from helpers import idx_bytes
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


def write_idx_dir(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True)
    for role, array in arrays.items():
        (folder / f"{md.FILES[role]}.gz").write_bytes(gzip.compress(idx_bytes(array)))
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
    """No Debian folder and no real Keras download unless a test provides them."""
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "debian")
    fake_keras_fashion(monkeypatch, None)


@pytest.fixture
def expect(monkeypatch):
    """Make ``arrays`` what Fashion-MNIST's hashes say."""
    def use(arrays: dict[str, np.ndarray]) -> None:
        monkeypatch.setattr(datasets, "FASHION_SHA256", {role: md.sha256_of(a) for role, a in arrays.items()})

    return use


def test_fashion_mnist_has_its_own_hashes():
    assert set(datasets.FASHION_SHA256) == set(md.ROLES)
    assert set(datasets.FASHION_SHA256.values()).isdisjoint(md.SHA256.values())


def test_the_debian_folder_comes_first(tmp_path, monkeypatch, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "debian", arrays)
    fake_keras_fashion(monkeypatch, fake_arrays(seed=1))
    loaded, source = datasets.load_fashion_mnist(None)
    for role, expected in arrays.items():
        np.testing.assert_array_equal(loaded[role], expected)
    assert source == f"IDX files in {folder} (Debian package)"


def test_every_failed_source_is_listed(tmp_path, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "debian", arrays)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(md.DataError) as info:
        datasets.load_fashion_mnist(None)
    lines = str(info.value).splitlines()
    assert lines[0] == "Could not load fashion_mnist:"
    assert lines[1] == f"  - IDX files in {folder} (Debian package): no t10k-labels-idx1-ubyte[.gz] in {folder}"
    assert lines[2].startswith("  - keras.datasets.fashion_mnist (~/.keras/datasets): "
                               "keras.datasets.fashion_mnist.load_data() failed: OSError")
    assert "apt-get install dataset-fashion-mnist" in lines[3] and "--data_dir DIR" in lines[3]


def test_a_checksum_mismatch_falls_through_to_keras(tmp_path, monkeypatch, expect):
    arrays = fake_arrays()
    expect(arrays)
    write_idx_dir(tmp_path / "debian", fake_arrays(seed=1))
    fake_keras_fashion(monkeypatch, arrays)
    loaded, source = datasets.load_fashion_mnist(None)
    assert source.startswith("keras.datasets.fashion_mnist")
    np.testing.assert_array_equal(loaded["train_images"], arrays["train_images"])


def test_fashion_ignores_mnist_data_dir_but_reads_data_dir(tmp_path, monkeypatch, expect):
    arrays = fake_arrays()
    expect(arrays)
    monkeypatch.setenv("MNIST_DATA_DIR", str(write_idx_dir(tmp_path / "mnist", arrays)))
    with pytest.raises(md.DataError, match="Could not load fashion_mnist"):
        datasets.load("fashion_mnist", None)
    folder = write_idx_dir(tmp_path / "fashion", arrays)
    loaded, source, num_classes = datasets.load("fashion_mnist", str(folder))
    assert source == f"IDX files in {folder}" and num_classes == 10
    np.testing.assert_array_equal(loaded["test_images"], arrays["test_images"])
    # A folder given is the only place looked at.
    with pytest.raises(md.DataError) as info:
        datasets.load("fashion_mnist", str(tmp_path / "mnist-typo"))
    assert len(str(info.value).splitlines()) == 3


@pytest.mark.skipif(not DEBIAN_INSTALLED, reason="the Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_folder(monkeypatch):
    monkeypatch.undo()  # the real Debian folder and Keras
    arrays, source, num_classes = datasets.load("fashion_mnist", None)
    assert "Debian package" in source and num_classes == 10
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_labels"].shape == (10000,)


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
