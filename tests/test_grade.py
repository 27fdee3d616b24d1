"""End-to-end grading: the reference gets full marks; each usual student bug loses points on its check.

Every submission here is the reference solution, with one bug written in or as it is. The usual bugs
(``hostile_cases.BUGS``) are graded with the tests' budget in the session's pool of grades
(``conftest.graded_pool``); the reference's grade with the full budget, through the Gradescope zip's
``run_autograder``, is the session fixture ``reference_full_grade``, which ``test_reference_stats.py``
and ``test_gradescope.py`` share. Every grade draws its inputs from the session's seed
(``helpers.TEST_SEED``).
"""

import json
import shutil
import zipfile

import pytest

import hostile_cases as hc
from autograder.grading.grade import check_units, grade
from helpers import CODE_DIR, REPO_DIR, assert_valid_gradescope, require_mnist_dir, tiny_config

pytestmark = pytest.mark.slow


def write_submission(folder):
    """The reference solution's two files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vae.py", "assignment.py"):
        shutil.copyfile(CODE_DIR / name, folder / name)
    return folder


def grade_and_read(submission, tmp_path, config):
    """Grade ``submission``; return its tests by name, the results file's data, and the grader's report."""
    require_mnist_dir()
    results_path = tmp_path / "results" / "results.json"
    report = grade(submission, results_path, config, log=lambda line: None)
    data = json.loads(results_path.read_text())
    assert data["score"] == report.score
    return {test["name"]: test for test in data["tests"]}, data, report


@pytest.mark.parametrize("case_name", [case.name for case in hc.BUGS if hc.decides_training(case)])
def test_each_bug_loses_points_on_its_checks_only(case_name, graded_pool):
    """The usual bugs, graded in the session's pool (``conftest.graded_pool``) and judged as hostile cases are."""
    case = hc.CASES_BY_NAME[case_name]
    problems = hc.evaluate(case, graded_pool.graded[case_name], graded_pool.baseline)
    assert not problems, f"{case.name} ({case.summary}):\n- " + "\n- ".join(problems)


@pytest.mark.parametrize("bug", [case.name for case in hc.BUGS if not hc.decides_training(case)])
def test_a_bug_that_the_tests_budget_cannot_judge_in_training_loses_its_unit_checks(bug, tmp_path):
    """Where the tests' budget decides no training check, the unit checks are all a whole grade would judge."""
    case = hc.CASES_BY_NAME[bug]
    folder = tmp_path / bug
    hc.write_submission(case, folder, hc.Context(REPO_DIR, 0, "0"))
    require_mnist_dir()
    outcomes = check_units(folder, tiny_config(), log=lambda line: None)
    for key, outcome in outcomes.items():
        if key in case.lost:
            assert outcome.fraction < 1, f"{key} kept its points"
            assert any(word in outcome.feedback for word in case.lost[key]), (key, outcome.feedback[:300])
        elif key not in case.unchecked:
            assert outcome.fraction == 1, (key, outcome.feedback[:300])


def test_a_zipped_submission_one_folder_down_is_graded(tmp_path):
    folder = tmp_path / "src" / "hw2"
    hc.write_submission(hc.CASES_BY_NAME["wrong_one_hot"], folder, hc.Context(REPO_DIR, 0, "0"))
    archive = tmp_path / "submission.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"hw2/{path.name}")
    # The unit checks are enough: a whole grade opens the submission the same way (copy_submission).
    require_mnist_dir()
    outcomes = check_units(archive, tiny_config(), log=lambda line: None)
    assert outcomes["one_hot"].fraction == 0
    assert outcomes["loss_function"].fraction == 1


def test_a_submission_without_vae_py_scores_zero_with_a_clear_message(tmp_path):
    folder = tmp_path / "only-assignment"
    folder.mkdir()
    shutil.copyfile(CODE_DIR / "assignment.py", folder / "assignment.py")
    tests, data, _ = grade_and_read(folder, tmp_path, tiny_config())
    assert_valid_gradescope(data)
    assert data["score"] == 0
    assert "no vae.py" in data["output"]


