"""The calibration population in CI: every member's unit checks, every mutant's, and a few full grades.

``bench/bench_population.py`` grades the whole population with the real
budget (an hour or more); here every member and mutant goes through the unit
checks (seconds each), and two submissions get a whole grade with the real
budget: the eager-only member (a Python loop, ``.numpy()`` and static shapes in
its loss: the slowest style of the population, which stands for every eager
student), and a submission whose only slip is a decoder that returns flat
images. The other members' full grades (among them one that brings its own
optimizer and prints every batch) are the bench's, to keep CI short.
"""

import json

import pytest

from autograder.checks import CHECKS, CHECKS_BY_KEY, UNIT_CHECKS
from autograder.config import GradeConfig
from autograder.grade import check_units, grade
from helpers import require_mnist_dir
from population import members, mutants, write_submission

pytestmark = pytest.mark.slow

MEMBERS = members()
MUTANTS = mutants()
# The slowest member under the real budget (BENCHMARKS.md): about five minutes on 2 cores.
SLOWEST_MEMBER = "b_numpyloss"


def quiet(_line):
    pass


def test_the_population_is_large_enough():
    assert len(MEMBERS) >= 12 and len(MUTANTS) >= 15
    assert all(mutant.base in MEMBERS for mutant in MUTANTS.values())
    known = {spec.key for spec in CHECKS}
    assert all(set(mutant.checks) <= known and mutant.checks for mutant in MUTANTS.values())


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_every_member_passes_every_unit_check(name, tmp_path):
    require_mnist_dir()
    outcomes = check_units(write_submission(name, tmp_path / name), GradeConfig.for_tests(), log=quiet)
    lost = {key: outcome.feedback for key, outcome in outcomes.items() if outcome.fraction < 1}
    assert not lost, f"{name} ({MEMBERS[name].style}) lost unit points"


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_each_mutant_loses_its_unit_checks_and_keeps_the_others(name, tmp_path):
    require_mnist_dir()
    mutant = MUTANTS[name]
    outcomes = check_units(write_submission(name, tmp_path / name), GradeConfig.for_tests(), log=quiet)
    for key, outcome in outcomes.items():
        if key in mutant.checks:
            assert outcome.fraction < 1, f"{name} ({mutant.bug}) kept the points of {key}"
        else:
            assert outcome.fraction == 1, f"{name} ({mutant.bug}) lost points on {key}: {outcome.feedback}"


def test_the_slowest_member_gets_full_marks_with_the_real_budget(tmp_path):
    require_mnist_dir()
    results = tmp_path / "results.json"
    grade(write_submission(SLOWEST_MEMBER, tmp_path / SLOWEST_MEMBER), results, GradeConfig(), log=quiet)
    data = json.loads(results.read_text())
    lost = {t["name"]: t["output"][:400] for t in data["tests"] if t["score"] < t["max_score"]}
    assert data["score"] == 100, lost


def test_a_flat_decoder_loses_only_the_forward_checks_with_the_real_budget(tmp_path):
    """A decoder that returns (N, 784) costs the forward-pass checks, not training or generation."""
    require_mnist_dir()
    name = "c_flatten_call-flat-decoder"
    results = tmp_path / "results.json"
    grade(write_submission(name, tmp_path / name), results, GradeConfig(), log=quiet)
    tests = {t["name"]: t for t in json.loads(results.read_text())["tests"]}
    for spec in CHECKS:
        test = tests[spec.name]
        if spec.key in ("vae_forward", "cvae_forward"):
            assert test["score"] < test["max_score"] and ", 784)" in test["output"]
        else:
            assert test["score"] == test["max_score"], (spec.key, test["output"][:400])
    assert "reshaped them" in tests[CHECKS_BY_KEY["vae_training"].name]["output"]


def test_unit_checks_cover_every_check_but_training():
    assert set(UNIT_CHECKS) == {spec.key for spec in CHECKS} - {"vae_training", "cvae_generation"}


def test_the_train_vae_probe_bench_separates_the_widest_member_from_a_train_vae_that_never_steps():
    """The small CI part of ``bench/bench_train_vae_probe.py``: the probe's two calls, two seeds."""
    require_mnist_dir()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from bench_train_vae_probe import BAR, run_child

    widest = run_child("a_elu4", seeds=2, rates=[1e-3], calls=2)
    assert len(widest) == 2 and all(row["ratios"][-1] < BAR for row in widest), widest
    never_steps = run_child("b_keras2-no-step", seeds=1, rates=[1e-3], calls=2)
    assert all(abs(ratio - 1) < 0.01 for ratio in never_steps[0]["ratios"]), never_steps
