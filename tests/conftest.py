import os
import shutil
import sys
import tempfile
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

    It is graded in the pool (``hostile_cases.REFERENCE_FULL``) as Gradescope grades, by the built zip's
    ``run_autograder`` in an /autograder layout, with the seed the stored reference statistics were
    measured with (``reference_stats.DEFAULT_SEED``), so that the same grade also shows whether they
    are current.
    """
    import hostile_cases as hc

    graded = graded_pool.graded[hc.REFERENCE_FULL.name]
    assert graded.returncode == 0 and graded.results is not None, graded.stderr[-3000:]
    return graded.results


@dataclass
class Pool:
    """Every case of ``hostile_cases`` that this session's tests judge, graded once."""

    available: dict
    graded: dict
    baseline: dict


@dataclass
class _PoolGrading:
    available: dict
    grading: object  # hostile_cases.Grading
    work: Path


_POOL_FIXTURES = frozenset({"graded_pool", "reference_full_grade"})
_pool_grading = pytest.StashKey[_PoolGrading]()


def _reads_pool(item) -> bool:
    return bool(_POOL_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The tests that read the pool's grades run after the others: the pool grades beside those first. The
    tests marked ``after_pool`` run last, once every grade is done: RLIMIT_NPROC counts all of the
    unprivileged user's processes, which the pool's children change while they run."""
    def order(item) -> int:
        return 2 if item.get_closest_marker("after_pool") else 1 if _reads_pool(item) else 0

    items[:] = sorted(items, key=order)


def pytest_collection_finish(session):
    """Start grading the pool now, one case at a time while the other tests use the other core."""
    if session.config.option.collectonly or not os.environ.get("MNIST_DATA_DIR"):
        return
    if any(_reads_pool(item) for item in session.items):
        session.config.stash[_pool_grading] = _start_pool(session.items)


def pytest_sessionfinish(session):
    pool = session.config.stash.get(_pool_grading, None)
    if pool is not None:
        pool.grading.cancel()  # a no-op once graded; else (an interrupted session) stops the graders
        shutil.rmtree(pool.work, ignore_errors=True)


def _start_pool(items) -> _PoolGrading:
    """Grade the reference and every case that ``items`` judge (any test's ``case_name`` or ``grades``
    marker, and the reference's full-budget grade when ``reference_full_grade`` is used).

    One pool for the hostile cases, the usual bugs and the population's cases keeps both workers busy
    until the last grade. Each grade runs the real grader in a process of its own with
    ``GradeConfig.for_tests`` and the session's seed; the reference must earn every check, so a case
    that should keep a check is judged against full marks.
    """
    import hostile_cases as hc

    available = hc.platform(hc.PYTHON)
    selected = {item.callspec.params["case_name"] for item in items
                if hasattr(item, "callspec") and "case_name" in item.callspec.params}
    cases = [hc.REFERENCE] + [case for name, case in hc.CASES_BY_NAME.items()
                              if name in selected and hc.runnable(case, available)]
    extra = {case.name: case for item in items for marker in item.iter_markers("grades") for case in marker.args}
    if any("reference_full_grade" in item.fixturenames for item in items):
        extra[hc.REFERENCE_FULL.name] = hc.REFERENCE_FULL
    cases += [case for name, case in extra.items() if name not in selected]
    work = Path(tempfile.mkdtemp(prefix="graded-"))
    return _PoolGrading(available, hc.Grading(cases, work, hc.PYTHON, hc.WORKERS), work)


@pytest.fixture(scope="session")
def graded_pool(request) -> Pool:
    """The pool's grades (started when the session's tests were collected), once every case is graded."""
    import hostile_cases as hc
    from helpers import require_mnist_dir

    require_mnist_dir()
    pool = request.config.stash.get(_pool_grading, None)
    if pool is None:  # requested by a test that collection did not see use it
        pool = request.config.stash[_pool_grading] = _start_pool(request.session.items)
    graded = pool.grading.result()
    return Pool(pool.available, graded, hc.baseline_scores(graded["reference"]))
