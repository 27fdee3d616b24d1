"""The code's layout: no import cycles, and each trusted computation agrees with its deliberate copies."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from helpers import CODE_DIR, REPO_DIR

PACKAGES = {"autograder": REPO_DIR / "autograder", "experiments": REPO_DIR / "experiments"}


def module_files() -> dict[str, Path]:
    """Module name -> file: the two packages' modules and the course code's plain modules."""
    files = {path.stem: path for path in CODE_DIR.glob("*.py")}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            files[name.removesuffix(".__init__")] = path
    return files


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules that ``path`` imports anywhere (inside functions too: a late import still binds)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in known and target != name}
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    assert len(graph) > 40 and graph["autograder.grading.grade"] >= {"autograder.scoring.checks", "autograder.config"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_copy_of_the_negative_elbo_agrees_with_the_graders():
    """The grader's NumPy formula (``checks.negative_elbo``) is the trusted one; its copies must give the same.

    The copies exist on purpose: the harness runs in a child that cannot import the grader's package
    (a NumPy copy to decide when to stop, a TensorFlow copy to check ``train_vae`` alone), the
    reference solution is what students are graded against, and the experiments' Bernoulli
    likelihood adds the same KL. Saturated probabilities exercise the clipping epsilon.
    """
    import tensorflow as tf

    import vae
    from autograder.children import harness
    from autograder.scoring import checks
    from experiments import likelihoods

    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(6, 28, 28)).astype(np.uint8)
    x = images.astype(np.float64)[:, None] / 255.0
    x_hat = rng.uniform(0.0, 1.0, size=x.shape)
    x_hat[0, 0, :3] = 0.0
    x_hat[1, 0, :3] = 1.0
    mu, logvar = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    expected = checks.negative_elbo(x_hat, x, mu, logvar)
    tensors = [tf.constant(value, tf.float64) for value in (x_hat, x, mu, logvar)]
    kl = checks.kl_sum(mu, logvar)
    copies = {
        "harness.negative_elbo": harness.negative_elbo(x_hat, images, mu, logvar),
        "harness.trusted_loss_function": float(harness.trusted_loss_function(*tensors)),
        "vae.loss_function (the reference)": float(vae.loss_function(*tensors)),
        "experiments.likelihoods.bernoulli_nll":
            (float(tf.reduce_sum(likelihoods.bernoulli_nll(tensors[1], tensors[0]))) + kl) / len(x),
    }
    for name, value in copies.items():
        assert value == pytest.approx(expected, rel=1e-9), name
    assert checks.BCE_EPSILON == vae.BCE_EPSILON == likelihoods.PROBABILITY_EPSILON


# The grader's subpackages by where their code runs, lowest first: a module may import from its own
# layer and the layers below it (and the package's top-level modules: config, paths), never above.
LAYERS = ("autograder.children", "autograder.scoring", "autograder.grading", "autograder.tools")


def layer_of(module: str) -> int | None:
    return next((rank for rank, layer in enumerate(LAYERS) if module.startswith(layer + ".")), None)


def test_the_scripts_that_run_in_children_import_nothing_of_the_kit():
    """The harness runs beside student code and the model runner beside exported graphs: both are copied
    into a folder of their own and must not import the grader's package or the course's modules."""
    graph = import_graph()
    scripts = {name for name in graph if layer_of(name) == 0}
    assert scripts == {"autograder.children.harness", "autograder.children.model_runner"}
    for script in scripts:
        assert graph[script] == set(), (script, graph[script])


def test_no_layer_imports_a_layer_above_it():
    graph = import_graph()
    upward = [(name, target) for name, targets in graph.items() for target in targets
              if layer_of(name) is not None and layer_of(target) is not None and layer_of(target) > layer_of(name)]
    assert upward == [], "imports from a layer above: " + ", ".join(f"{a} -> {b}" for a, b in upward)
    assert all(any(layer_of(name) == rank for name in graph) for rank in range(len(LAYERS)))


def test_the_grader_calls_train_vae_as_the_students_own_run_does(tmp_path, monkeypatch):
    """The harness's epoch loop and model builder are deliberate copies of ``training.fit`` and
    ``training.build_model`` (the child cannot import the course's modules); ``train_vae`` must get
    the same kind of model, batches and options from both."""
    import argparse
    import types
    from dataclasses import fields

    import assignment
    import keras
    import training
    import vae
    from autograder.children import harness
    from autograder.scoring.requests import training_request
    from helpers import tiny_config

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    arrays = types.SimpleNamespace(
        train_images=rng.integers(0, 256, (256, 28, 28), dtype=np.uint8), train_labels=np.arange(256) % 10,
        test_images=rng.integers(0, 256, (1024, 28, 28), dtype=np.uint8), test_labels=np.arange(1024) % 10)

    def recorder(calls):
        def train_vae(model, train_loader, args, is_cvae=False):
            images, labels = next(iter(train_loader))
            calls.append({
                "model": type(model).__name__, "latent_size": int(model(*(
                    (images, tf_one_hot(labels)) if is_cvae else (images,)))[1].shape[1]),
                "optimizer": type(getattr(model, "optimizer", None)).__name__,
                "images": (tuple(images.shape[1:]), images.dtype.name), "labels": labels.dtype.name,
                "in [0, 1]": bool(float(np.min(images)) >= 0.0 and float(np.max(images)) <= 1.0),
                "is_cvae": is_cvae, "args": isinstance(args, argparse.Namespace)})
            return 0.0
        return train_vae

    def tf_one_hot(labels):
        import tensorflow as tf
        return tf.one_hot(labels, 10)

    config = tiny_config()
    request = training_request(config, 0, arrays)
    for is_cvae in (False, True):
        grader_calls, student_calls = [], []
        harness.train_and_decode(vae, types.SimpleNamespace(train_vae=recorder(grader_calls)), request, is_cvae)
        latent = int(request["cvae_latent_size" if is_cvae else "vae_latent_size"])
        run_config = training.TrainConfig(cvae=is_cvae, num_epochs=1, latent_size=latent,
                                          batch_size=int(request["batch_size"]), outputs_dir=str(tmp_path))
        model = training.build_model(run_config)
        dataset = assignment.load_mnist(run_config.batch_size, seed=0, arrays=arrays)
        # As training.run sets it.
        model.optimizer = keras.optimizers.Adam(training.learning_rate_schedule(run_config, len(dataset)))
        training.fit(model, dataset, recorder(student_calls), argparse.Namespace(), run_config, log=lambda line: None)
        assert grader_calls[:1] == student_calls[:1] and grader_calls, (is_cvae, grader_calls, student_calls)
        # Every option of the students' command line is in the namespace the grader passes.
        missing = {field.name for field in fields(training.TrainConfig)} - set(vars(harness.grader_args(request, is_cvae)))
        assert not missing, missing
