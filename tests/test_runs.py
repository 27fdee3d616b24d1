"""Tests for ``experiments/runs.py``: the KL schedule, the configuration's checks and the data of a run."""

from __future__ import annotations

import os

import numpy as np
import pytest

from experiments.runs import QUICK_TEST_IMAGES, QUICK_TRAIN_IMAGES, ExperimentConfig, kl_weight, load_data
from training import UsageError


def test_kl_weight_schedule_values():
    assert kl_weight(0.0, 2.0, 0.0, 0.0) == 2.0
    assert kl_weight(0.5, 2.0, 0.0, 1.0) == 0.0
    assert kl_weight(1.0, 2.0, 4.0, 1.0) == 0.0
    assert kl_weight(2.0, 2.0, 4.0, 1.0) == pytest.approx(0.5)
    assert kl_weight(3.0, 2.0, 4.0, 1.0) == pytest.approx(1.0)
    assert kl_weight(5.0, 2.0, 4.0, 1.0) == 2.0
    assert kl_weight(9.0, 2.0, 4.0, 1.0) == 2.0
    assert kl_weight(3.0, 0.0, 4.0, 0.0) == 0.0


@pytest.mark.parametrize("bad", [{"dataset": "cifar"}, {"arch": "resnet"}, {"betas": []}, {"sigma": 0.0},
                                 {"beta": float("nan")}])
def test_config_refuses_unusable_values(tmp_path, bad):
    with pytest.raises(UsageError):
        ExperimentConfig(outputs_dir=str(tmp_path), **bad)


def test_config_defaults(tmp_path):
    config = ExperimentConfig(experiment="manifold", cvae=True, quick=True)
    assert config.latent_size == 8 and config.num_epochs == 3 and config.iw_samples == 10
    assert config.outputs_dir.endswith(os.path.join("hw", "outputs", "manifold"))
    assert ExperimentConfig(dataset="tfds:anything", outputs_dir=str(tmp_path)).dataset == "tfds:anything"


@pytest.mark.skipif(not os.environ.get("MNIST_DATA_DIR"), reason="MNIST_DATA_DIR is not set")
def test_quick_static_binarized_mnist(tmp_path):
    config = ExperimentConfig(quick=True, binarize="static", outputs_dir=str(tmp_path))
    data = load_data(config)
    assert data.train_images.shape == (QUICK_TRAIN_IMAGES, 28, 28) and data.test_labels.shape == (QUICK_TEST_IMAGES,)
    assert set(np.unique(data.train_images)) <= {0, 255} and set(np.unique(data.test_images)) <= {0, 255}
    assert os.environ["MNIST_DATA_DIR"] in data.source and data.num_classes == 10
    assert data.test_floats().shape == (QUICK_TEST_IMAGES, 1, 28, 28)
