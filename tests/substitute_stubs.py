"""Run in a child by test_release: every function of a release, put in the place of each stub, scored.

Usage: ``python substitute_stubs.py RELEASE_CODE_DIR REFERENCE_DIR MNIST_DIR`` (cwd: anywhere). The
reference solution fills every other part (so a substitute is judged alone, as the grader judges each
stub); each function defined in a release file (module-level functions and methods, the stubs themselves
excepted) is called in the stub's place by the self-check's own probe, and the self-check's check scores
it against the stored expected values. Prints one JSON line: {"earned": [...], "controls": {...},
"tried": N}; the reference's own functions are the positive controls.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import os
import signal
import sys
import types
from pathlib import Path

import numpy as np

# A substitute that runs longer than this is stopped and counts as failed.
SECONDS_PER_CALL = 20
# The stubs under test: name -> (the module it lives in, the probes whose checks it must not earn).
TARGETS = {
    "one_hot": ("assignment", ("one_hot",)),
    "reparametrize": ("vae", ("reparametrize", "reparametrize_gradient")),
    "loss_function": ("vae", ("loss_function",)),
    "train_vae": ("assignment", ("train_vae",)),
}
ARITY = {"one_hot": 2, "reparametrize": 2, "loss_function": 4, "train_vae": 4}


class TookTooLong(Exception):
    pass


def on_alarm(signum, frame):
    raise TookTooLong()


def release_functions(code_dir: Path) -> list[tuple[str, object]]:
    """(qualified name, function) of every function defined in the release's Python files."""
    found = []
    for path in sorted(code_dir.rglob("*.py")):
        module_name = ".".join(path.relative_to(code_dir).with_suffix("").parts)
        if module_name.endswith("__init__"):
            continue
        module = importlib.import_module(module_name)
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{module_name}.{node.name}", getattr(module, node.name)))
            elif isinstance(node, ast.ClassDef):
                cls = getattr(module, node.name)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in cls.__dict__:
                        member = cls.__dict__[item.name]
                        member = getattr(member, "__func__", member)
                        found.append((f"{module_name}.{node.name}.{item.name}", member))
    return found


def accepts(function, count: int) -> bool:
    try:
        inspect.signature(function).bind(*range(count))
    except (TypeError, ValueError):
        return False
    return True


def main(code_dir: str, reference_dir: str, mnist_dir: str) -> None:
    code_dir, reference_dir = Path(code_dir), Path(reference_dir)
    os.environ.update(MNIST_DATA_DIR=mnist_dir, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    sys.path.insert(0, str(code_dir))
    functions = release_functions(code_dir)
    checks = importlib.import_module("_selfcheck.checks")
    harness = importlib.import_module("_selfcheck.harness")
    requests = importlib.import_module("_selfcheck.requests")
    from mnist_data import load_arrays

    arrays = load_arrays(mnist_dir)
    request = requests.unit_request(requests.SELF_CHECK_SEED, arrays.train_images, arrays.train_labels)
    stored = json.loads((code_dir / "_selfcheck" / "expected.json").read_text())
    scored_request = {**request, **{key: np.asarray(value) for key, value in stored["values"].items()}}
    reference = load_reference(reference_dir)
    signal.signal(signal.SIGALRM, on_alarm)

    def score(target: str, function) -> dict[str, float]:
        module_name, probes = TARGETS[target]
        substituted = types.SimpleNamespace(**vars(reference[module_name]))
        setattr(substituted, target, function)
        fractions = {}
        for probe in probes:
            probe_function, needs = harness.PROBES[probe]
            modules = [substituted if need == module_name else reference[need] for need in needs]
            signal.alarm(SECONDS_PER_CALL)
            try:
                raw = probe_function(*modules, request)
                result = {f"{probe}.{key}": (value if isinstance(value, str) else harness.as_plain_array(value, key))
                          for key, value in raw.items()}
            except BaseException as error:  # noqa: BLE001 - any failure of a substitute means no points
                if isinstance(error, KeyboardInterrupt):
                    raise
                result = {f"{probe}.error": repr(error)[:200]}
            finally:
                signal.alarm(0)
            fractions[probe] = checks.UNIT_CHECKS[probe](result, scored_request, "was a substitute").fraction
        return fractions

    earned, tried = [], 0
    for target in TARGETS:
        for name, function in functions:
            if name.rsplit(".", 1)[-1] == target or not accepts(function, ARITY[target]):
                continue
            tried += 1
            fractions = score(target, function)
            if any(fraction > 0 for fraction in fractions.values()):
                earned.append({"target": target, "substitute": name, "fractions": fractions})
    controls = {target: score(target, getattr(reference[TARGETS[target][0]], target)) for target in TARGETS}
    print(json.dumps({"earned": earned, "controls": controls, "tried": tried}))


def load_reference(folder: Path) -> dict[str, types.ModuleType]:
    """The reference solution's vae and assignment, which fill every part but the substitute.

    They are loaded under other names (the release's stencil holds ``vae``),
    and the reference assignment's ``from vae import ...`` gets the reference.
    """
    modules = {}
    stencil_vae = sys.modules.get("vae")
    try:
        for name in ("vae", "assignment"):
            spec = importlib.util.spec_from_file_location(f"reference_{name}", folder / f"{name}.py")
            modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[name])
            sys.modules["vae"] = modules["vae"]
    finally:
        sys.modules["vae"] = stencil_vae
    return modules


if __name__ == "__main__":
    main(*sys.argv[1:4])
