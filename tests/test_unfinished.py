"""A grade the grader does not finish: the provisional results it keeps, and ``finish`` after it was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from autograder.grading.results import Report, TestResult, write_results
from autograder.grading.sandbox import MemoryCgroup
from autograder.grading.unfinished import ProvisionalResults, finish
from autograder.scoring.checks import CHECKS, CHECKS_BY_KEY
from helpers import TEST_SEED, assert_valid_gradescope

TRAINING = ("train_vae", "vae_training", "cvae_generation")


def _cgroup(folder: Path, limit_mb: int, oom_kills: int) -> MemoryCgroup:
    """A cgroup v1 memory folder of ``limit_mb`` whose out-of-memory killer has stopped ``oom_kills``."""
    folder.mkdir(exist_ok=True)
    (folder / "memory.limit_in_bytes").write_text(f"{limit_mb * 2**20}\n")
    (folder / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 1\noom_kill {oom_kills}\n")
    return MemoryCgroup(folder, 1)


def _scored_one_hot() -> dict[str, TestResult]:
    spec = CHECKS_BY_KEY["one_hot"]
    return {"one_hot": TestResult(spec.name, spec.points, spec.points, "Correct.")}


def _tests(data: dict) -> dict[str, dict]:
    return {spec.key: test for spec, test in zip(CHECKS, data["tests"])}


def test_provisional_results_keep_the_scored_checks_and_name_the_stage_of_the_others(tmp_path):
    path = tmp_path / "results.json"
    ProvisionalResults(path, extra_data={"machine": {"cpus": 0.5}}).write(
        "cvae", _scored_one_hot(), {"vae_training": "Its VAE's training run was stopped."}, seconds=12.3)
    data = json.loads(path.read_text())
    assert_valid_gradescope(data)
    tests = _tests(data)
    assert data["score"] == CHECKS_BY_KEY["one_hot"].points == tests["one_hot"]["score"]
    assert tests["one_hot"]["output"] == "Correct."
    for key in TRAINING:
        assert tests[key]["score"] == 0 and "stopped while it trained the CVAE" in tests[key]["output"]
    assert "Its VAE's training run was stopped." in tests["vae_training"]["output"]
    assert data["extra_data"]["provisional"] == {"stage": "cvae", "oom_kills": None}
    assert data["extra_data"]["machine"] == {"cpus": 0.5} and data["execution_time"] == 12.3


def test_finish_names_memory_when_the_container_killed_something_during_the_stage(tmp_path):
    path = tmp_path / "results.json"
    ProvisionalResults(path, _cgroup(tmp_path / "memory", 768, 1)).write("cvae", _scored_one_hot())
    # The CVAE's child, then the grader: two more kills while the stage ran.
    cause = finish(path, 128 + signal.SIGKILL, 2048, _cgroup(tmp_path / "memory", 768, 3))
    assert cause == {"cause": "memory", "signal": "SIGKILL", "memory_limit_mb": 768}
    data = json.loads(path.read_text())
    assert_valid_gradescope(data)
    tests = _tests(data)
    assert data["score"] == tests["one_hot"]["score"] == CHECKS_BY_KEY["one_hot"].points
    for key in TRAINING:
        assert "ran out of memory (its limit is 768 MB" in tests[key]["output"], tests[key]["output"]
    assert "provisional" not in data["extra_data"]
    assert data["extra_data"]["interrupted"]["stage"] == "cvae"
    warning, = data["extra_data"]["warnings"]
    assert "out-of-memory killer stopped it at its limit of 768 MB" in warning and "2048 MB" in warning
    # Finished once, the results are final: a second call leaves them alone.
    assert finish(path, 137, 2048, _cgroup(tmp_path / "memory", 768, 3)) is None


def test_finish_does_not_blame_memory_without_a_kill_in_the_stage(tmp_path):
    path = tmp_path / "results.json"
    ProvisionalResults(path, _cgroup(tmp_path / "memory", 768, 2)).write("vae", _scored_one_hot())
    assert finish(path, -signal.SIGKILL, 2048, _cgroup(tmp_path / "memory", 768, 2)) == \
        {"cause": "signal", "signal": "SIGKILL"}
    output = _tests(json.loads(path.read_text()))["vae_training"]["output"]
    assert "stopped from outside by SIGKILL" in output and "memory" not in output.split("SIGKILL")[1]


def test_finish_writes_results_where_the_grader_left_none_and_leaves_final_ones_alone(tmp_path):
    missing = tmp_path / "missing" / "results.json"
    assert finish(missing, 1, 2048, _cgroup(tmp_path / "memory", 768, 0)) == {"cause": "exit", "exit_status": 1}
    data = json.loads(missing.read_text())
    assert_valid_gradescope(data)
    assert data["score"] == 0 and "before it ran any submitted code" in data["tests"][0]["output"]
    final = tmp_path / "final.json"
    write_results(Report(tests=[TestResult(spec.name, 0.0, spec.points, "x") for spec in CHECKS]), final)
    before = final.read_text()
    assert finish(final, 1, 2048) is None and final.read_text() == before


def _children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                if name.isdigit() and int(handle.read().rsplit(b")", 1)[1].split()[1]) == pid:
                    found.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow
def test_a_grader_killed_while_it_trains_still_leaves_a_grade_through_the_zip(tmp_path):
    """The zip's ``run_autograder`` on the reference; the grader is killed with SIGKILL (as the out-of-memory
    killer stops it) once it trains the VAE. Gradescope must still find valid results: the unit checks
    scored, the training checks at zero, saying where and how the grade stopped."""
    import hostile_cases as hc

    (tmp_path / "submission").mkdir()
    for name, text in hc.reference().items():
        (tmp_path / "submission" / name).write_text(text)
    env = hc.gradescope_layout(tmp_path, hc.PYTHON, dict(os.environ))
    results = tmp_path / "results" / "results.json"
    runner = subprocess.Popen(["bash", str(tmp_path / "source" / "run_autograder"), "--small", "--seed",
                               str(TEST_SEED)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    leftovers = []
    try:
        deadline = time.monotonic() + 300
        stage = None
        while stage != "vae" and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                stage = json.loads(results.read_text())["extra_data"]["provisional"]["stage"]
            except (OSError, ValueError, KeyError):
                continue
        assert stage == "vae", runner.communicate(timeout=60)[0] if runner.poll() is not None else stage
        grader, = _children_of(runner.pid)
        leftovers = _children_of(grader)
        os.kill(grader, signal.SIGKILL)
        output, _ = runner.communicate(timeout=120)
    finally:
        for pid in leftovers + ([runner.pid] if runner.poll() is None else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    assert runner.returncode == 128 + signal.SIGKILL, output
    data = json.loads(results.read_text())
    assert_valid_gradescope(data)
    tests = _tests(data)
    for spec in CHECKS:
        if spec.key in TRAINING:
            assert tests[spec.key]["score"] == 0, tests[spec.key]
            assert "stopped while it trained the VAE" in tests[spec.key]["output"]
            assert "SIGKILL" in tests[spec.key]["output"], tests[spec.key]["output"]
        else:
            assert tests[spec.key]["score"] == spec.points, tests[spec.key]
    assert data["extra_data"]["interrupted"]["stage"] == "vae"
    assert data["extra_data"]["machine"]["cpus"] > 0
