"""The training run: a smoke run on a subset, reproducibility, the NaN guard, weights on disk, the compiled step."""

import math
import os
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import assignment
import training
from helpers import CODE_DIR, mnist_subset


def run_on_subset(tmp_path, *flags, num_train=1024, train_vae=assignment.train_vae, load_mnist=assignment.load_mnist):
    args = assignment.parseArguments(
        ["--num_epochs", "1", "--batch_size", "128", "--outputs_dir", str(tmp_path), *flags]
    )
    lines = []
    history = training.run(args, train_vae, lambda data_dir: mnist_subset(num_train), load_mnist, log=lines.append)
    return history, lines


@pytest.mark.slow
def test_one_epoch_cvae_smoke_run_writes_weights_and_figures(tmp_path):
    loaded = []

    def load_mnist(batch_size, **kwargs):
        loaded.append(batch_size)
        return assignment.load_mnist(batch_size, **kwargs)

    history, lines = run_on_subset(tmp_path, "--cvae", load_mnist=load_mnist)
    assert loaded == [128]
    assert "Training the CVAE for 1 epoch (8 batches of 128)" in lines
    assert len(history) == 1 and math.isfinite(history[0].loss)
    record = history[0]
    assert record.test_reconstruction > 0 and record.test_kl > 0
    # After one short epoch the test loss is of the order of the training loss.
    assert 0.5 * record.loss < record.test_reconstruction + record.test_kl < 1.5 * record.loss
    epoch_line = next(line for line in lines if line.startswith("epoch 1/1: loss "))
    assert "test loss" in epoch_line and "reconstruction" in epoch_line and "KL" in epoch_line
    for name in ("cvae.weights.h5", "cvae_samples.png", "cvae_one_z_ten_labels.png", "cvae_loss.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_loss_terms_split_the_students_loss_into_bce_and_the_rest():
    from vae import bce_function, loss_function

    tf.keras.utils.set_random_seed(0)
    model = training.build_model(training.TrainConfig(latent_size=4))
    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    reconstruction, kl = training.loss_terms(model, images, np.zeros(64), is_cvae=False)
    x = tf.constant(images[:, None] / np.float32(255))
    tf.keras.utils.set_random_seed(0)
    x_hat, mu, logvar = model(x)
    # One draw of z per image: the terms are estimates; at initialisation the KL is small and positive.
    assert reconstruction == pytest.approx(float(bce_function(x_hat, x)) / 64, rel=0.01)
    assert reconstruction + kl == pytest.approx(float(loss_function(x_hat, x, mu, logvar)), rel=0.01)
    assert 0 < kl < 5


@pytest.mark.slow
def test_vae_figures_and_load_weights_redraws_them(tmp_path):
    run_on_subset(tmp_path)
    samples = tmp_path / "vae_samples.png"
    weights = (tmp_path / "vae.weights.h5").read_bytes()
    samples.unlink()
    _, lines = run_on_subset(tmp_path, "--load_weights")
    assert any("Loaded weights" in line for line in lines)
    for name in ("vae_samples.png", "vae_interpolation.png", "vae_loss.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "vae.weights.h5").read_bytes() == weights


SEEDED_RUN = """
import sys
sys.path[:0] = [{code!r}, {tests!r}]
import assignment, training
from helpers import mnist_subset
args = assignment.parseArguments(["--cvae", "--num_epochs", "1", "--outputs_dir", sys.argv[1],
                                  "--seed", sys.argv[2]])
history = training.run(args, assignment.train_vae, lambda _: mnist_subset(512), assignment.load_mnist,
                       log=lambda line: None)
print("LOSS", repr(history[0].loss))
"""


@pytest.mark.slow
def test_same_seed_gives_the_same_run(tmp_path):
    import os
    import subprocess
    import sys

    from helpers import CODE_DIR, REPO_DIR

    script = SEEDED_RUN.format(code=str(CODE_DIR), tests=str(REPO_DIR / "tests"))

    def final_loss(name, seed):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / name), str(seed)],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert done.returncode == 0, done.stderr[-2000:]
        return [line for line in done.stdout.splitlines() if line.startswith("LOSS")][0]

    first, second, other = final_loss("a", 3), final_loss("b", 3), final_loss("c", 4)
    assert first == second
    assert first != other


REFERENCE_TRAIN_VAE = assignment.train_vae


