"""End-to-end grading: the reference gets full marks; each usual student bug loses points on its check.

Every submission here is the reference solution with one bug written in; the
tests write them into temporary folders. Grading uses the small budget, except
for one test of the full budget on the reference (its small-budget grade runs
through the Gradescope layout, in ``test_gradescope.py``).
"""

import json
import shutil
import zipfile

import pytest

from autograder.checks import CHECKS, CHECKS_BY_KEY
from autograder.config import GradeConfig
from autograder.grade import check_units, grade
from helpers import CODE_DIR, REPO_DIR, assert_valid_gradescope, require_mnist_dir

pytestmark = pytest.mark.slow

# Each bug: the file, the text of the reference it replaces, the replacement,
# the checks that must lose points, and words the feedback must contain. A bug
# in the loss or in reparametrize also spoils the models trained under the
# grader's budget: MAY_LOSE lists those downstream checks, which may go either
# way; every other check must keep its points.
MAY_LOSE = {
    "flipped_kl_sign": {"cvae_generation"},
    "logvar_as_std": {"cvae_generation"},
    "mean_over_pixels": {"cvae_generation"},
    "no_kl": {"vae_training", "cvae_generation"},
}
BUGS = {
    "mean_over_pixels": ("vae.py", "    reconstruction = bce_function(x_hat, x)\n",
                         "    reconstruction = bce_function(x_hat, x) / 784.0\n",
                         {"loss_function", "vae_training"}, "mean over pixels"),
    "flipped_kl_sign": ("vae.py", "    kl = -0.5 * tf.reduce_sum(",
                        "    kl = 0.5 * tf.reduce_sum(", {"loss_function", "vae_training"}, "wrong sign"),
    "logvar_as_std": ("vae.py", "    return mu + tf.exp(0.5 * logvar) * eps",
                      "    return mu + logvar * eps",
                      {"reparametrize", "reparametrize_gradient", "vae_training"}, "variance"),
    "no_kl": ("vae.py", "    return (reconstruction + kl) / batch_size",
              "    return reconstruction / batch_size", {"loss_function"}, "KL term is missing"),
    "decoder_ignores_label": ("vae.py", "        x_hat = self.decoder(tf.concat([z, c], axis=-1))",
                              "        x_hat = self.decoder(tf.concat([z, tf.zeros_like(c)], axis=-1))",
                              {"cvae_generation"}, "Decoding one z with the ten labels changes the image by"),
    "never_steps_optimizer": ("assignment.py",
                              "        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))\n",
                              "", {"train_vae", "vae_training", "cvae_generation"}, "optimizer"),
    "wrong_one_hot": ("assignment.py", "    return tf.one_hot(tf.cast(labels, tf.int32), class_size, dtype=tf.float32)",
                      "    return tf.one_hot(tf.cast(labels, tf.int32) - 1, class_size, dtype=tf.float32)",
                      {"one_hot", "cvae_generation"}, "should be 1 at column"),
    "syntax_error": ("assignment.py", "def one_hot(labels, class_size):", "def one_hot(labels, class_size)",
                     {spec.key for spec in CHECKS if spec.key not in
                      ("reparametrize", "reparametrize_gradient", "loss_function", "vae_forward",
                       "cvae_forward")}, "SyntaxError"),
    "missing_reparametrize": ("vae.py", "def reparametrize(mu, logvar):", "def reparametrise(mu, logvar):",
                              {spec.key for spec in CHECKS if spec.key not in ("one_hot", "loss_function")},
                              "reparametrize"),
}


def write_submission(folder, bug=None):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vae.py", "assignment.py"):
        shutil.copyfile(CODE_DIR / name, folder / name)
    if bug:
        name, old, new, _, _ = BUGS[bug]
        text = (folder / name).read_text()
        assert text.count(old) == 1, f"the reference no longer contains the text bug {bug} replaces"
        (folder / name).write_text(text.replace(old, new))
    return folder


