"""The calibration population in CI: every member's unit checks, every mutant's, and the whole grades that matter.

``bench/bench_population.py`` grades the whole population with the real
budget (an hour or more); here, with the tests' budget, a whole grade goes to
the eager-only member (a Python loop, ``.numpy()`` and static shapes in its
loss: the slowest style of the population), to the slip of a decoder that
returns flat images, and to every mutant whose bug reaches a training check
(``hostile_cases.POPULATION``), and every other member and mutant goes through
the unit checks (seconds each).
"""

from concurrent.futures import ThreadPoolExecutor

import pytest

import hostile_cases as hc
from autograder.grading.grade import check_units
from autograder.scoring.checks import CHECKS, CHECKS_BY_KEY, UNIT_CHECKS
from helpers import require_mnist_dir, tiny_config
from population import members, mutants, write_submission

pytestmark = pytest.mark.slow

MEMBERS = members()
MUTANTS = mutants()
# Members and mutants graded whole in the pool: that grade judges their unit checks too.
GRADED_WHOLE = frozenset(case.name for case in hc.POPULATION)


def quiet(_line):
    pass


def test_the_population_is_large_enough():
    assert len(MEMBERS) >= 12 and len(MUTANTS) >= 15
    assert all(mutant.base in MEMBERS for mutant in MUTANTS.values())
    known = {spec.key for spec in CHECKS}
    assert all(set(mutant.checks) <= known and mutant.checks for mutant in MUTANTS.values())


@pytest.fixture(scope="module")
def unit_outcomes(request, tmp_path_factory) -> dict:
    """The unit checks of every member and mutant this module's tests name, two submissions at a time."""
    require_mnist_dir()
    names = sorted({item.callspec.params["name"] for item in request.session.items
                    if item.module is request.module and hasattr(item, "callspec") and "name" in item.callspec.params})
    work = tmp_path_factory.mktemp("units")

    def units(name: str):
        return name, check_units(write_submission(name, work / name), tiny_config(), log=quiet)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(units, names))


@pytest.mark.parametrize("name", sorted(set(MEMBERS) - GRADED_WHOLE))
def test_every_member_passes_every_unit_check(name, unit_outcomes):
    outcomes = unit_outcomes[name]
    lost = {key: outcome.feedback for key, outcome in outcomes.items() if outcome.fraction < 1}
    assert not lost, f"{name} ({MEMBERS[name].style}) lost unit points"


@pytest.mark.parametrize("name", sorted(set(MUTANTS) - GRADED_WHOLE))
def test_each_mutant_loses_its_unit_checks_and_keeps_the_others(name, unit_outcomes):
    mutant = MUTANTS[name]
    outcomes = unit_outcomes[name]
    for key, outcome in outcomes.items():
        if key in mutant.checks:
            assert outcome.fraction < 1, f"{name} ({mutant.bug}) kept the points of {key}"
        else:
            assert outcome.fraction == 1, f"{name} ({mutant.bug}) lost points on {key}: {outcome.feedback}"


@pytest.mark.parametrize("case_name", [case.name for case in hc.POPULATION])
def test_graded_whole_each_loses_the_points_of_its_bug_and_no_others(case_name, graded_pool):
    """The slowest member, the flat-decoder slip and every mutant whose bug reaches training, graded whole.

    Graded with the tests' budget in the session's pool (``conftest.graded_pool``) and judged as the
    hostile cases are: the checks of the bug lose points, every other check keeps full marks.
    """
    case = hc.CASES_BY_NAME[case_name]
    graded = graded_pool.graded[case_name]
    problems = hc.evaluate(case, graded, graded_pool.baseline)
    assert not problems, f"{case.name} ({case.summary}):\n- " + "\n- ".join(problems)
    if case_name == hc.FLAT_DECODER:
        tests = {test["name"]: test for test in graded.results["tests"]}
        assert "reshaped them" in tests[CHECKS_BY_KEY["vae_training"].name]["output"]


def test_every_member_and_mutant_is_judged_on_every_unit_check():
    """By the unit checks alone, or by the whole grade, which expects each unit check of the bug to lose
    points and every other one to keep the reference's full marks."""
    unit_judged = {item for test in (test_every_member_passes_every_unit_check,
                                     test_each_mutant_loses_its_unit_checks_and_keeps_the_others)
                   for mark in test.pytestmark if mark.name == "parametrize" for item in mark.args[1]}
    assert unit_judged | GRADED_WHOLE == set(MEMBERS) | set(MUTANTS)
    for case in hc.POPULATION:
        assert not case.unchecked & set(UNIT_CHECKS), case.name
        mutant = MUTANTS.get(case.name)
        assert set(case.lost) == (set(mutant.checks) - case.unchecked if mutant else set()), case.name


def test_the_whole_grades_cover_every_mutant_whose_training_the_tests_budget_decides():
    """A mutant whose bug reaches training is graded whole, unless the tests' budget decides none of its
    training checks (the bench judges those with the real budget; its unit checks are judged above)."""
    graded = {case.name for case in hc.POPULATION}
    reaching = {name for name, mutant in MUTANTS.items() if hc.TRAINED_MODEL_KEYS & set(mutant.checks)}
    undecided = {name for name in reaching if not hc.decides_training(hc.population_case(name))}
    assert reaching - undecided <= graded and len(reaching) >= 8 and len(undecided) <= 2
    assert set(hc.TESTS_BUDGET_UNDECIDED) <= reaching | set(MEMBERS)
    assert all(keys <= hc.TRAINED_MODEL_KEYS for keys in hc.TESTS_BUDGET_UNDECIDED.values())


def test_unit_checks_cover_every_check_but_training():
    assert set(UNIT_CHECKS) == {spec.key for spec in CHECKS} - {"vae_training", "cvae_generation"}


def test_the_train_vae_probe_bench_separates_the_widest_member_from_a_train_vae_that_never_steps():
    """The small CI part of ``bench/bench_train_vae_probe.py``: the probe's two calls, two seeds."""
    require_mnist_dir()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_train_vae_probe import BAR, lowered, run_child

    widest = run_child("a_elu4", seeds=2, rates=[1e-3], calls=2)
    assert len(widest) == 2 and all(row["ratios"][-1] < BAR for row in widest), widest
    assert all(lowered(row["ratios"][-1], row["trusted"]) for row in widest), widest
    never_steps = run_child("b_keras2-no-step", seeds=1, rates=[1e-3], calls=2)
    assert all(abs(ratio - 1) < 0.01 for ratio in never_steps[0]["ratios"]), never_steps
    # The contract's own step trains the same member's copy, which does not excuse its train_vae.
    assert never_steps[0]["trusted"] < BAR and not lowered(never_steps[0]["ratios"][-1], never_steps[0]["trusted"])
