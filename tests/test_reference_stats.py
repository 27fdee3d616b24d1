"""The generation statistics: the interval, per-digit confidence and diversity, and the reference's values."""

import json

import numpy as np
import pytest

from autograder import checks, reference_stats
from autograder.gradescope import archive_members
from autograder.reference_stats import REFERENCE_STATS, ReferenceStats, load_reference_stats
from helpers import mnist_subset


def test_wilson_interval_matches_a_hand_computation():
    low, high = checks.wilson_interval(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-4) and high == pytest.approx(0.9448, abs=1e-4)
    # 2,000 samples at 90%: the interval is about 2.6 points wide.
    low, high = checks.wilson_interval(1800, 2000)
    assert 0.02 < high - low < 0.03
    assert checks.wilson_interval(0, 0) == (0.0, 1.0)


def hand_made_stats():
    """Two samples per digit; the classifier gives the requested digit 0.8 on one and 0.4 on the other."""
    labels = np.repeat(np.arange(10), 2)
    probabilities = np.full((20, 10), 0.0)
    for index, digit in enumerate(labels):
        share = 0.8 if index % 2 == 0 else 0.4
        probabilities[index, digit] = share
        probabilities[index, (digit + 1) % 10] = 1 - share
    samples = np.zeros((20, 1, 28, 28))
    samples[1::2] = 1.0  # the two samples of a digit differ in every pixel: std 0.5 everywhere
    train = np.random.default_rng(0).integers(0, 256, size=(256, 28, 28), dtype=np.uint8)
    return checks.generation_stats(samples, labels, probabilities, train)


def test_statistics_of_a_hand_made_case():
    stats = hand_made_stats()
    assert stats.accuracy == pytest.approx(0.5)
    assert stats.per_digit == [0.5] * 10
    assert stats.per_digit_confidence == pytest.approx([0.6] * 10)
    assert stats.per_digit_diversity == pytest.approx([0.5] * 10)
    assert stats.accuracy_interval == checks.wilson_interval(10, 20)
    assert json.loads(json.dumps(stats.as_json()))["per_digit_confidence"] == pytest.approx([0.6] * 10)


def test_feedback_shows_the_reference_beside_the_student_and_omits_it_gracefully(tmp_path):
    stats = hand_made_stats()
    reference = ReferenceStats(accuracy=0.97, accuracy_interval=(0.96, 0.98), per_digit_accuracy=[0.97] * 10,
                               per_digit_confidence=[0.95] * 10, per_digit_diversity=[0.2] * 10,
                               median_nearest_distance=4.56)
    with_reference = checks.check_cvae_generation(stats, None, 0.9, 0.2, reference=reference)
    assert "the reference solution: 97.0% (96.0% to 98.0%)" in with_reference.feedback
    assert "(the reference solution: 4.56)" in with_reference.feedback
    low, high = checks.wilson_interval(10, 20)
    assert f"95% interval {low:.1%} to {high:.1%}" in checks.check_cvae_generation(stats, None, 0.9, 0.2).feedback
    without = checks.check_cvae_generation(stats, None, 0.9, 0.2, reference=None)
    assert "reference solution" not in without.feedback and without.fraction == with_reference.fraction
    assert without.extra_data["generation_stats"]["accuracy"] == pytest.approx(0.5)
    broken = tmp_path / "reference_stats.json"
    broken.write_text("{not json")
    assert load_reference_stats(broken) is None and load_reference_stats(tmp_path / "missing.json") is None


def test_the_stored_reference_came_from_a_full_marks_grade_and_ships_in_the_archive():
    stored = load_reference_stats()
    assert stored is not None, f"{REFERENCE_STATS} is missing: run python -m autograder.reference_stats"
    data = json.loads(REFERENCE_STATS.read_text())
    assert data["score"] == 100 and data["commit"]
    assert stored.accuracy > 0.9 and stored.accuracy_interval[0] < stored.accuracy < stored.accuracy_interval[1]
    assert len(stored.per_digit_confidence) == 10 and all(0 < c <= 1 for c in stored.per_digit_confidence)
    assert all(d > 0.02 for d in stored.per_digit_diversity)
    assert "autograder/reference_stats.json" in archive_members()
    assert reference_stats.generation_stats_of({"tests": [{"name": "CVAE generation",
                                                           "extra_data": {"generation_stats": data}}]}) == data


@pytest.mark.slow
def test_samples_that_ignore_the_label_score_near_chance_with_low_confidence():
    """A decoder that ignores its label: real test 3s requested as every digit, scored by the real classifier."""
    from autograder.grade import load_classifier

    arrays = mnist_subset(num_train=2048, num_test=10_000)
    threes = arrays.test_images[arrays.test_labels == 3][:200].astype(np.float32)[:, None] / 255.0
    samples = np.concatenate([threes] * 10)
    labels = np.repeat(np.arange(10), 200)
    probabilities = load_classifier().probabilities(samples)
    stats = checks.generation_stats(samples, labels, probabilities, arrays.train_images,
                                    test_images=arrays.test_images, test_labels=arrays.test_labels)
    assert 0.08 < stats.accuracy < 0.12 and stats.accuracy_interval[1] < 0.15
    assert stats.per_digit[3] > 0.95 and max(stats.per_digit[:3] + stats.per_digit[4:]) < 0.05
    assert stats.per_digit_confidence[3] > 0.9 and max(np.delete(stats.per_digit_confidence, 3)) < 0.1
    # Real test digits vary as much as these real threes do (measured: 0.07 for the ones, 0.14-0.17 others).
    assert all(0.05 < d < 0.25 for d in stats.real_digit_diversity)
    assert stats.per_digit_diversity[0] == pytest.approx(stats.real_digit_diversity[3])
    outcome = checks.check_cvae_generation(stats, None, 0.9, 0.2, reference=load_reference_stats())
    assert outcome.fraction == 0.0 and "the worst digit" in outcome.feedback
