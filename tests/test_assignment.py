"""The contract functions of assignment.py and the command line's handling of bad input."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import assignment
from helpers import mnist_subset, run_cli
from mnist_data import make_dataset
from vae import CVAE, VAE, loss_function


def test_one_hot_matches_the_identity_rows():
    labels = np.array([3, 0, 9, 3])
    encoded = np.asarray(assignment.one_hot(labels, 10))
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded, np.eye(10, dtype=np.float32)[labels])


def test_parse_arguments_defaults_and_aliases():
    args = assignment.parseArguments([])
    assert args.cvae is False and args.load_weights is False and args.device == "auto"
    assert assignment.parseArguments(["--is_cvae"]).cvae is True
    args = assignment.parseArguments(
        ["--cvae", "--batch_size", "64", "--num_epochs", "2", "--latent_size", "3",
         "--learning_rate", "0.01", "--device", "cpu", "--seed", "5"]
    )
    assert (args.batch_size, args.num_epochs, args.latent_size) == (64, 2, 3)
    assert args.learning_rate == 0.01 and args.seed == 5


@pytest.mark.parametrize(
    "flag, value",
    [("--num_epochs", "0"), ("--batch_size", "-4"), ("--latent_size", "0"),
     ("--learning_rate", "0"), ("--learning_rate", "nan"), ("--batch_size", "ten"),
     ("--device", "tpu")],
)
def test_bad_arguments_are_usage_errors(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        assignment.parseArguments([flag, value])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def _dataset(num=512, batch_size=64):
    arrays = mnist_subset(num_train=num)
    return make_dataset(arrays.train_images, arrays.train_labels, batch_size, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("is_cvae", [False, True])
def test_train_vae_lowers_the_loss_and_returns_the_sum_of_batch_losses(is_cvae):
    import keras

    tf.keras.utils.set_random_seed(0)
    dataset = _dataset()
    model = CVAE(784, 10, latent_size=8) if is_cvae else VAE(784, latent_size=8)
    model.optimizer = keras.optimizers.Adam(1e-3)
    args = assignment.parseArguments([])

    def mean_loss():
        losses = []
        for images, labels in dataset:
            if is_cvae:
                x_hat, mu, logvar = model(images, assignment.one_hot(labels, 10))
            else:
                x_hat, mu, logvar = model(images)
            losses.append(float(loss_function(x_hat, images, mu, logvar)))
        return float(np.mean(losses))

    before = mean_loss()
    returned = assignment.train_vae(model, dataset, args, is_cvae=is_cvae)
    assert isinstance(returned, float)
    after = mean_loss()
    num_batches = int(dataset.cardinality())
    assert after < before
    # The total is a sum of per-image losses over 8 batches: between the loss
    # after and before training, times the number of batches.
    assert 0.8 * after * num_batches < returned < 1.2 * before * num_batches
    assert int(model.optimizer.iterations) == num_batches


@pytest.mark.slow
def test_train_vae_compiles_its_step_once_per_model_and_trains_models_of_other_sizes():
    """The grader calls train_vae once per epoch, and may train models of different sizes in one process."""
    import keras

    tf.keras.utils.set_random_seed(0)
    # 500 images in batches of 64: seven full batches and a last one of 52, two shapes.
    arrays = mnist_subset(num_train=500)
    dataset = make_dataset(arrays.train_images, arrays.train_labels, 64, seed=0)
    args = assignment.parseArguments([])
    models = [VAE(784, latent_size=15), CVAE(784, 10, latent_size=2), VAE(784, latent_size=7)]
    for model in models:
        model.optimizer = keras.optimizers.Adam(1e-3)
    totals = {index: [] for index in range(len(models))}
    traces = {}
    for epoch in range(3):
        for index, model in enumerate(models):
            totals[index].append(assignment.train_vae(model, dataset, args, is_cvae=isinstance(model, CVAE)))
            step = model.__dict__["_compiled_step"][1]
            traces.setdefault(index, step.experimental_get_tracing_count())
            # Traced in the first epoch only (once more for the last batch's shape).
            assert step.experimental_get_tracing_count() == traces[index], (epoch, index)
    for index, model in enumerate(models):
        assert totals[index][-1] < totals[index][0], index
        assert int(model.optimizer.iterations) == 3 * 8


def test_load_mnist_yields_scaled_channel_first_batches(monkeypatch):
    from helpers import require_mnist_dir

    monkeypatch.setenv("MNIST_DATA_DIR", require_mnist_dir())
    images, labels = next(iter(assignment.load_mnist(32)))
    assert images.shape == (32, 1, 28, 28) and images.dtype == tf.float32
    assert labels.shape == (32,)
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    assert float(tf.reduce_max(images)) == 1.0


def test_load_mnist_batches_arrays_already_loaded():
    arrays = mnist_subset(num_train=100)
    batches = list(assignment.load_mnist(32, buffer_size=100, seed=0, arrays=arrays))
    assert [len(labels) for _, labels in batches] == [32, 32, 32, 4]
    labels = np.concatenate([labels.numpy() for _, labels in batches])
    assert sorted(labels) == sorted(arrays.train_labels)


# TensorFlow's log lines (absl's format) and absl's banner, which a run must not print.
TF_NOTICE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)", re.M)


@pytest.mark.slow
def test_a_first_run_prints_no_tensorflow_start_up_notices(tmp_path):
    from helpers import CODE_DIR, require_mnist_dir

    # As a student runs it: without TF_CPP_MIN_LOG_LEVEL, from the code folder.
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["MNIST_DATA_DIR"] = require_mnist_dir()
    for args in (["--help"], ["--cvae", "--num_epochs", "1", "--batch_size", "1024", "--outputs_dir", str(tmp_path)]):
        done = subprocess.run([sys.executable, "assignment.py", *args], cwd=CODE_DIR, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert TF_NOTICE.search(done.stderr) is None, done.stderr[-3000:]
    assert done.stdout.startswith("Device: ")
    assert "Training the CVAE for 1 epoch (59 batches of 1024)" in done.stdout


@pytest.mark.slow
def test_cli_help_works_from_the_code_folder():
    from helpers import CODE_DIR

    result = run_cli("--help", cwd=CODE_DIR)
    assert result.returncode == 0
    for flag in ("--cvae", "--batch_size", "--device", "--data_dir", "--outputs_dir", "--seed"):
        assert flag in result.stdout


@pytest.mark.slow
def test_cli_bad_number_is_one_line_without_traceback():
    result = run_cli("--num_epochs", "-1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--num_epochs: must be a positive int, got -1" in result.stderr


@pytest.mark.slow
def test_cli_missing_data_dir_exits_2_with_one_clear_message(tmp_path):
    missing = tmp_path / "no-such-folder"
    result = run_cli("--num_epochs", "1", "--data_dir", str(missing),
                     "--outputs_dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(missing) in result.stderr
    assert not (tmp_path / "out" / "vae.weights.h5").exists()


@pytest.mark.slow
def test_cli_device_gpu_without_a_gpu_is_a_clear_error(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = run_cli("--device", "gpu", "--outputs_dir", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--device gpu: TensorFlow sees no GPU" in result.stderr


@pytest.mark.slow
def test_cli_load_weights_without_weights_says_to_train_first(tmp_path):
    from helpers import require_mnist_dir

    result = run_cli("--cvae", "--load_weights", "--outputs_dir", str(tmp_path),
                     env={"MNIST_DATA_DIR": require_mnist_dir()})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no saved weights" in result.stderr and "--cvae" in result.stderr


@pytest.mark.slow
def test_cli_load_weights_of_another_latent_size_is_one_line(tmp_path):
    from helpers import require_mnist_dir
    from training import TrainConfig, build_model, weights_path

    config = TrainConfig(cvae=True, latent_size=8, outputs_dir=str(tmp_path))
    build_model(config).save_weights(weights_path(config))
    saved = weights_path(config).read_bytes()
    result = run_cli("--cvae", "--load_weights", "--latent_size", "3", "--outputs_dir", str(tmp_path),
                     env={"MNIST_DATA_DIR": require_mnist_dir()})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not fit this model" in result.stderr and "--latent_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert weights_path(config).read_bytes() == saved
