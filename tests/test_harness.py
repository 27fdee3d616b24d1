"""The harness's pieces that run inside the submission's process, called directly."""

import numpy as np
import pytest

from autograder.children import harness


@pytest.mark.parametrize("compiled", [None, "tf.function", "xla"])
def test_the_loss_recorder_adds_up_every_call_eagerly_and_inside_compiled_steps(compiled):
    import tensorflow as tf

    recorder = harness.LossRecorder(lambda x: tf.reduce_mean(x) * 2.0)

    def step(x):
        return recorder(x)

    if compiled:
        step = tf.function(step, jit_compile=compiled == "xla")
    values = [step(tf.constant(np.full((4, 3), float(k), np.float32))) for k in range(1, 4)]
    assert [float(v) for v in values] == [2.0, 4.0, 6.0]
    assert recorder.recorded() == {"loss_total": np.array([12.0]), "loss_calls": np.array([3.0])}
    # The probe resets it before each call of train_vae; a step compiled earlier records into it again.
    recorder.reset()
    step(tf.constant(np.full((4, 3), 5.0, np.float32)))
    assert recorder.recorded() == {"loss_total": np.array([10.0]), "loss_calls": np.array([1.0])}


def test_a_value_the_recorder_cannot_add_up_is_passed_on_and_leaves_nothing_recorded():
    recorder = harness.LossRecorder(lambda: "not a number")
    assert recorder() == "not a number"
    assert recorder.recorded() == {}


def test_an_error_names_the_submissions_frames_and_none_of_pythons_import_machinery(tmp_path, monkeypatch):
    (tmp_path / "broken_module.py").write_text("def broken(:\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SyntaxError) as caught:
        import broken_module  # noqa: F401
    text = harness.describe_error(caught.value)
    assert "SyntaxError" in text and "broken_module.py" in text
    assert "<frozen" not in text and "importlib" not in text


@pytest.mark.slow
def test_tensorflow_loads_without_pyplot_and_the_submission_can_still_import_it():
    import subprocess
    import sys

    code = ("import sys; import harness; harness.import_tensorflow_without_pyplot(); "
            "assert 'tensorflow' in sys.modules and 'matplotlib.pyplot' not in sys.modules; "
            "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; plt.figure(); print('drawn')")
    done = subprocess.run([sys.executable, "-c", code], cwd=harness.__file__.rpartition("/")[0],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "drawn", done.stderr[-2000:]


@pytest.mark.slow
def test_the_contracts_own_step_trains_a_copy_on_the_probes_batches_as_a_correct_train_vae_does():
    """The train_vae check's yardstick: from the same weights, the reference's train_vae and the contract's
    step take as many steps and reach nearly the same loss."""
    import assignment
    import tensorflow as tf
    import vae
    from helpers import require_mnist_dir
    from mnist_data import load_arrays

    from autograder.scoring.requests import unit_request

    arrays = load_arrays(require_mnist_dir())
    request = unit_request(7, arrays.train_images[:2000], arrays.train_labels[:2000])
    latent_size, rate = request["steps.eps"].shape[1], float(request["steps.learning_rate"])
    x = tf.constant(request["steps.eval_images"].astype(np.float32)[:, None] / 255.0)
    model = harness.build_model(vae, False, latent_size, rate)
    model(x[:2])
    twin = harness.copy_of(model, vae, request)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))

    def loss(m):
        x_hat, mu, logvar = m(x)
        return float(harness.trusted_loss_function(x_hat, x, mu, logvar))

    before = loss(model)
    list(harness.train_vae_calls(vae, assignment, model, request))
    harness.train_with_trusted_step(vae, assignment, twin, request)
    steps = int(request["steps.epochs"]) * -(-len(request["steps.images"]) // int(request["steps.batch_size"]))
    assert int(twin.optimizer.iterations) == int(model.optimizer.iterations) == steps
    assert loss(twin) < 0.9 * before
    assert abs(loss(twin) - loss(model)) < 0.1 * (before - loss(model)), (before, loss(model), loss(twin))
