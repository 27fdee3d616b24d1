"""The training run: a smoke run on a subset, reproducibility, the NaN guard, weights on disk."""

import math

import numpy as np
import pytest

import assignment
import training
from helpers import mnist_subset


def run_on_subset(tmp_path, *flags, num_train=1024, train_vae=assignment.train_vae):
    args = assignment.parseArguments(
        ["--num_epochs", "1", "--batch_size", "128", "--outputs_dir", str(tmp_path), *flags]
    )
    lines = []
    history = training.run(args, train_vae, lambda data_dir: mnist_subset(num_train), log=lines.append)
    return history, lines


@pytest.mark.slow
def test_one_epoch_cvae_smoke_run_writes_weights_and_figures(tmp_path):
    history, lines = run_on_subset(tmp_path, "--cvae")
    assert len(history) == 1 and math.isfinite(history[0].loss)
    assert history[0].reconstruction + history[0].kl == pytest.approx(history[0].loss, rel=1e-5)
    assert any(line.startswith("epoch 1/1: loss ") and "KL" in line for line in lines)
    for name in ("cvae.weights.h5", "cvae_samples.png", "cvae_loss.png", "cvae_history.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


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
history = training.run(args, assignment.train_vae, lambda _: mnist_subset(512), log=lambda line: None)
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


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_weights(tmp_path):
    calls = []

    def train_vae_that_diverges_in_epoch_2(model, loader, args, is_cvae=False, epoch_terms=None):
        calls.append(1)
        if len(calls) == 2:
            # Force the failure: ruin the weights, then train as usual.
            for variable in model.trainable_variables:
                variable.assign(variable * np.float32(np.nan))
        return assignment.train_vae(model, loader, args, is_cvae, epoch_terms)

    args = assignment.parseArguments(["--num_epochs", "3", "--outputs_dir", str(tmp_path)])
    with pytest.raises(training.NonFiniteLossError) as error:
        training.run(args, train_vae_that_diverges_in_epoch_2, lambda _: mnist_subset(512),
                     log=lambda line: None)
    assert (error.value.epoch, error.value.batch) == (2, 0)
    message = str(error.value)
    assert "epoch 2, batch 0" in message and "log-variance" in message
    model = training.build_model(training.TrainConfig.from_namespace(args))
    model.load_weights(tmp_path / "vae.weights.h5")
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_train_vae_without_the_optional_terms_argument_is_supported(tmp_path):
    received = []

    def minimal_train_vae(model, train_loader, args, is_cvae=False):
        received.append(is_cvae)
        return 12.5

    config = training.TrainConfig(num_epochs=2, outputs_dir=str(tmp_path))
    model = training.build_model(config)
    history = training.fit(model, [(0, 0)] * 5, minimal_train_vae, None, config, log=lambda _: None)
    assert received == [False, False]
    assert [record.loss for record in history] == [2.5, 2.5]
    assert history[0].reconstruction is None


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


def test_learning_rate_schedule_warms_up_then_decays():
    config = training.TrainConfig(num_epochs=10, learning_rate=2e-3)
    schedule = training.learning_rate_schedule(config, steps_per_epoch=100)
    values = [float(schedule(step)) for step in (0, 25, 50, 500, 999)]
    assert values[0] == 0.0
    assert values[1] == pytest.approx(1e-3, rel=1e-3)
    assert values[2] == pytest.approx(2e-3, rel=1e-3)
    assert values[2] > values[3] > values[4] >= 0.02 * 2e-3 * 0.99
