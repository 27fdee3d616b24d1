"""grade-all: one row per submission whatever each one does, kept across interruptions, then feedback and a summary."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from autograder.scoring.checks import CHECKS
from autograder.tools import batch
from helpers import CODE_DIR, REPO_DIR, require_mnist_dir


def grade_all(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "autograder", "grade-all", *map(str, args)], cwd=REPO_DIR,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, **kwargs)


def gradebook(path):
    return {row["submission"]: row for row in csv.DictReader(path.open())}


def invalid_submission(folder):
    """A submission the grader refuses at once (no vae.py): graded in about a second."""
    folder.mkdir(parents=True)
    (folder / "assignment.py").write_text("x = 1\n")


@pytest.mark.slow
def test_grade_all_writes_a_row_per_submission_even_for_broken_ones(tmp_path):
    require_mnist_dir()
    folder = tmp_path / "submissions"
    broken = folder / "alice"
    broken.mkdir(parents=True)
    shutil.copyfile(CODE_DIR / "vae.py", broken / "vae.py")
    (broken / "assignment.py").write_text("import os\nos._exit(3)\n")
    invalid_submission(folder / "bob")
    (folder / "carol.zip").write_bytes(b"not a zip at all")
    out = tmp_path / "grades.csv"
    done = grade_all(folder, "--out", out, "--small", "--workers", "2", timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = gradebook(out)
    assert set(rows) == {"alice", "bob", "carol.zip"}
    assert list(next(csv.reader(out.open()))) == ["submission", "status", "minutes", "total",
                                                   *[s.name for s in CHECKS], "unverified", "warnings",
                                                   "error"]
    # alice's vae.py is right; her assignment.py exits at import, so only the vae.py checks score.
    assert float(rows["alice"]["total"]) == sum(
        s.points for s in CHECKS if s.key in ("reparametrize", "reparametrize_gradient", "loss_function",
                                              "vae_forward", "cvae_forward"))
    assert rows["alice"]["status"] == "crashed"
    assert rows["bob"]["status"] == "invalid" and "no vae.py" in rows["bob"]["error"]
    assert rows["carol.zip"]["status"] == "invalid"
    assert float(rows["bob"]["total"]) == 0
    assert all(float(row["minutes"]) >= 0 for row in rows.values())
    for name in ("alice", "bob", "carol"):
        assert (tmp_path / "results" / f"{name}.json").is_file()
        assert (tmp_path / "feedback" / f"{name}.md").read_text().startswith(f"# Feedback for {name}")
    assert (tmp_path / "grades-histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "status: invalid 2, crashed 1" in done.stdout


def test_a_killed_batch_keeps_its_rows_and_a_rerun_grades_only_the_rest(tmp_path):
    require_mnist_dir()
    folder = tmp_path / "submissions"
    invalid_submission(folder / "a")
    invalid_submission(folder / "b")
    slow = folder / "c"
    slow.mkdir()
    shutil.copyfile(CODE_DIR / "vae.py", slow / "vae.py")
    (slow / "assignment.py").write_text("import time\ntime.sleep(3600)\n")
    out = tmp_path / "grades.csv"
    batch_run = subprocess.Popen([sys.executable, "-m", "autograder", "grade-all", str(folder), "--out", str(out),
                                  "--small", "--workers", "1"], cwd=REPO_DIR, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out.exists() and len(gradebook(out)) == 2):
            time.sleep(0.2)
        assert out.exists() and set(gradebook(out)) == {"a", "b"}, "the first two rows never reached the gradebook"
        time.sleep(2)  # c's grade has started: its results file was removed or is being written.
    finally:
        os.killpg(batch_run.pid, signal.SIGKILL)
        batch_run.wait()
    kept = {name: (tmp_path / "results" / f"{name}.row.json").stat().st_mtime_ns for name in ("a", "b")}
    # c's student fixes the file before the rerun; a and b are unchanged and must not be graded again.
    (slow / "vae.py").unlink()
    done = grade_all(folder, "--out", out, "--small", "--workers", "1", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 submission(s) already graded, kept" in done.stdout
    assert "grading 1 submission(s)" in done.stdout
    rows = gradebook(out)
    assert set(rows) == {"a", "b", "c"} and rows["c"]["status"] == "invalid"
    assert {name: (tmp_path / "results" / f"{name}.row.json").stat().st_mtime_ns for name in ("a", "b")} == kept
    forced = grade_all(folder, "--out", out, "--small", "--force", timeout=300)
    assert forced.returncode == 0 and "grading 3 submission(s)" in forced.stdout


def test_a_changed_submission_and_a_grader_error_are_graded_again(tmp_path):
    require_mnist_dir()
    folder = tmp_path / "submissions"
    invalid_submission(folder / "a")
    out = tmp_path / "grades.csv"
    empty = tmp_path / "no-data"
    empty.mkdir()
    failed = grade_all(folder, "--out", out, env={"MNIST_DATA_DIR": str(empty), "VAE_KIT_CACHE_DIR": str(empty)},
                       timeout=120)
    assert failed.returncode == 0
    row = gradebook(out)["a"]
    assert row["status"] == "grader-error" and "MNIST is not available" in row["error"]
    assert not (tmp_path / "feedback" / "a.md").exists(), "a grader error is for the staff, not the student"
    again = grade_all(folder, "--out", out, timeout=120)
    assert "grading 1 submission(s)" in again.stdout and gradebook(out)["a"]["status"] == "invalid"
    unchanged = grade_all(folder, "--out", out, timeout=120)
    assert "grading" not in unchanged.stdout
    (folder / "a" / "assignment.py").write_text("x = 2\n")
    changed = grade_all(folder, "--out", out, timeout=120)
    assert "grading 1 submission(s)" in changed.stdout


def test_grade_all_on_an_empty_folder_is_a_clear_error(tmp_path):
    done = grade_all(tmp_path, timeout=120)
    assert done.returncode == 2 and "no submissions" in done.stderr and "Traceback" not in done.stderr
    zero = grade_all(tmp_path, "--workers", "0", timeout=120)
    assert zero.returncode == 2 and "--workers must be at least 1" in zero.stderr


def test_status_names_the_worst_way_a_run_ended():
    def data(**runs):
        return {"tests": [], "score": 0, "extra_data": {"runs": runs}}

    assert batch.status_of(data(**{"units.one_hot": "ok"}, vae="ok", cvae="ok"), 0) == "ok"
    assert batch.status_of(data(vae="timeout", cvae="ok"), 0) == "timeout"
    assert batch.status_of(data(vae="timeout", cvae="memory"), 0) == "memory"
    assert batch.status_of(data(vae="signal", cvae="ok"), 0) == "crashed"
    assert batch.status_of(data(vae="exit", cvae="timeout"), 0) == "timeout"
    assert batch.status_of(data(vae="error"), 0) == "grader-error"
    assert batch.status_of({"tests": [], "score": 0, "extra_data": {"invalid": "no vae.py"}}, 0) == "invalid"
    assert batch.status_of(data(vae="ok"), 1) == "grader-error"
    assert batch.status_of(None, 0) == "grader-error"


@pytest.mark.parametrize("ending", ["killed", "timeout"])
def test_a_grader_stopped_mid_grade_keeps_its_provisional_results_and_says_why(tmp_path, monkeypatch, ending):
    """The grader is stopped after the unit checks (forced: a stand-in for the grader's process writes the
    provisional results it would have written, then is killed or outlives the batch's timeout)."""
    from autograder.grading.results import TestResult
    from autograder.grading.unfinished import ProvisionalResults

    results = tmp_path / "results.json"
    spec = CHECKS[0]

    def stopped_grader(command, **kwargs):
        ProvisionalResults(results).write("vae", {spec.key: TestResult(spec.name, spec.points, spec.points, "ok")})
        if ending == "timeout":
            raise subprocess.TimeoutExpired(command, batch.GRADE_TIMEOUT_S)
        return subprocess.CompletedProcess(command, -signal.SIGKILL, "", "")

    monkeypatch.setattr(batch.subprocess, "run", stopped_grader)
    row = batch.grade_one(tmp_path / "alice", results, batch.BatchConfig(tmp_path))
    assert row["total"] == spec.points and row[spec.name] == spec.points
    if ending == "timeout":
        assert row["status"] == "timeout" and row["error"].startswith("grading took longer than")
    else:
        assert row["status"] == "grader-error" and row["error"] == "SIGKILL stopped the grader"
    data = batch.read_json(results)
    assert data["extra_data"]["interrupted"] == {"stage": "vae", "cause": "signal", "signal": "SIGKILL"}
    assert all("SIGKILL" in test["output"] for test in data["tests"][1:])


def test_default_workers_fit_the_cores_and_memory_and_say_so():
    workers, why = batch.default_workers()
    assert 1 <= workers <= len(os.sched_getaffinity(0))
    assert f"{workers} worker(s)" in why and "core" in why and "GB" in why


def test_feedback_file_holds_the_gradescope_text_and_the_sample_grid_as_a_png(tmp_path):
    from autograder.grading.grade import sample_grid_html

    samples = np.random.default_rng(0).uniform(size=(100, 1, 28, 28)).astype(np.float32)
    grid = sample_grid_html(samples)
    data = {"score": 20.0, "output": "Graded vae.py, assignment.py.", "tests": [
        {"name": "one_hot", "score": 5, "max_score": 5, "output": "Correct.", "output_format": "md"},
        {"name": "CVAE generation", "score": 15, "max_score": 25, "output_format": "html",
         "output": f"<p>Below full credit: 70% <b>x</b></p>{grid}"}]}
    path = batch.write_feedback("dana", data, tmp_path)
    text = path.read_text()
    assert text.startswith("# Feedback for dana") and "**Total: 20 / 30**" in text
    assert "## CVAE generation: 15 / 25" in text and "<p>Below full credit: 70% <b>x</b></p>" in text
    assert "base64" not in text and '<img alt="samples" src="dana.png"/>' in text
    assert (tmp_path / "dana.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dana.md", "dana.png"]


def test_summary_gives_mean_spread_and_statuses_and_a_histogram(tmp_path):
    names = [spec.name for spec in CHECKS]
    rows = [{"submission": f"s{i}", "status": status, "total": total, **{name: 1.0 for name in names}}
            for i, (status, total) in enumerate([("ok", 100.0), ("ok", 80.0), ("timeout", 60.0)])]
    lines = batch.summary_lines(rows)
    total = next(line for line in lines if line.startswith("total"))
    assert total.split()[1:] == ["80.00", "16.33", "60.00", "80.00", "100.00"]
    assert lines[-1] == "status: timeout 1, ok 2"
    batch.write_histogram(rows, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_fingerprint_changes_with_any_file(tmp_path):
    folder = tmp_path / "s"
    invalid_submission(folder)
    first = batch.fingerprint(folder)
    (folder / "notes.txt").write_text("hello")
    assert batch.fingerprint(folder) != first
    zipped = tmp_path / "z.zip"
    zipped.write_bytes(b"PK")
    assert batch.fingerprint(zipped) != batch.fingerprint(folder)


def test_a_grades_machine_warnings_reach_the_gradebook():
    tests = [{"name": spec.name, "score": spec.points} for spec in CHECKS]
    warned = {"score": 100, "tests": tests, "extra_data": {"warnings": ["this machine's memory limit is 768 MB"]}}
    assert batch.row_from_results("ada", warned)["warnings"] == "this machine's memory limit is 768 MB"
    assert batch.row_from_results("bob", {"score": 100, "tests": tests})["warnings"] == ""