def diverging_train_vae(nan_in_epoch):
    """The reference train_vae, with the weights made NaN at the start of epoch ``nan_in_epoch``."""
    calls = []

    def train_vae(model, loader, args, is_cvae=False):
        calls.append(1)
        if len(calls) == nan_in_epoch:
            for variable in model.trainable_variables:
                variable.assign(variable * np.float32(np.nan))
        return REFERENCE_TRAIN_VAE(model, loader, args, is_cvae)

    return train_vae


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_weights(tmp_path):
    args = assignment.parseArguments(["--num_epochs", "3", "--outputs_dir", str(tmp_path)])
    with pytest.raises(training.NonFiniteLossError) as error:
        training.run(args, diverging_train_vae(2), lambda _: mnist_subset(512), assignment.load_mnist,
                     log=lambda line: None)
    # Batches count from 1, like epochs: the weights are NaN from the epoch's first batch.
    assert (error.value.epoch, error.value.batch) == (2, 1)
    message = str(error.value)
    assert "epoch 2, batch 1" in message and "log-variance" in message
    assert f"The weights of epoch 1 are saved in {tmp_path / 'vae.weights.h5'}." in message
    model = training.build_model(training.TrainConfig.from_namespace(args))
    model.load_weights(tmp_path / "vae.weights.h5")
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.slow
def test_nan_in_the_first_epoch_says_that_no_weights_were_saved(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(assignment, "train_vae", diverging_train_vae(1))
    monkeypatch.setattr(assignment, "load_arrays", lambda data_dir: mnist_subset(512))
    assert assignment.main(["--num_epochs", "2", "--outputs_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training stopped: the loss became NaN or infinite at epoch 1, batch 1.")
    assert err.rstrip().endswith("No weights were saved: no epoch finished.")
    assert "kept" not in err
    assert not (tmp_path / "vae.weights.h5").exists()
    # With the weights of an earlier run on disk, the message says whose they are.
    (tmp_path / "vae.weights.h5").write_bytes(b"earlier")
    monkeypatch.setattr(assignment, "train_vae", diverging_train_vae(1))
    assert assignment.main(["--num_epochs", "2", "--outputs_dir", str(tmp_path)]) == 1
    assert "This run saved no weights; " in capsys.readouterr().err
    assert (tmp_path / "vae.weights.h5").read_bytes() == b"earlier"


def test_fit_calls_train_vae_with_the_contract_s_arguments_only(tmp_path):
    received = []

    def minimal_train_vae(model, train_loader, args, is_cvae=False):
        received.append(is_cvae)
        return 12.5

    config = training.TrainConfig(num_epochs=2, outputs_dir=str(tmp_path))
    model = training.build_model(config)
    history = training.fit(model, [(0, 0)] * 5, minimal_train_vae, None, config, log=lambda _: None)
    assert received == [False, False]
    assert [record.loss for record in history] == [2.5, 2.5]
    assert history[0].test_reconstruction is None


def test_epoch_line_shows_the_test_loss_as_the_sum_of_its_terms():
    record = training.EpochRecord(epoch=3, loss=104.123, test_reconstruction=79.8, test_kl=24.3, seconds=7.04)
    assert training.format_epoch(record, 10) == (
        "epoch  3/10: loss 104.12 per image; test loss 104.10 = reconstruction 79.80 + KL 24.30  [7.0 s]")
    record = training.EpochRecord(epoch=1, loss=5.0, test_reconstruction=None, test_kl=None, seconds=1.0)
    assert training.format_epoch(record, 1) == "epoch 1/1: loss 5.00 per image  [1.0 s]"


def test_plural():
    assert [training.plural(n, "epoch") for n in (1, 2)] == ["1 epoch", "2 epochs"]
    assert [training.plural(n, "batch", "batches") for n in (1, 469)] == ["1 batch", "469 batches"]


def test_non_finite_total_from_train_vae_names_the_epoch(tmp_path):
    config = training.TrainConfig(num_epochs=1, outputs_dir=str(tmp_path))
    model = training.build_model(config)
    with pytest.raises(training.NonFiniteLossError, match="epoch 1"):
        training.fit(model, [(0, 0)], lambda *a, **k: float("inf"), None, config, log=print)
    assert not (tmp_path / "vae.weights.h5").exists()


def test_weights_are_written_atomically(tmp_path):
    config = training.TrainConfig(outputs_dir=str(tmp_path))
    model = training.build_model(config)
    path = tmp_path / "sub" / "vae.weights.h5"
    training.save_weights_atomically(model, path)
    assert path.stat().st_size > 0
    assert [p.name for p in path.parent.iterdir()] == ["vae.weights.h5"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_weights_get_the_mode_the_umask_gives_a_new_file(tmp_path, mask, mode):
    config = training.TrainConfig(outputs_dir=str(tmp_path))
    model = training.build_model(config)
    saved = os.umask(mask)
    try:
        training.save_weights_atomically(model, training.weights_path(config))
    finally:
        os.umask(saved)
    assert stat.S_IMODE(training.weights_path(config).stat().st_mode) == mode


def test_learning_rate_schedule_warms_up_then_decays():
    config = training.TrainConfig(num_epochs=10, learning_rate=2e-3)
    schedule = training.learning_rate_schedule(config, steps_per_epoch=100)
    values = [float(schedule(step)) for step in (0, 25, 50, 500, 999)]
    assert values[0] == 0.0
    assert values[1] == pytest.approx(1e-3, rel=1e-3)
    assert values[2] == pytest.approx(2e-3, rel=1e-3)
    assert values[2] > values[3] > values[4] >= 0.02 * 2e-3 * 0.99


# The compiled step.


def small_model(latent_size):
    """A VAE, not built yet (its first call builds it), with its optimizer set."""
    from vae import VAE

    model = VAE(784, latent_size=latent_size)
    model.optimizer = keras.optimizers.Adam(1e-3)
    return model


def step_of(model, scale=1.0):
    """A train step closure like train_vae's, made anew at each call."""
    def step(images):
        with tf.GradientTape() as tape:
            x_hat, mu, logvar = model(images, training=True)
            loss = scale * tf.reduce_mean(tf.square(x_hat - images))
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return step


def test_compiled_step_is_built_once_per_model_and_reused_by_later_epochs():
    images = tf.random.uniform((8, 1, 28, 28))
    first, second = small_model(3), small_model(5)
    step = training.compiled_step(first, step_of(first))
    float(step(images))
    # The first call builds the model inside the trace, which tf.function then traces again.
    traces = step.experimental_get_tracing_count()
    for _ in range(2):
        again = training.compiled_step(first, step_of(first))
        assert again is step
        float(again(images))
    assert step.experimental_get_tracing_count() == traces
    assert int(first.optimizer.iterations) == 3
    # Another model, of another size, in the same process: a step of its own, which trains it.
    other = training.compiled_step(second, step_of(second))
    assert other is not step
    float(other(images))
    assert int(second.optimizer.iterations) == 1 and int(first.optimizer.iterations) == 3
    # Other captured values, or a new optimizer, make a new compiled step.
    assert training.compiled_step(first, step_of(first, scale=2.0)) is not step
    assert training.compiled_step(first, step_of(first, scale=2.0)) is training.compiled_step(
        first, step_of(first, scale=2.0))
    first.optimizer = keras.optimizers.Adam(1e-3)
    assert training.compiled_step(first, step_of(first)) is not step


def checked_step_of(model, check):
    """A step whose loss turns NaN (log of -1), with ``check(loss)`` on it inside the step."""
    def step(images):
        with tf.GradientTape() as tape:
            x_hat, mu, logvar = model(images, training=True)
            loss = check(tf.reduce_mean(tf.square(x_hat - images)) * tf.math.log(-1.0))
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return step


@pytest.mark.parametrize("check", [lambda loss: tf.debugging.check_numerics(loss, "loss"),
                                   lambda loss: tf.debugging.assert_all_finite(loss, "loss"),
                                   lambda loss: (tf.debugging.Assert(tf.math.is_finite(loss), [loss]), loss)[1]],
                         ids=["check_numerics", "assert_all_finite", "Assert"])
def test_a_tf_debugging_check_in_the_step_still_stops_a_nan(check):
    """XLA drops these checks without a word; compiled_step compiles a step that has one without XLA."""
    model = small_model(3)
    step = training.compiled_step(model, checked_step_of(model, check))
    with pytest.raises(tf.errors.InvalidArgumentError):
        step(tf.random.uniform((8, 1, 28, 28)))
    assert step.checked and step.function is step.plain


def test_a_step_without_checks_keeps_xla():
    model = small_model(3)
    step = training.compiled_step(model, step_of(model))
    float(step(tf.random.uniform((8, 1, 28, 28))))
    assert not step.checked and step.function is not step.plain


def test_a_step_already_decorated_with_tf_function_is_compiled_once_per_model():
    model = keras.Sequential([keras.layers.Dense(1)])
    model.build((None, 2))
    model.optimizer = keras.optimizers.SGD(0.1)

    def step_of(model):
        @tf.function
        def step(x):
            return tf.reduce_sum(model(x))

        return step

    step = training.compiled_step(model, step_of(model))
    assert training.compiled_step(model, step_of(model)) is step
    assert float(step(tf.ones((3, 2)))) == pytest.approx(float(tf.reduce_sum(model(tf.ones((3, 2))))))


# TensorFlow's start-up notices.


def test_startup_notices_are_recognised_and_everything_else_is_kept():
    banner = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    info = ("I0000 00:00:1796169091.296539   13964 port.cc:153] oneDNN custom operations are on. You may see "
            "slightly different numerical results.\n")
    duplicate = ("E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory: "
                 "Attempting to register factory for plugin cuDNN when one has already been registered\n")
    no_driver = ("E0000 00:00:1764770000.123456   13964 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
                 "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    error = "E0000 00:00:1758131045.203198 3722035 some_op.cc:12] Out of memory while allocating\n"
    fatal = "F0000 00:00:1758131045.203198 3722035 some_op.cc:12] Check failed\n"
    for line, hidden_from in ((banner, 1), (info, 1), (duplicate, 1), (no_driver, 1)):
        assert [training.is_startup_notice(line, level) for level in range(4)] == \
            [level >= hidden_from for level in range(4)]
    for line in (error, fatal, "Traceback (most recent call last):\n", "ImportError: no module\n"):
        assert not any(training.is_startup_notice(line, level) for level in range(4))


@pytest.mark.slow
@pytest.mark.parametrize("level", [None, "2", "3"])
def test_tensorflow_starts_without_notices_on_stderr(level):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    # The first look for a GPU (select_device) starts TensorFlow's devices, which log too.
    code = ("import sys, training; training.import_tensorflow_quietly(); import tensorflow as tf; "
            "training.select_device('auto'); "
            "print('real error', file=sys.stderr); print(float(tf.reduce_sum(tf.ones(3))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=CODE_DIR, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "3.0\n"
    assert done.stderr == "real error\n"
