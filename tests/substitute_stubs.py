"""Run in a child by test_release: every function of a release, put in the place of each stub, scored.

Usage: ``python substitute_stubs.py RELEASE_CODE_DIR REFERENCE_DIR MNIST_DIR`` (cwd: anywhere). The
targets are the release's stubs (its functions and methods whose body raises NotImplementedError),
joined to the probes of ``harness.PROBES`` that need their module and call them. The reference
solution fills every other part (so a substitute is judged alone, as the grader judges each stub);
each function defined in a release file (module-level functions and methods, the stub itself excepted)
that takes the reference's positional arguments is put in the stub's place (a method in a subclass of
the reference's class), the self-check's own probes run, and the self-check's checks score them against
the stored expected values. The release's stub in its place shows which probes depend on it, the
reference's own function there (the positive control, run with every place so filled) must earn them in
full, and no substitute may earn more of them than the stub. Prints one JSON line: {"targets": {...},
"unmapped": [...], "earned": [...], "controls": {...}, "baseline": {...}, "tried": N,
"tried_by_target": {...}}.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

# A substitute that runs longer than this is stopped and counts as failed.
SECONDS_PER_CALL = 20
# A substitute entered again through its own place this many calls deep recurses without end (the
# harness's call_with_tensors as a model's call calls the model, which calls it), and is stopped as well.
MAX_REENTRY = 10


class TookTooLong(BaseException):
    """Not an Exception, so that a substitute's ``except Exception`` (the harness's retries) cannot swallow it."""


def on_alarm(signum, frame):
    # Raised again every second until the call ends: a substitute that catches everything cannot outlast it.
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    raise TookTooLong()


def raises_not_implemented(node: ast.AST) -> bool:
    """Whether the function ``node`` itself (not a function or class inside it) raises NotImplementedError."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(child, ast.Raise) and child.exc is not None:
            raised = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
            if isinstance(raised, ast.Name) and raised.id == "NotImplementedError":
                return True
        if raises_not_implemented(child):
            return True
    return False


def release_functions(code_dir: Path) -> list[tuple[str, str, object, bool]]:
    """(module, qualified name, function, whether it is a stub) of each function of the release's Python files."""
    found = []
    for path in sorted(code_dir.rglob("*.py")):
        module_name = ".".join(path.relative_to(code_dir).with_suffix("").parts)
        if module_name.endswith("__init__"):
            continue
        module = importlib.import_module(module_name)
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((module_name, node.name, getattr(module, node.name), raises_not_implemented(node)))
            elif isinstance(node, ast.ClassDef):
                cls = getattr(module, node.name)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in cls.__dict__:
                        member = cls.__dict__[item.name]
                        member = getattr(member, "__func__", member)
                        found.append((module_name, f"{node.name}.{item.name}", member,
                                      raises_not_implemented(item)))
    return found


def accepts(function, count: int) -> bool:
    try:
        inspect.signature(function).bind(*range(count))
    except (TypeError, ValueError):
        return False
    return True


