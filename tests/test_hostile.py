"""Hostile and broken submissions: the grader keeps working and cannot be fooled.

The cases live in ``hostile_cases.py``, shared with ``bench/bench_hostile.py``.
Every selected case is graded once, two at a time (``HOSTILE_WORKERS``), by
the real grader in a process of its own with ``GradeConfig.for_tests()``, next
to the reference solution (whose scores are what unaffected checks must keep);
each test then judges one case. Cases that need children to run as an
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
from dataclasses import dataclass

import pytest

import hostile_cases as hc
from autograder.checks import CHECKS
from autograder.sandbox import Limits, prepare_workdir, run_child, unprivileged_user
from helpers import REPO_DIR, require_mnist_dir

pytestmark = pytest.mark.slow

PYTHON = os.environ.get("AUTOGRADER_TEST_PYTHON", sys.executable)
WORKERS = int(os.environ.get("HOSTILE_WORKERS", "2"))
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Suite:
    available: dict[str, bool]
    graded: dict[str, hc.Graded]
    baseline: dict[str, float]


@pytest.fixture(scope="session")
def suite(request, tmp_path_factory) -> Suite:
    """The reference and every case selected in this session, graded once."""
    require_mnist_dir()
    available = hc.platform(PYTHON)
    selected = {item.callspec.params["case_name"] for item in request.session.items
                if hasattr(item, "callspec") and "case_name" in item.callspec.params}
    cases = [hc.REFERENCE] + [case for case in hc.CASES if case.name in selected and hc.runnable(case, available)]
    graded = hc.grade_cases(cases, tmp_path_factory.mktemp("hostile"), PYTHON, WORKERS)
    return Suite(available, graded, hc.baseline_scores(graded["reference"]))


def test_the_cases_cover_every_kind_of_attack():
    names = [case.name for case in hc.CASES]
    assert len(set(names)) == len(names) >= 25
    groups = {case.group for case in hc.CASES}
    assert groups == {"broken", "runaway", "escaping", "gaming"}
    for case in hc.CASES:
        assert set(case.lost) <= set(hc.ALL_CHECKS) and case.unchecked <= set(hc.ALL_CHECKS), case.name
        assert all(words for words in case.lost.values()), f"{case.name}: every lost check names its feedback"


def test_the_reference_keeps_every_unit_check(suite):
    graded = suite.graded["reference"]
    assert graded.returncode == 0, graded.stderr[-2000:]
    assert hc.evaluate(hc.REFERENCE, graded, suite.baseline) == []
    by_key = {spec.key: spec for spec in CHECKS}
    for key in hc.UNIT_KEYS:
        assert suite.baseline[key] == by_key[key].points, key


@pytest.mark.parametrize("case_name", [case.name for case in hc.CASES])
def test_hostile_submission(case_name, suite):
    case = hc.CASES_BY_NAME[case_name]
    if not hc.runnable(case, suite.available):
        pytest.skip(f"needs {case.needs}, which the grader does not get here "
                    "(children run as the grader's user, or no network namespace)")
    problems = hc.evaluate(case, suite.graded[case_name], suite.baseline)
    assert not problems, f"{case.name} ({case.summary}):\n- " + "\n- ".join(problems)


# Another grader's cleanup: its sweep of the unprivileged user's processes must
# wait until no child of that user runs anywhere on the machine.
OTHER_GRADER = """
import sys, time
from pathlib import Path
from autograder.sandbox import Limits, prepare_workdir, run_child, unprivileged_user

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
from autograder.grade import Grader

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