def grade_and_read(submission, tmp_path, config):
    """Grade ``submission``; return its tests by name, the results file's data, and the grader's report."""
    require_mnist_dir()
    results_path = tmp_path / "results" / "results.json"
    report = grade(submission, results_path, config, log=lambda line: None)
    data = json.loads(results_path.read_text())
    assert data["score"] == report.score
    return {test["name"]: test for test in data["tests"]}, data, report


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_each_bug_loses_points_on_its_checks_only(bug, tmp_path):
    _, _, _, failing, words = BUGS[bug]
    tests, data, _ = grade_and_read(write_submission(tmp_path / bug, bug), tmp_path, GradeConfig().small())
    assert_valid_gradescope(data)
    for spec in CHECKS:
        test = tests[spec.name]
        if spec.key in MAY_LOSE.get(bug, ()):
            continue
        if spec.key in failing:
            assert test["score"] < test["max_score"], f"{spec.key} should lose points for {bug}"
        else:
            assert test["score"] == test["max_score"], f"{spec.key} lost points for {bug}: {test['output']}"
    feedback = " ".join(tests[CHECKS_BY_KEY[key].name]["output"] for key in failing)
    assert words in feedback


def test_a_zipped_submission_one_folder_down_is_graded(tmp_path):
    folder = write_submission(tmp_path / "src" / "hw2", "wrong_one_hot")
    archive = tmp_path / "submission.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"hw2/{path.name}")
    # The unit checks are enough: a whole grade opens the submission the same way (copy_submission).
    require_mnist_dir()
    outcomes = check_units(archive, GradeConfig.for_tests(), log=lambda line: None)
    assert outcomes["one_hot"].fraction == 0
    assert outcomes["loss_function"].fraction == 1


def test_a_submission_without_vae_py_scores_zero_with_a_clear_message(tmp_path):
    folder = tmp_path / "only-assignment"
    folder.mkdir()
    shutil.copyfile(CODE_DIR / "assignment.py", folder / "assignment.py")
    tests, data, _ = grade_and_read(folder, tmp_path, GradeConfig().small())
    assert_valid_gradescope(data)
    assert data["score"] == 0
    assert "no vae.py" in data["output"]


def test_the_grader_never_imports_tensorflow_itself(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, json; from pathlib import Path\n"
        "from autograder.grade import unit_request, training_request, load_result_file\n"
        "from autograder import checks, results, submission, sandbox\n"
        "print(json.dumps('tensorflow' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "false"


def test_reference_gets_full_marks_with_the_full_budget(tmp_path):
    tests, data, _ = grade_and_read(write_submission(tmp_path / "reference"), tmp_path, GradeConfig())
    assert_valid_gradescope(data)
    assert data["score"] == 100, {name: t["output"][:300] for name, t in tests.items() if t["status"] != "passed"}


def test_the_same_submission_and_seed_give_the_same_results(tmp_path):
    import dataclasses

    from autograder.config import Budget

    tiny = dataclasses.replace(GradeConfig(seed=1234), budget=Budget(train_images=2048, eval_images=256))
    submission = write_submission(tmp_path / "reference")
    runs = []
    for name in ("first", "second"):
        _, data, _ = grade_and_read(submission, tmp_path / name, tiny)
        data.pop("execution_time")
        runs.append(data)
    assert runs[0] == runs[1]


def test_the_generation_judge_answers_each_epoch_without_following_links(tmp_path):
    """The grader scores the CVAE's samples after each epoch and tells the child to stop or go on."""
    import threading
    import time

    import numpy as np

    from autograder.classifier import NumpyClassifier
    from autograder.grade import GenerationJudge
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


def test_a_model_that_cannot_be_exported_is_graded_and_marked_unverified(tmp_path):
    """Eager-only code in the VAE's call (.numpy()) cannot be traced: its scores come from the child, flagged."""
    import shutil

    from autograder.config import GradeConfig as Config
    from autograder.results import format_table

    submission = tmp_path / "eager_only"
    shutil.copytree(REPO_DIR / "tests" / "submissions" / "eager", submission)
    vae_file = submission / "vae.py"
    text = vae_file.read_text()
    vae_file.write_text(text.replace("    def call(self, x):\n        h = self.encoder(x)",
                                     "    def call(self, x):\n        h = self.encoder(tf.constant(x.numpy()))", 1))
    assert vae_file.read_text() != text
    tests, _, report = grade_and_read(submission, tmp_path, Config.for_tests())
    for name in ("train_vae", "VAE training"):
        assert tests[name]["extra_data"] == {"unverified": True}, name
        assert tests[name]["output"].startswith("Unverified: your model could not be exported"), name
        assert "numpy" in tests[name]["output"]
    assert "unverified" not in tests["CVAE generation"].get("extra_data", {})
    assert tests["train_vae"]["score"] == tests["train_vae"]["max_score"]
    assert "* unverified" in format_table(report)
