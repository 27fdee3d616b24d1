"""The Gradescope zip: unpacked into a folder laid out like /autograder/ and run on the reference."""

import argparse
import os
import subprocess
import zipfile

import pytest

from autograder import config
from autograder.scoring.checks import CHECKS_BY_KEY
from autograder.tools.gradescope import SETUP_SH, build_zip, unpack
from helpers import assert_valid_gradescope


def test_zip_holds_setup_run_script_grader_and_classifier_but_no_solution(tmp_path):
    path = build_zip(tmp_path / "autograder.zip")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert {"setup.sh", "run_autograder", "requirements.txt", "autograder/classifier.keras",
            "autograder/grading/grade.py", "autograder/children/harness.py", "hw/code/mnist_data.py"} <= names
    assert "hw/code/vae.py" not in names and "hw/code/assignment.py" not in names
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    # Unpacked as Gradescope unpacks it, the scripts stay executable.
    source = unpack(path, tmp_path / "source")
    assert os.access(source / "run_autograder", os.X_OK) and os.access(source / "setup.sh", os.X_OK)
    assert not os.access(source / "autograder" / "grading" / "grade.py", os.X_OK)


def test_each_zip_gets_a_fresh_secret_that_decides_the_grades_inputs(tmp_path):
    from autograder.grading.grade import Seeds

    secrets_seen = []
    for name in ("first.zip", "second.zip"):
        with zipfile.ZipFile(build_zip(tmp_path / name)) as archive:
            secret = archive.read("autograder/secret").strip()
            assert archive.getinfo("autograder/secret").external_attr >> 16 == 0o600
        assert len(secret) == 64
        secrets_seen.append(secret)
    assert secrets_seen[0] != secrets_seen[1]
    first, second = (Seeds.from_master(secret + b"same files") for secret in secrets_seen)
    assert len({first.units, first.training, first.scoring}) == 3
    assert first != second


@pytest.mark.slow
def test_run_autograder_grades_the_reference_in_an_autograder_layout(reference_full_grade):
    """The built zip unpacked into an /autograder layout, its ``run_autograder`` run on the reference
    (``hostile_cases.gradescope_layout``; the grade the session's pool shares with the reference's
    full-budget tests)."""
    import hostile_cases as hc

    results = reference_full_grade
    assert_valid_gradescope(results)
    assert results["score"] == 100, [t["output"][:200] for t in results["tests"] if t["status"] != "passed"]
    assert results["extra_data"]["machine"]["cpus"] > 0
    # Planned to the timeout the zip records (Gradescope's default), which the grader knows it runs under.
    assert results["extra_data"]["machine"]["platform_timeout"] is True
    assert results["extra_data"]["machine"]["grade_seconds"] == 600 - config.PLATFORM_MARGIN_SECONDS
    # The isolation the grader reports is the one this machine allows the zip's interpreter.
    assert results["extra_data"]["isolation"]["user"] == ("unprivileged" if nobody_can_start(hc.PYTHON)
                                                           else "the grader's")
    generation = {test["name"]: test for test in results["tests"]}[CHECKS_BY_KEY["cvae_generation"].name]
    assert generation["output_format"] == "html" and "data:image/png;base64," in generation["output"]


def nobody_can_start(python: str) -> bool:
    """Whether this process is root and the user ``nobody`` can start ``python`` (with NumPy)."""
    if os.geteuid() != 0:
        return False
    try:
        done = subprocess.run([python, "-I", "-c", "import numpy"], user="nobody", cwd="/", capture_output=True,
                              timeout=120)
    except (KeyError, OSError):
        return False
    return done.returncode == 0


def test_setup_makes_the_environment_from_the_interpreter_it_installs():
    # A python3 found first on PATH may live under a private folder that the children's user cannot enter.
    venv_lines = [line for line in SETUP_SH.splitlines() if "-m venv" in line]
    assert venv_lines == ['/usr/bin/python3 -m venv "$ROOT/venv"']
    assert 'ROOT="${AUTOGRADER_ROOT:-/autograder}"' in SETUP_SH.splitlines()


def test_the_zip_records_the_timeout_and_each_grade_plans_to_it(tmp_path, monkeypatch):
    from autograder import cli
    from autograder.config import GradeConfig

    with zipfile.ZipFile(build_zip(tmp_path / "twenty.zip", time_limit_minutes=20)) as archive:
        recorded = archive.read("autograder/deployment.json")
    (tmp_path / "deployment.json").write_bytes(recorded)
    monkeypatch.setattr(config, "DEPLOYMENT_FILE", tmp_path / "deployment.json")
    planned = cli.config_from(argparse.Namespace(small=False, seed=None))
    default = GradeConfig()
    assert planned.total_seconds == 1200 - config.PLATFORM_MARGIN_SECONDS
    # The time it adds goes to training; Gradescope's default timeout gives the default budget.
    assert planned.train_limits.wall_seconds - default.train_limits.wall_seconds == 600
    assert planned.unit_limits == default.unit_limits
    assert GradeConfig().for_time_limit(config.DEFAULT_TIME_LIMIT_SECONDS) == default
    monkeypatch.setattr(config, "DEPLOYMENT_FILE", tmp_path / "absent.json")
    # Outside the zip no platform stops the grade: it is planned to the longest timeout, and says so.
    local = cli.config_from(argparse.Namespace(small=False, seed=None))
    assert not local.platform_timeout and planned.platform_timeout
    assert local.total_seconds == config.LOCAL_TIME_LIMIT_SECONDS - config.PLATFORM_MARGIN_SECONDS
    assert local.train_limits.wall_seconds - default.train_limits.wall_seconds == \
        config.LOCAL_TIME_LIMIT_SECONDS - config.DEFAULT_TIME_LIMIT_SECONDS


def test_build_zip_refuses_a_timeout_gradescope_does_not_offer(tmp_path, capsys):
    from autograder.__main__ import main

    assert main(["build-zip", str(tmp_path / "a.zip"), "--time-limit", "50"]) == 2
    assert "between 1 and 40 minutes" in capsys.readouterr().err
    assert not (tmp_path / "a.zip").exists()