def test_the_grader_never_imports_tensorflow_itself(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, json; from pathlib import Path\n"
        "from autograder.grading.grade import unit_request, training_request, load_result_file\n"
        "from autograder.scoring import checks\n"
        "from autograder.grading import results, submission, sandbox\n"
        "print(json.dumps('tensorflow' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "false"


def test_reference_gets_full_marks_with_the_full_budget(reference_full_grade):
    data = reference_full_grade
    assert_valid_gradescope(data)
    assert data["score"] == 100, {t["name"]: t["output"][:300] for t in data["tests"] if t["status"] != "passed"}


@pytest.mark.grades(hc.REFERENCE_AGAIN)
def test_the_same_submission_and_seed_give_the_same_results(graded_pool):
    """Two grades of the reference, each in a grader process of its own, give the same results."""
    first = json.loads(graded_pool.graded["reference"].results_text)
    data = json.loads(graded_pool.graded[hc.REFERENCE_AGAIN.name].results_text)
    for results in (first, data):
        results.pop("execution_time")
    differing = [(test["name"], field, test[field], again[field]) for test, again in zip(first["tests"], data["tests"])
                 for field in test if test[field] != again.get(field)]
    assert data == first, differing or {key: (first[key], data.get(key)) for key in first if first[key] != data.get(key)}


def test_the_generation_judge_answers_each_epoch_without_following_links(tmp_path):
    """The grader scores the CVAE's samples after each epoch and tells the child to stop or go on."""
    import threading
    import time

    import numpy as np

    from autograder.grading.grade import GenerationJudge
    from autograder.scoring.classifier import NumpyClassifier
    from mnist_data import load_arrays

    arrays = load_arrays(require_mnist_dir())
    labels = arrays.test_labels[:200].astype(np.int64)
    digits = arrays.test_images[:200].astype(np.float64)[:, None] / 255.0
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "decision-2").symlink_to(outside)
    result = sandbox / "result.npz"
    judge = GenerationJudge(NumpyClassifier.load(), labels, 0.9, sandbox)
    done = threading.Event()
    watcher = threading.Thread(target=judge, args=(result, done))
    watcher.start()

    def publish(epochs, samples):
        np.savez(result.with_suffix(".partial.npz"), **{"cvae.epoch_seconds": np.ones(epochs),
                                                          "cvae.samples": samples})
        result.with_suffix(".partial.npz").replace(result)
        for _ in range(100):
            if (sandbox / f"decision-{epochs}").is_file() and not (sandbox / f"decision-{epochs}").is_symlink():
                return (sandbox / f"decision-{epochs}").read_text()
            time.sleep(0.1)
        raise AssertionError("no decision")

    try:
        assert publish(1, digits[::-1].copy()) == "go"   # the wrong digits for their labels
        assert publish(2, digits) == "stop"              # real test digits: the classifier agrees
    finally:
        done.set()
        watcher.join()
    assert outside.read_text() == "untouched"
    history = judge.history()
    assert history[0] < 0.5 and history[1] > 0.95
    assert judge.met_bar


def test_whether_the_generation_bar_was_met_does_not_depend_on_when_the_judge_looked(tmp_path):
    """The child's last epoch asks for no decision: seen before or after the child ends, it reads the same."""
    import threading

    import numpy as np

    from autograder.grading.grade import GenerationJudge
    from autograder.scoring.classifier import NumpyClassifier
    from mnist_data import load_arrays

    arrays = load_arrays(require_mnist_dir())
    labels = arrays.test_labels[:100].astype(np.int64)
    digits = arrays.test_images[:100].astype(np.float64)[:, None] / 255.0
    np.savez(tmp_path / "result.npz", **{"cvae.epoch_seconds": np.ones(1), "cvae.samples": digits})
    verdicts = []
    for ended_first in (True, False):
        judge = GenerationJudge(NumpyClassifier.load(), labels, 0.9, tmp_path)
        done = threading.Event()
        if ended_first:
            done.set()   # the watcher's only look comes after the child ended: it writes no decision
        watcher = threading.Thread(target=judge, args=(tmp_path / "result.npz", done))
        watcher.start()
        if not ended_first:
            while not judge.accuracies:
                watcher.join(0.05)
            done.set()
        watcher.join()
        verdicts.append(judge.met_bar)
    assert (tmp_path / "decision-1").read_text() == "stop"
    assert verdicts == [True, True]


@pytest.mark.grades(hc.UNEXPORTABLE)
def test_a_model_that_cannot_be_exported_is_graded_and_marked_unverified(graded_pool):
    """Eager-only code in the VAE's call (.numpy()) cannot be traced: its scores come from the child, flagged."""
    graded = graded_pool.graded[hc.UNEXPORTABLE.name]
    assert hc.evaluate(hc.UNEXPORTABLE, graded, graded_pool.baseline) == []
    tests = {test["name"]: test for test in graded.results["tests"]}
    for name in ("train_vae", "VAE training"):
        assert tests[name]["extra_data"] == {"unverified": True}, name
        assert tests[name]["output"].startswith("Unverified: your model could not be exported"), name
        assert "numpy" in tests[name]["output"]
    assert "unverified" not in tests["CVAE generation"].get("extra_data", {})
    assert tests["train_vae"]["score"] == tests["train_vae"]["max_score"]
