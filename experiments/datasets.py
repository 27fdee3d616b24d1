"""The experiments' datasets: MNIST, Fashion-MNIST and prepared tensorflow-datasets.

MNIST comes from the assignment's ``mnist_data``. Fashion-MNIST (Xiao et al.
2017) has MNIST's layout and file names, so it is read with ``mnist_data``'s
IDX reader and checked against its own hashes; it comes from a folder given
with ``--data_dir``, else from the Debian package ``dataset-fashion-mnist``'s
folder, else from Keras's download (which Keras caches). A tensorflow-datasets
dataset is read only when it is already prepared.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

import numpy as np

import mnist_data as md
from training import NUM_CLASSES, UsageError

DATASETS = ("mnist", "fashion_mnist", "tfds:NAME")

# The SHA-256 of Fashion-MNIST's uncompressed IDX files, those of the Debian package
# dataset-fashion-mnist 0.0~git20200523.55506a9-1, which ships the published .gz files unchanged.
FASHION_SHA256 = {
    "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Where `apt-get install dataset-fashion-mnist` puts the IDX files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_folder(folder: Path) -> dict[str, np.ndarray]:
    """The four IDX files of ``folder`` (MNIST's names, each raw or .gz); SourceFailed naming what is wrong."""
    arrays = {}
    for role in md.ROLES:
        path = md.find_idx(folder, md.FILES[role])
        if path is None:
            raise md.SourceFailed(f"no {md.FILES[role]}[.gz] in {folder}")
        try:
            arrays[role] = md.read_idx(path)
        except md.DataError as exc:
            raise md.SourceFailed(str(exc)) from exc
    return arrays


def keras_fashion_mnist() -> dict[str, np.ndarray]:
    """Keras's Fashion-MNIST (downloaded once into ~/.keras/datasets); SourceFailed when it is unavailable."""
    try:
        # import_module returns a module already in sys.modules, so tests can stand in for Keras's.
        (x_train, y_train), (x_test, y_test) = importlib.import_module("keras.datasets.fashion_mnist").load_data()
    except Exception as exc:
        raise md.SourceFailed(f"keras.datasets.fashion_mnist.load_data() failed: {type(exc).__name__}: {exc}"
                              ) from exc
    arrays = dict(zip(md.ROLES, (x_train, y_train, x_test, y_test)))
    if any(np.asarray(a).dtype != np.uint8 for a in arrays.values()):
        raise md.SourceFailed("keras.datasets.fashion_mnist.load_data() gave arrays that are not uint8")
    return {role: np.asarray(a) for role, a in arrays.items()}


def fashion_sources(data_dir: str | None) -> list[tuple[str, Callable[[], dict[str, np.ndarray]]]]:
    """Where Fashion-MNIST is looked for, in order: (description, loader)."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        return [(f"IDX files in {folder}", lambda: read_folder(folder))]
    return [(f"IDX files in {DEBIAN_DIR} (Debian package)", lambda: read_folder(DEBIAN_DIR)),
            ("keras.datasets.fashion_mnist (~/.keras/datasets)", keras_fashion_mnist)]


def load_fashion_mnist(data_dir: str | None) -> tuple[dict[str, np.ndarray], str]:
    """Fashion-MNIST's four verified uint8 arrays by role, and where they came from.

    Only ``data_dir`` is read when it is given ($MNIST_DATA_DIR names MNIST's folder, so it is
    never read here). Raises mnist_data.DataError listing every source that failed.
    """
    failures = []
    for where, load in fashion_sources(data_dir):
        try:
            arrays = load()
            bad = [role for role in md.ROLES if md.sha256_of(arrays[role]) != FASHION_SHA256[role]]
            if bad:
                raise md.SourceFailed(f"checksum mismatch for {', '.join(bad)}: not Fashion-MNIST's published files")
            return arrays, where
        except md.SourceFailed as exc:
            failures.append(f"  - {where}: {exc}")
    raise md.DataError("Could not load fashion_mnist:\n" + "\n".join(failures) + "\n"
                       "Install it (apt-get install dataset-fashion-mnist), or put its four IDX files in a "
                       "folder DIR and pass --data_dir DIR.")


def load_tfds_arrays(name: str, data_dir: str | None) -> dict[str, np.ndarray]:
    """The train and test splits of tensorflow-datasets' ``name`` as uint8 arrays, without downloading.

    Raises UsageError (one line) when the package, the dataset or its prepared
    files are missing, or when its images are not 28x28 grey levels.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UsageError("--dataset tfds:NAME needs tensorflow-datasets (pip install tensorflow-datasets)") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise UsageError(f"tensorflow-datasets has no dataset {name!r} ({type(error).__name__})") from None
    if not builder.is_prepared():
        raise UsageError(
            f"tensorflow-datasets dataset {name!r} is not available in {builder.data_dir}: this program "
            f"does not download; prepare it on a machine with internet (tfds build {name}) and pass --data_dir"
        )
    arrays = {}
    for split in ("train", "test"):
        images, labels = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
        if images.shape[1:] not in ((28, 28, 1), (28, 28)) or images.dtype != np.uint8:
            raise UsageError(f"tfds:{name} has images of shape {images.shape[1:]} {images.dtype}; "
                             "only 28x28 grey-level uint8 images are supported")
        arrays[f"{split}_images"] = images.reshape(-1, 28, 28)
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    return arrays


def is_known(name: str) -> bool:
    """Whether ``name`` is one of DATASETS (``tfds:`` followed by any name)."""
    return name in ("mnist", "fashion_mnist") or name.startswith("tfds:")


def load(name: str, data_dir: str | None) -> tuple[dict[str, np.ndarray], str, int]:
    """The four arrays of dataset ``name`` by role, where they came from, and the number of classes.

    Raises UsageError for an unknown or unavailable tensorflow-datasets dataset
    and mnist_data.DataError when MNIST or Fashion-MNIST cannot be loaded.
    """
    if name.startswith("tfds:"):
        tfds_name = name.split(":", 1)[1]
        arrays = load_tfds_arrays(tfds_name, data_dir)
        num_classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
        return arrays, f"tensorflow-datasets {tfds_name}", num_classes
    if name == "mnist":
        loaded = md.load_arrays(data_dir)
        return {role: getattr(loaded, role) for role in md.ROLES}, loaded.source, NUM_CLASSES
    if name == "fashion_mnist":
        arrays, source = load_fashion_mnist(data_dir)
        return arrays, source, NUM_CLASSES
    raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}")
