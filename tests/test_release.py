"""The student release: the stencil, what it leaves out, the self-check, and check-release."""

import ast
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.__main__ import main as autograder_main
from autograder.paths import PACKAGE_DIR
from autograder.scoring.checks import CHECKS_BY_KEY, UNIT_CHECKS
from autograder.tools import release
from helpers import CODE_DIR, REPO_DIR, require_mnist_dir, tiny_config

MARKER = re.compile(r"^\s*# (BEGIN|END) SOLUTION")
PROVIDED = ("mnist_data.py", "training.py", "figures.py", "check.py")


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    return release.write_release(tmp_path_factory.mktemp("release") / "student")


def split_solution(path):
    """The lines inside the solution blocks of ``path`` and the lines outside them, stripped."""
    inside, outside, in_block = [], [], False
    for line in path.read_text().splitlines():
        if MARKER.match(line):
            in_block = "BEGIN" in line
            continue
        (inside if in_block else outside).append(line.strip())
    return inside, outside


def run_python(*args, cwd, env=None, timeout=300):
    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=child_env, capture_output=True, text=True,
                          timeout=timeout)


# The stencil, on a small module written here.

DEMO = '''class Model:
    def call(self, x):
        """Double x."""
        # TODO: double x. Then return it.
        # BEGIN SOLUTION
        y = 2 * x
        return y
        # END SOLUTION


def helper():
    # BEGIN SOLUTION
    return 1
    # END SOLUTION
'''


