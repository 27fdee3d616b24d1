"""Hostile and broken submissions: the grader keeps working and cannot be fooled.

The cases live in ``hostile_cases.py``, shared with ``bench/bench_hostile.py``.
Every selected case is graded once, in the session's pool of grades
(``conftest.graded_pool``: two at a time, ``HOSTILE_WORKERS``), by the real
grader in a process of its own with ``GradeConfig.for_tests()`` and the
session's seed (``helpers.TEST_SEED``), next to the reference solution, which
must earn every check (so that a case that should keep a check is judged
against full marks); each test then judges one case. Cases that need children to run as an
unprivileged user are skipped where the grader falls back to its own user (for
example when its Python lives under a private /root); set
``AUTOGRADER_TEST_PYTHON`` to an interpreter that user can run to include them
(see autograder/SECURITY.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import hostile_cases as hc
from autograder.grading.sandbox import Limits, prepare_workdir, run_child, unprivileged_user
from autograder.scoring.checks import CHECKS
from helpers import REPO_DIR

pytestmark = pytest.mark.slow

PYTHON = hc.PYTHON
SYSTEM_PYTHON = "/usr/bin/python3"


def test_the_cases_cover_every_kind_of_attack():
    names = [case.name for case in hc.CASES + hc.BUGS + hc.POPULATION]
    assert len(set(names)) == len(names) == len(hc.CASES_BY_NAME) and len(hc.CASES) >= 25
    groups = {case.group for case in hc.CASES}
    assert groups == {"broken", "runaway", "escaping", "gaming"}
    for case in hc.CASES:
        assert set(case.lost) <= set(hc.ALL_CHECKS) and case.unchecked <= set(hc.ALL_CHECKS), case.name
        assert all(words for words in case.lost.values()), f"{case.name}: every lost check names its feedback"


def test_the_reference_earns_every_check(graded_pool):
    graded = graded_pool.graded["reference"]
    assert graded.returncode == 0, graded.stderr[-2000:]
    assert hc.evaluate(hc.REFERENCE, graded, graded_pool.baseline) == []
    assert graded_pool.baseline == {spec.key: spec.points for spec in CHECKS}


@pytest.mark.grades(hc.SABOTAGED)
def test_a_case_that_wrongly_loses_training_credit_fails_the_suite(graded_pool):
    """The sabotaged reference loses both training checks; judged as a case that keeps every check, it fails."""
    problems = hc.evaluate(hc.REFERENCE, graded_pool.graded[hc.SABOTAGED.name], graded_pool.baseline)
    lost = {problem.split(" ", 1)[0] for problem in problems}
    assert lost == {"vae_training", "cvae_generation"}, problems


def test_the_judged_checks_come_from_the_graders_registries():
    assert set(hc.UNIT_KEYS) | set(hc.TRAINING_KEYS) == set(hc.ALL_CHECKS) == {spec.key for spec in CHECKS}
    assert set(hc.UNIT_KEYS) & set(hc.TRAINING_KEYS) == {"train_vae"}


@pytest.mark.parametrize("case_name", [case.name for case in hc.CASES])
def test_hostile_submission(case_name, graded_pool):
    case = hc.CASES_BY_NAME[case_name]
    if not hc.runnable(case, graded_pool.available):
        pytest.skip(f"needs {case.needs}, which the grader does not get here "
                    "(children run as the grader's user, or no network namespace)")
    problems = hc.evaluate(case, graded_pool.graded[case_name], graded_pool.baseline)
    assert not problems, f"{case.name} ({case.summary}):\n- " + "\n- ".join(problems)


# Another grader's cleanup: its sweep of the unprivileged user's processes must
# wait until no child of that user runs anywhere on the machine.
OTHER_GRADER = """
import sys, time
from pathlib import Path
from autograder.grading.sandbox import Limits, prepare_workdir, run_child, unprivileged_user

time.sleep(0.5)
folder = Path(sys.argv[2])
prepare_workdir(folder, unprivileged_user())
print(run_child([sys.argv[1], "-c", "pass"], folder, Limits(wall_seconds=30)).status)
"""


def test_one_graders_cleanup_spares_another_graders_child(tmp_path):
    if unprivileged_user() is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs root and a system Python")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    prepare_workdir(ours, unprivileged_user())
    probe = run_child([SYSTEM_PYTHON, "-c", "pass"], ours, Limits(wall_seconds=30))
    if probe.status != "ok":
        pytest.skip(f"the unprivileged user cannot run {SYSTEM_PYTHON}: {probe.detail}")
    other = subprocess.Popen([sys.executable, "-c", OTHER_GRADER, SYSTEM_PYTHON, str(theirs)], cwd=REPO_DIR,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = run_child([SYSTEM_PYTHON, "-c", "import time; time.sleep(4); print('survived')"], ours,
                       Limits(wall_seconds=30))
    output, _ = other.communicate(timeout=60)
    assert output.strip().splitlines()[-1] == "ok", output
    assert result.status == "ok", result
    assert "survived" in result.output


# The grader's own test of whether children can run as the unprivileged user,
# with the sandbox under a folder that user may or may not pass through.
SANDBOX_PLACES_PROBE = """
import json, os, tempfile
from pathlib import Path
from autograder.config import GradeConfig
from autograder.grading.grade import Grader

seen = {}
for name, mode in (("private", 0o700), ("passable", 0o711)):
    with tempfile.TemporaryDirectory() as base:
        os.chmod(base, mode)
        sandbox = Path(base) / "sandbox"
        sandbox.mkdir()
        seen[name] = Grader(sandbox, GradeConfig(), lambda line: None, 0.0).run_as
print(json.dumps(seen))
"""


def test_a_sandbox_the_unprivileged_user_cannot_reach_makes_the_grader_fall_back():
    if not hc.platform(PYTHON)["unprivileged"]:
        pytest.skip("children do not run as an unprivileged user here")
    done = subprocess.run([PYTHON, "-c", SANDBOX_PLACES_PROBE], cwd=REPO_DIR, capture_output=True, text=True,
                          check=True, timeout=120)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"private": None, "passable": "auto"}