def positional_count(function) -> int:
    """How many positional parameters ``function`` has, ``self`` included."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(parameter.kind in kinds for parameter in inspect.signature(function).parameters.values())


def reference_function(module, qualname: str):
    """The reference's function or method (as in its class's namespace) named ``qualname`` in ``module``."""
    owner, _, name = qualname.rpartition(".")
    if not owner:
        return getattr(module, name)
    member = vars(getattr(module, owner))[name]
    return getattr(member, "__func__", member)


def guarded(function):
    """``function``, stopped when it is entered again through its place MAX_REENTRY calls deep."""
    depth = 0

    @functools.wraps(function)
    def call(*args, **kwargs):
        nonlocal depth
        if depth >= MAX_REENTRY:
            raise TookTooLong()
        depth += 1
        try:
            return function(*args, **kwargs)
        finally:
            depth -= 1
    return call


@contextlib.contextmanager
def placed(reference: dict, module_name: str, qualname: str, function):
    """The reference modules with ``function`` in the place of ``qualname`` wherever they refer to it.

    A method goes into a subclass of the reference's class, which the rest of
    the reference fills; every module name bound to the original (such as
    ``from vae import loss_function`` in assignment.py) is rebound meanwhile,
    as it would be in a submission that defined the substitute there.
    """
    owner, _, name = qualname.rpartition(".")
    original = getattr(reference[module_name], owner or name)
    function = guarded(function)
    if owner:
        replacement = type(original.__name__, (original,), {
            name: function, "__module__": original.__module__, "__qualname__": original.__qualname__})
    else:
        replacement = function
    bound = [(module, key) for module in reference.values() for key, value in list(vars(module).items())
             if value is original]
    for module, key in bound:
        setattr(module, key, replacement)
    try:
        yield
    finally:
        for module, key in bound:
            setattr(module, key, original)


def main(code_dir: str, reference_dir: str, mnist_dir: str) -> None:
    code_dir, reference_dir = Path(code_dir), Path(reference_dir)
    os.environ.update(MNIST_DATA_DIR=mnist_dir, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    sys.path.insert(0, str(code_dir))
    functions = release_functions(code_dir)
    checks = importlib.import_module("_selfcheck.scoring.checks")
    harness = importlib.import_module("_selfcheck.children.harness")
    requests = importlib.import_module("_selfcheck.scoring.requests")
    from mnist_data import load_arrays

    arrays = load_arrays(mnist_dir)
    request = requests.unit_request(requests.SELF_CHECK_SEED, arrays.train_images, arrays.train_labels)
    stored = json.loads((code_dir / "_selfcheck" / "expected.json").read_text())
    scored_request = {**request, **{key: np.asarray(value) for key, value in stored["values"].items()}}
    stubs = {f"{module}.{qualname}": (module, qualname, function)
             for module, qualname, function, is_stub in functions if is_stub}
    reference = load_reference(reference_dir, sorted({module for module, _, _ in stubs.values()}))
    own = {target: reference_function(reference[module], qualname)
           for target, (module, qualname, _) in stubs.items() if module in reference}
    signal.signal(signal.SIGALRM, on_alarm)

    def score(places: dict, probes) -> dict[str, float]:
        """The fraction of each probe's check earned with ``places`` (target -> function) in the reference."""
        fractions = {}
        with contextlib.ExitStack() as stack, contextlib.redirect_stdout(sys.stderr):
            for target, function in places.items():
                stack.enter_context(placed(reference, *stubs[target][:2], function))
            for probe in probes:
                probe_function, needs = harness.PROBES[probe]
                stopped = False
                signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_CALL)
                try:
                    try:
                        raw = probe_function(*(reference[need] for need in needs), request)
                        result = {f"{probe}.{key}": (value if isinstance(value, str)
                                                     else harness.as_plain_array(value, key))
                                  for key, value in raw.items()}
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except BaseException as error:  # noqa: BLE001 - any failure of a substitute means no points
                    # Stopped again in case the clock rang inside the finally clause, before it was stopped.
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    if isinstance(error, KeyboardInterrupt):
                        raise
                    stopped = isinstance(error, TookTooLong)
                    result = {f"{probe}.error": repr(error)[:200]}
                fractions[probe] = checks.UNIT_CHECKS[probe](result, scored_request, "was a substitute").fraction
                if stopped:
                    # A substitute stopped (for its time, or recursing without end) has failed: the probes
                    # it has not run yet score nothing.
                    fractions.update((rest, 0.0) for rest in probes if rest not in fractions)
                    break
        return fractions

    # Which probes call each stub's place themselves: the reference runs every probe once, each stub's
    # place holding the reference's function wrapped to note the calls made while no other stub's place
    # is running. A probe that reaches a stub only through another (the VAE's forward pass calls
    # reparametrize) grades that other one, so a substitute may earn it. This run, every place holding
    # the reference's own function, is also each target's positive control.
    running, direct, baseline = [], {target: [] for target in own}, {}

    def recorded(target, function, called):
        """``function``, adding ``target`` to ``called`` when called while no other place runs."""
        @functools.wraps(function)
        def call(*args, **kwargs):
            if not running:
                called.add(target)
            running.append(target)
            try:
                return function(*args, **kwargs)
            finally:
                running.pop()
        return call

    for probe in harness.PROBES:
        called = set()
        baseline.update(score({target: recorded(target, function, called) for target, function in own.items()},
                              [probe]))
        for target in called:
            direct[target].append(probe)

    # A stub's probes: those of its module's probes (by harness.PROBES' needs) that call its place and
    # that the release's stub, put there, does not earn in full. A stub no probe needs, or whose absence
    # costs none, is a place no check guards.
    targets, unmapped, controls, stub_scores = {}, [], {}, {}
    for target, (module_name, _, stub) in stubs.items():
        probes = [probe for probe, (_, needs) in harness.PROBES.items()
                  if module_name in needs and probe in direct.get(target, ())]
        stub_scores[target] = score({target: stub}, probes) if probes else {}
        lost = [probe for probe in probes if stub_scores[target][probe] < 1.0]
        if not lost:
            unmapped.append(target)
            continue
        targets[target] = lost
        controls[target] = {probe: baseline[probe] for probe in lost}

    earned, tried = [], {}
    for target, probes in targets.items():
        arity = positional_count(own[target])
        tried[target] = 0
        for module, name, function, _ in functions:
            if f"{module}.{name}" == target or not accepts(function, arity):
                continue
            tried[target] += 1
            fractions = score({target: function}, probes)
            # Earning is doing better than the stub itself, which is what a student who left it gets.
            if any(fractions[probe] > stub_scores[target][probe] for probe in probes):
                earned.append({"target": target, "substitute": f"{module}.{name}", "fractions": fractions})
    print(json.dumps({"targets": targets, "unmapped": unmapped, "earned": earned, "controls": controls,
                      "baseline": baseline, "tried": sum(tried.values()), "tried_by_target": tried}))


def load_reference(folder: Path, names: list[str]) -> dict:
    """The reference solution's modules ``names``, which fill every part but the substitute.

    They are imported from ``folder`` while the release's modules of the same
    names (the stencil) are out of ``sys.modules``, so that the reference's own
    ``from vae import ...`` gets the reference; the stencil's are put back after.
    """
    stencil = {name: sys.modules.pop(name, None) for name in names}
    sys.path.insert(0, str(folder))
    try:
        return {name: importlib.import_module(name) for name in names if (folder / f"{name}.py").is_file()}
    finally:
        sys.path.remove(str(folder))
        for name, module in stencil.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


if __name__ == "__main__":
    main(*sys.argv[1:4])