def test_each_solution_block_becomes_a_stub_under_its_todo():
    stencil = release.make_stencil(DEMO, "demo.py")
    assert "SOLUTION" not in stencil and "y = 2 * x" not in stencil and "return 1" not in stencil
    assert '        # TODO: double x. Then return it.\n        raise NotImplementedError(' in stencil
    assert "implement Model.call in demo.py: double x" in stencil
    assert '    raise NotImplementedError("implement helper in demo.py")' in stencil
    namespace = {}
    exec(compile(stencil, "demo.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="implement Model.call in demo.py: double x"):
        namespace["Model"]().call(1)


@pytest.mark.parametrize("text, where", [
    ("x = 1\n# BEGIN SOLUTION\ny = 2\n", "demo.py:2"),
    ("x = 1\n# END SOLUTION\n", "demo.py:2"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "demo.py:2"),
])
def test_unpaired_markers_are_refused_with_their_line(text, where):
    with pytest.raises(release.ReleaseError, match=where):
        release.make_stencil(text, "demo.py")


# The release folder.


def test_release_holds_the_stencil_the_provided_modules_and_the_student_files(release_dir):
    files = {p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*") if p.is_file()}
    assert files == {
        "README.md", "handout.md", "requirements.txt", "hw/outputs/.gitkeep",
        *(f"hw/code/{name}" for name in ("vae.py", "assignment.py", *PROVIDED)),
        *(f"hw/code/_selfcheck/{name}" for name in release.SELF_CHECK_MODULES),
        *{f"hw/code/_selfcheck/{Path(name).parent.as_posix()}/__init__.py".replace("/./", "/")
          for name in release.SELF_CHECK_MODULES},
        f"hw/code/_selfcheck/{release.SELF_CHECK_EXPECTED}",
    }
    for name in PROVIDED:
        assert filecmp.cmp(CODE_DIR / name, release_dir / "hw" / "code" / name, shallow=False), name
    for name in release.SELF_CHECK_MODULES:
        shipped = (release_dir / "hw" / "code" / "_selfcheck" / name).read_text()
        assert shipped == release.strip_grader_only((PACKAGE_DIR / name).read_text(), name)
        assert "GRADER ONLY" not in shipped.replace('"BEGIN GRADER ONLY" and "END GRADER ONLY"', "")
    assert (release_dir / "hw" / "outputs" / ".gitkeep").read_text() == ""
    readme = (release_dir / "README.md").read_text()
    assert "python check.py" in readme and "Submit" in readme and "requirements.txt" in readme


def test_the_provided_python_is_at_most_1000_lines(release_dir):
    # What a student may need to read beside vae.py and assignment.py; _selfcheck/ is the grader's
    # code, which check.py runs and no one needs to read.
    counts = {name: len((release_dir / "hw" / "code" / name).read_text().splitlines()) for name in PROVIDED}
    assert sum(counts.values()) <= 1000, counts


def test_release_requirements_are_the_runtime_ones(release_dir):
    lines = [line.strip() for line in (release_dir / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    assert "pytest" not in " ".join(requirements)
    assert any(line.startswith("tensorflow") for line in requirements)
    repo_lines = {line.strip() for line in (REPO_DIR / "requirements.txt").read_text().splitlines()}
    assert set(requirements) <= repo_lines


def test_runtime_requirements_drop_test_sections_and_dev_tools():
    text = "# Runtime.\nnumpy>=1\n# Tests.\npytest>=8\nhypothesis\n\n# Plots.\nmatplotlib\nruff==0.1\n"
    assert release.runtime_requirements(text) == "# Runtime.\nnumpy>=1\n\n# Plots.\nmatplotlib\n"
    two_line_heading = "numpy>=1\n\n# Instructor tools: the experiments read\n# other datasets.\ntensorflow-datasets\n"
    assert release.runtime_requirements(two_line_heading) == "numpy>=1\n"
    shipped = release.runtime_requirements((REPO_DIR / "requirements.txt").read_text())
    assert "tensorflow" in shipped and "pytest" not in shipped
    assert "copydetect" not in shipped and "tensorflow-datasets" not in shipped


def test_every_solution_block_is_replaced_and_every_todo_kept(release_dir):
    for name in release.STENCIL_FILES:
        master = (CODE_DIR / name).read_text()
        stencil = (release_dir / "hw" / "code" / name).read_text()
        blocks = master.count("# BEGIN SOLUTION")
        assert blocks > 0 and not any(MARKER.match(line) for line in stencil.splitlines())
        assert stencil.count("raise NotImplementedError(") == blocks
        todos = [line for line in master.splitlines() if line.strip().startswith("# TODO")]
        assert todos and all(line in stencil.splitlines() for line in todos)


def test_no_solution_line_reaches_any_release_file(release_dir):
    inside, outside = set(), set()
    for path in CODE_DIR.glob("*.py"):
        block, rest = split_solution(path)
        inside.update(block)
        outside.update(rest)
    for name in release.SELF_CHECK_MODULES:
        outside.update(line.strip() for line in (PACKAGE_DIR / name).read_text().splitlines())
    trivial = re.compile(r"[\[\](){},:]*|return|#.*SOLUTION")
    secret = {line for line in inside - outside if not trivial.fullmatch(line)}
    assert len(secret) > 20
    leaks = []
    for path in release_dir.rglob("*"):
        if path.is_file():
            assert path.suffix not in (".keras", ".h5", ".npz"), f"grader-only file {path}"
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip() in secret:
                    leaks.append(f"{path.relative_to(release_dir)}:{number}: {line.strip()}")
    assert leaks == []
    assert release.find_leaks(release_dir) == []


def test_the_leak_check_finds_a_solution_line(release_dir, tmp_path):
    copy = shutil.copytree(release_dir, tmp_path / "copy")
    line = sorted(release.solution_lines())[0]
    with open(copy / "handout.md", "a") as handout:
        handout.write(f"\n    {line}\n")
    (copy / "hw" / "code" / "classifier.keras").write_bytes(b"weights")
    leaks = release.find_leaks(copy)
    assert any(leak.startswith("handout.md:") and leak.endswith(line) for leak in leaks)
    assert any(leak.startswith("hw/code/classifier.keras") for leak in leaks)


def test_release_refuses_a_non_empty_folder_and_force_replaces_it_atomically(tmp_path, capsys):
    target = tmp_path / "student"
    target.mkdir()
    (target / "old.txt").write_text("old")
    assert autograder_main(["release", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "--force" in err
    assert (target / "old.txt").exists()
    assert autograder_main(["release", str(target), "--force", "--zip"]) == 0
    assert not (target / "old.txt").exists() and (target / "hw" / "code" / "vae.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student", "student.zip"]
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        names = archive.namelist()
    assert "student/hw/code/vae.py" in names and "student/hw/outputs/.gitkeep" in names


def test_release_refuses_to_write_over_the_repository(capsys):
    assert autograder_main(["release", str(REPO_DIR), "--force"]) == 2
    assert "course repository" in capsys.readouterr().err


def test_main_prints_the_stub_message_in_one_line_even_when_keras_wraps_it(monkeypatch, capsys):
    import assignment

    def run(*args, **kwargs):
        # Keras re-raises an error from call() as a new exception with a longer message.
        try:
            raise NotImplementedError("implement VAE.call in vae.py: encode x")
        except NotImplementedError:
            raise NotImplementedError("Exception encountered when calling VAE.call().\n\nmore") from None

    monkeypatch.setattr(assignment.training, "run", run)
    assert assignment.main([]) == 1
    assert capsys.readouterr().err == "error: implement VAE.call in vae.py: encode x\n"


# The stencil as a program, in child processes.


@pytest.mark.slow
def test_stencil_imports_cleanly_and_help_works(release_dir):
    code = release_dir / "hw" / "code"
    done = run_python("-c", "import vae, assignment, check, training, figures, mnist_data", cwd=code)
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_python("assignment.py", "--help", cwd=code)
    assert done.returncode == 0 and "usage: assignment.py" in done.stdout, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("flags, stub", [((), "VAE.__init__"), (("--cvae",), "CVAE.__init__")])
def test_a_run_of_the_stencil_stops_at_the_first_stub_in_one_line(release_dir, tmp_path, flags, stub):
    data_dir = require_mnist_dir()
    done = run_python("assignment.py", "--num_epochs", "1", "--outputs_dir", str(tmp_path), *flags,
                      cwd=release_dir / "hw" / "code", env={"MNIST_DATA_DIR": data_dir})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"implement {stub} in vae.py" in errors[0], done.stderr[-2000:]


# The self-check.


def self_check(code_dir, data_dir):
    return run_python("check.py", cwd=code_dir, env={"MNIST_DATA_DIR": str(data_dir)})


@pytest.mark.slow
def test_self_check_passes_every_unit_check_on_the_reference():
    done = self_check(CODE_DIR, require_mnist_dir())
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    for key in UNIT_CHECKS:
        spec = CHECKS_BY_KEY[key]
        assert f"[PASS] {spec.name} ({spec.points:g}/{spec.points:g} points)" in done.stdout


@pytest.mark.slow
def test_self_check_in_the_release_passes_with_the_reference_code(release_dir, tmp_path):
    code = shutil.copytree(release_dir / "hw" / "code", tmp_path / "code")
    for name in release.STENCIL_FILES:
        shutil.copyfile(CODE_DIR / name, code / name)
    done = self_check(code, require_mnist_dir())
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.count("[PASS]") == len(UNIT_CHECKS)


@pytest.mark.slow
def test_self_check_fails_every_unit_check_of_the_stencil_naming_the_stub(release_dir):
    done = self_check(release_dir / "hw" / "code", require_mnist_dir())
    assert done.returncode == 1
    for key in UNIT_CHECKS:
        spec = CHECKS_BY_KEY[key]
        assert f"[FAIL] {spec.name} (0/{spec.points:g} points)" in done.stdout
    assert done.stdout.count("NotImplementedError: implement") == len(UNIT_CHECKS)
    assert "0 of 7 checks pass" in done.stdout


@pytest.mark.slow
def test_self_check_skips_train_vae_when_mnist_is_unavailable(release_dir, tmp_path):
    done = self_check(release_dir / "hw" / "code", tmp_path)
    assert "MNIST is not available" in done.stdout
    assert f"[SKIP] {CHECKS_BY_KEY['train_vae'].name}" in done.stdout
    assert done.stdout.count("[FAIL]") == len(UNIT_CHECKS) - 1


@pytest.mark.slow
def test_self_check_trains_as_the_grader_does_with_its_feedback_and_a_picture_of_the_samples(release_dir, tmp_path):
    code = shutil.copytree(release_dir / "hw" / "code", tmp_path / "code")
    for name in release.STENCIL_FILES:
        shutil.copyfile(CODE_DIR / name, code / name)
    done = run_python("check.py", "--training", "--small", cwd=code, env={"MNIST_DATA_DIR": str(require_mnist_dir())},
                      timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    vae, cvae = CHECKS_BY_KEY["vae_training"], CHECKS_BY_KEY["cvae_generation"]
    assert f"[PASS] {vae.name} ({vae.points:g}/{vae.points:g} points)" in done.stdout
    assert "Negative ELBO per image on 500 test images" in done.stdout
    # Progress: a line per finished epoch, the VAE's with its loss; the small budget's CVAE trains 1 epoch.
    assert re.search(r"^  epoch 1/\d+: test loss \d+\.\d per image  \[\d+\.\d s\]$", done.stdout, re.M), done.stdout
    assert re.search(r"^  epoch 1/1  \[\d+\.\d s\]$", done.stdout, re.M), done.stdout
    assert "1 epoch, at most" in done.stdout and "1 epochs" not in done.stdout
    assert f"[INFO] {cvae.name} (?/{cvae.points:g} points)" in done.stdout
    assert "the grader's classifier, which scores these samples, stays with the grader" in done.stdout
    picture = tmp_path / "outputs" / "check_cvae_samples.png"
    assert picture.read_bytes().startswith(b"\x89PNG") and str(picture) in done.stdout.split()


@pytest.mark.slow
def test_self_check_training_of_the_stencil_names_the_stub(release_dir, tmp_path):
    code = shutil.copytree(release_dir / "hw" / "code", tmp_path / "code")
    done = run_python("check.py", "--training", "--small", cwd=code, env={"MNIST_DATA_DIR": str(require_mnist_dir())})
    assert done.returncode == 1
    for key in ("vae_training", "cvae_generation"):
        spec = CHECKS_BY_KEY[key]
        assert f"[FAIL] {spec.name} (0/{spec.points:g} points)" in done.stdout
    assert done.stdout.count("Training raised an error before the first epoch ended") == 2


# check-release.


@pytest.mark.slow
def test_check_release_finds_no_surprise(capsys, monkeypatch):
    """The command as an instructor runs it, with the tests' budget and seed in place of ``--small``'s."""
    from autograder import cli

    require_mnist_dir()
    monkeypatch.setattr(cli, "config_from", lambda args: tiny_config())
    status = autograder_main(["check-release", "--small"])
    out, err = capsys.readouterr()
    assert status == 0, out + err[-3000:]
    assert "Reference solution" in out and "Stencil" in out and "check-release: ok" in out
    assert re.search(r"^total +100/100$", out, re.M) and re.search(r"^total +0/100$", out, re.M)


def test_check_release_names_each_surprise():
    from autograder.grading.results import Report, TestResult

    def report(scores, output="NotImplementedError: implement x"):
        return Report(tests=[TestResult(spec.name, score, spec.points, output)
                             for spec, score in zip(CHECKS_BY_KEY.values(), scores)])

    full = [spec.points for spec in CHECKS_BY_KEY.values()]
    assert release.report_problems(report(full), report([0] * len(full))) == []
    lost = release.report_problems(report([0] + full[1:]), report([0] * len(full)))
    assert len(lost) == 1 and "reference solution earns 0/5 on one_hot" in lost[0]
    earned = release.report_problems(report(full), report([5] + [0] * (len(full) - 1)))
    assert len(earned) == 1 and "stencil earns 5/5 on one_hot" in earned[0]
    broken = release.report_problems(report(full), report([0] * len(full), "SyntaxError"))
    assert len(broken) == len(full) and "without reaching a stub" in broken[0]


# No solution in any shipped file.


def test_grader_only_blocks_are_stripped_and_must_pair_up():
    text = "a = 1\n# BEGIN GRADER ONLY\nb = 2\n\n\n# END GRADER ONLY\n\n\n\n\nc = 3\n"
    assert release.strip_grader_only(text, "m.py") == "a = 1\n\n\nc = 3\n"
    for broken in ("# BEGIN GRADER ONLY\n", "# END GRADER ONLY\n",
                   "# BEGIN GRADER ONLY\n# BEGIN GRADER ONLY\n# END GRADER ONLY\n"):
        with pytest.raises(release.ReleaseError):
            release.strip_grader_only(broken, "m.py")
    with pytest.raises(release.ReleaseError, match="does not compile"):
        release.strip_grader_only("if x:\n    # BEGIN GRADER ONLY\n    y = 1\n    # END GRADER ONLY\n", "m.py")


def test_the_stored_expected_values_are_the_graders_own(release_dir):
    import numpy as np

    from autograder.scoring.checks import expected_values
    from autograder.scoring.requests import SELF_CHECK_SEED, unit_request

    stored = json.loads((release_dir / "hw" / "code" / "_selfcheck" / release.SELF_CHECK_EXPECTED).read_text())
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(600, 28, 28), dtype=np.uint8)
    # The values depend on the seed only, not on the images of the train_vae probe.
    computed = expected_values(unit_request(SELF_CHECK_SEED, images, rng.integers(0, 10, 600)))
    assert stored["seed"] == SELF_CHECK_SEED and set(stored["values"]) == set(computed)
    for key, value in computed.items():
        np.testing.assert_allclose(stored["values"][key], value, rtol=1e-12)


# Names of calls that compute a solution: the KL (exp of logvar, mu squared), the reparametrization
# (exp of logvar), the cross-entropy (logarithms).
LOG_CALLS = ("log", "log1p", "xlogy", "binary_crossentropy", "BinaryCrossentropy", "sigmoid_cross_entropy_with_logits")


def solution_code(path):
    """Where the code of ``path`` computes a KL, a reparametrization or a cross-entropy (strings aside).

    The provided ``bce_function`` of vae.py is the one place a cross-entropy may be computed.
    """
    tree = ast.parse(path.read_text())
    allowed = {id(node) for function in ast.walk(tree) if isinstance(function, ast.FunctionDef)
               and function.name == "bce_function" for node in ast.walk(function)}

    def names(node):
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}

    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        if isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            arguments = set().union(*(names(argument) for argument in node.args)) if node.args else set()
            if callee == "exp" and "logvar" in arguments:
                found.append(f"{path.name}:{node.lineno}: exp(logvar)")
            if callee in LOG_CALLS or (isinstance(node.func, ast.Name) and node.func.id in LOG_CALLS[1:]):
                found.append(f"{path.name}:{node.lineno}: a logarithm")
            if callee == "square" and "mu" in arguments:
                found.append(f"{path.name}:{node.lineno}: square(mu)")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and "mu" in names(node.left):
            found.append(f"{path.name}:{node.lineno}: mu**")
    return found


def test_no_release_file_computes_the_kl_the_reparametrization_or_the_cross_entropy(release_dir):
    found = [hit for path in sorted(release_dir.rglob("*.py")) for hit in solution_code(path)]
    assert found == []
    # The same scan finds them in the grader's own modules and in the reference solution.
    grader = {hit.split(": ", 1)[1] for name in ("scoring/checks.py", "children/harness.py") for hit in solution_code(PACKAGE_DIR / name)}
    assert {"exp(logvar)", "a logarithm", "mu**"} <= grader
    reference = {hit.split(": ", 1)[1] for hit in solution_code(CODE_DIR / "vae.py")}
    assert "exp(logvar)" in reference and reference & {"square(mu)", "mu**"}


@pytest.mark.slow
def test_no_function_of_the_release_earns_a_stubs_check_in_its_place(release_dir, tmp_path):
    """Every function of every release file, called in the place of any stub, earns none of its checks' points.

    The stubs and their checks come from the release and harness.PROBES; the
    reference solution fills every other part, and its own functions (the
    positive controls) earn full marks in the same runs.
    """
    mnist = require_mnist_dir()
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in release.STENCIL_FILES:
        shutil.copyfile(CODE_DIR / name, reference / name)
    work = tmp_path / "work"
    work.mkdir()
    done = run_python(str(REPO_DIR / "tests" / "substitute_stubs.py"), str(release_dir / "hw" / "code"),
                      str(reference), mnist, cwd=work, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # Every stub the release makes (model methods included) is a target, and a check guards each.
    stubs = {f"{name.removesuffix('.py')}.{block.owner}" for name in release.STENCIL_FILES
             for block in release.solution_blocks((CODE_DIR / name).read_text(), name)}
    assert report["unmapped"] == []
    assert set(report["targets"]) == stubs
    assert report["earned"] == []
    assert report["tried"] > 250
    assert min(report["tried_by_target"].values()) >= 10
    assert all(fraction == 1.0 for fraction in report["baseline"].values())
    assert set(report["controls"]) == stubs
    assert all(fraction == 1.0 for fractions in report["controls"].values() for fraction in fractions.values())
