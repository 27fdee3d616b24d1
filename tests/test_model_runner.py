"""The child that runs exported models: the same numbers as the model in memory, and no graph that reaches out."""

import sys

import numpy as np
import pytest

from autograder.children import model_runner
from autograder.paths import CODE_DIR, PACKAGE_DIR

tf = pytest.importorskip("tensorflow")
BATCH = model_runner.BATCH


@pytest.fixture(scope="module")
def harness():
    for path in (str(PACKAGE_DIR / "children"), str(CODE_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import harness

    return harness


def save_module(path, decode):
    """A SavedModel with a plain encoder and the given decode function of (256, 3) codes."""
    module = tf.Module()
    module.encode = tf.function(lambda x: {"mu": tf.reshape(x, [BATCH, -1])[:, :3], "logvar": tf.zeros([BATCH, 3])},
                                input_signature=[tf.TensorSpec([BATCH, 1, 28, 28], tf.float32)])
    module.decode = tf.function(decode, input_signature=[tf.TensorSpec([BATCH, 3], tf.float32)])
    tf.saved_model.save(module, str(path), signatures={"encode": module.encode, "decode": module.decode})
    return path


def run(tmp_path, request):
    np.savez(tmp_path / "request.npz", **request)
    assert model_runner.main(["runner", str(tmp_path / "request.npz"), str(tmp_path / "result.npz")]) == 0
    with np.load(tmp_path / "result.npz") as data:
        return {key: data[key] for key in data.files}


def test_exported_models_give_the_numbers_of_the_model_in_memory(tmp_path, harness, monkeypatch):
    import vae

    monkeypatch.chdir(tmp_path)
    model = harness.build_model(vae, True, 2, 1e-3)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(300, 1, 28, 28)).astype(np.float32)
    c = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 300)]
    z = rng.normal(size=(300, 12)).astype(np.float32)
    _, mu, logvar = model(x, c)
    harness.export_model(model, True, 2, str(tmp_path / "cvae"))
    result = run(tmp_path, {"job.0": np.array("cvae encode a"), "a.x": x, "a.c": c,
                            "job.1": np.array("cvae decode b"), "b.z": z})
    assert result["a.mu"].shape == (300, 2)
    np.testing.assert_allclose(result["a.mu"], mu.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["a.logvar"], logvar.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["b.x_hat"], model.decoder(z).numpy().reshape(300, 1, 28, 28), atol=1e-5)
    assert "running" not in result


def writes_a_file():
    with tf.control_dependencies([tf.io.write_file("/tmp/written-by-a-graph", "x")]):
        return tf.constant(0)


@pytest.mark.parametrize("effect, reason", [
    (lambda z: tf.strings.length(tf.io.read_file("/etc/hostname")), "ReadFile"),
    (lambda z: tf.strings.length(tf.io.matching_files("/*")[0]), "MatchingFiles"),
    (lambda z: writes_a_file(), "WriteFile"),
    (lambda z: tf.py_function(lambda: 1.0, [], tf.float32), "EagerPyFunc"),
])
def test_graphs_that_reach_outside_the_computation_are_refused(tmp_path, effect, reason):
    def decode(z):
        return {"x_hat": tf.zeros([BATCH, 1, 28, 28]) + 0.0 * tf.cast(effect(z), tf.float32)}

    path = save_module(tmp_path / "model", decode)
    with pytest.raises(model_runner.RefusedModel, match=reason):
        model_runner.check_graph(str(path))


def test_a_refused_model_gets_an_error_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_module(tmp_path / "model", lambda z: {"x_hat": tf.zeros([BATCH, 1, 28, 28]) + 0.0 * tf.cast(
        tf.strings.length(tf.io.read_file("/etc/hostname")), tf.float32)})
    result = run(tmp_path, {"job.0": np.array("model decode a"), "a.z": np.zeros((10, 3), np.float32)})
    assert "ReadFile" in str(result["model.error"]) and "a.x_hat" not in result


def test_printing_to_the_log_is_allowed_but_not_to_a_file(tmp_path):
    to_log = save_module(tmp_path / "log", lambda z: {"x_hat": tf.zeros([BATCH, 1, 28, 28]) + 0.0 * tf.cast(
        tf.print(z[0]) is None, tf.float32)})
    model_runner.check_graph(str(to_log))
    to_file = save_module(tmp_path / "file", lambda z: {"x_hat": tf.zeros([BATCH, 1, 28, 28]) + 0.0 * tf.cast(
        tf.print(z[0], output_stream="file:///tmp/printed-by-a-graph") is None, tf.float32)})
    with pytest.raises(model_runner.RefusedModel, match="tf.print to 'file:///tmp/printed-by-a-graph'"):
        model_runner.check_graph(str(to_file))


def test_a_model_without_both_functions_is_refused(tmp_path):
    module = tf.Module()
    module.encode = tf.function(lambda x: {"mu": x}, input_signature=[tf.TensorSpec([BATCH, 3], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "half"), signatures={"encode": module.encode})
    with pytest.raises(model_runner.RefusedModel, match="no decode function"):
        model_runner.check_graph(str(tmp_path / "half"))
