import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The course code lives in hw/code as plain modules, not an installed package.
_CODE_DIR = str(Path(__file__).resolve().parents[1] / "hw" / "code")
if _CODE_DIR not in sys.path:
    sys.path.insert(0, _CODE_DIR)



def pytest_report_header(config):
    from helpers import TEST_SEED

    return f"grades in the tests draw their inputs from seed {TEST_SEED} (replay another: GRADER_TEST_SEED=N)"


@pytest.fixture(scope="session")
def reference_full_grade(graded_pool) -> dict:
    """The reference solution graded once per session with the real default budget: its results.json data.

    It is graded in the pool (``hostile_cases.REFERENCE_FULL``) with the seed the stored reference
    statistics were measured with (``reference_stats.DEFAULT_SEED``), so that the same grade also
    shows whether they are current.
    """
    import hostile_cases as hc

    graded = graded_pool.graded[hc.REFERENCE_FULL.name]
    assert graded.returncode == 0 and graded.results is not None, graded.stderr[-3000:]
    assert graded.results["score"] == json.loads(graded.stdout.strip().splitlines()[-1])["score"]
    return graded.results


@dataclass
class Pool:
    """Every case of ``hostile_cases`` that this session's tests judge, graded once, two at a time."""

    available: dict
    graded: dict
    baseline: dict


@pytest.fixture(scope="session")
def graded_pool(request, tmp_path_factory) -> Pool:
    """The reference and every case selected in this session (any test's ``case_name`` or ``grades``
    marker), graded once.

    One pool for the hostile cases, the usual bugs and the population's cases keeps both workers busy
    until the last grade. Each grade runs the real grader in a process of its own with
    ``GradeConfig.for_tests`` and the session's seed; the reference must earn every check, so a case
    that should keep a check is judged against full marks.
    """
    import hostile_cases as hc
    from helpers import require_mnist_dir

    require_mnist_dir()
    available = hc.platform(hc.PYTHON)
    selected = {item.callspec.params["case_name"] for item in request.session.items
                if hasattr(item, "callspec") and "case_name" in item.callspec.params}
    cases = [hc.REFERENCE] + [case for name, case in hc.CASES_BY_NAME.items()
                              if name in selected and hc.runnable(case, available)]
    # Cases outside the suite's own, which a test asks for with @pytest.mark.grades(case, ...) or, for the
    # reference's full-budget grade, through the reference_full_grade fixture.
    extra = {case.name: case for item in request.session.items for marker in item.iter_markers("grades")
             for case in marker.args}
    if any("reference_full_grade" in item.fixturenames for item in request.session.items):
        extra[hc.REFERENCE_FULL.name] = hc.REFERENCE_FULL
    cases += [case for name, case in extra.items() if name not in selected]
    graded = hc.grade_cases(cases, tmp_path_factory.mktemp("graded"), hc.PYTHON, hc.WORKERS)
    return Pool(available, graded, hc.baseline_scores(graded["reference"]))
