"""The experiments' datasets: MNIST, Fashion-MNIST and prepared tensorflow-datasets.

MNIST comes from the assignment's ``mnist_data``. Fashion-MNIST (Xiao et al.
2017) has MNIST's layout, so ``mnist_data.load_arrays`` loads it too, with its
own checksums and automatic sources: the verified cache, the folder of the
Debian package ``dataset-fashion-mnist`` and Keras's download. A
tensorflow-datasets dataset is read only when it is already prepared.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

import mnist_data as md
from training import NUM_CLASSES, UsageError

DATASETS = ("mnist", "fashion_mnist", "tfds:NAME")

# Fashion-MNIST uses MNIST's file names. The hashes are those of the
# uncompressed IDX files of the Debian package dataset-fashion-mnist
# 0.0~git20200523.55506a9-1, which ships the published .gz files unchanged.
FASHION_MNIST = md.DatasetSpec(
    name="fashion_mnist",
    files=dict(md.MNIST.files),
    sha256={
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
)
# Where `apt-get install dataset-fashion-mnist` puts the IDX files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def debian_source(folder: Path = DEBIAN_DIR) -> md.Source:
    """The IDX files of a Debian dataset package's folder; not cached again, since they are a local copy."""

    def load(spec: md.DatasetSpec) -> dict[str, np.ndarray]:
        arrays = {}
        for role in md.ROLES:
            path = md.find_idx(folder, spec.files[role])
            if path is None:
                package = f"dataset-{spec.name.replace('_', '-')}"
                raise md.SourceFailed(f"no {spec.files[role]}[.gz] in {folder} (apt-get install {package})")
            try:
                arrays[role] = md.read_idx(path)
            except md.DataError as exc:
                raise md.SourceFailed(str(exc)) from exc
        return arrays

    return md.Source("debian", f"IDX files in {folder} (Debian package)", load, cache=False)


def _load_keras_fashion(spec: md.DatasetSpec) -> dict[str, np.ndarray]:
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


KERAS_FASHION = md.Source("keras", "keras.datasets.fashion_mnist (~/.keras/datasets)", _load_keras_fashion)
FASHION_SOURCES = ("cache", debian_source(), KERAS_FASHION)


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
    elif name == "fashion_mnist":
        # MNIST_DATA_DIR names MNIST's folder, so it must not be read for Fashion-MNIST.
        loaded = md.load_arrays(data_dir, spec=FASHION_MNIST, use_env=False, sources=FASHION_SOURCES)
    else:
        raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    return {role: getattr(loaded, role) for role in md.ROLES}, loaded.source, NUM_CLASSES
