"""The generation statistics: the interval, per-digit confidence and diversity, and the reference's values."""

import json
import zipfile

import numpy as np
import pytest

from autograder.scoring import checks, reference_stats
from autograder.scoring.reference_stats import REFERENCE_STATS, ReferenceStats, load_reference_stats
from autograder.tools.gradescope import archive_members, build_zip
from helpers import mnist_subset


def test_wilson_interval_matches_published_values():
    # Wilson score intervals at 95%: 10/20 gives 0.2993 to 0.7007, 90/100 gives 0.8256 to 0.9448.
    assert checks.wilson_interval(10, 20) == pytest.approx((0.2993, 0.7007), abs=1e-4)
    assert checks.wilson_interval(90, 100) == pytest.approx((0.8256, 0.9448), abs=1e-4)
    # All right: the upper end is 1 and the lower end n / (n + z^2).
    assert checks.wilson_interval(2000, 2000) == pytest.approx((2000 / (2000 + checks.Z_95**2), 1.0))
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
    assert stats.accuracy_interval == pytest.approx((0.2993, 0.7007), abs=1e-4)
    assert stats.per_digit == [0.5] * 10
    assert stats.per_digit_confidence == pytest.approx([0.6] * 10)
    assert stats.per_digit_diversity == pytest.approx([0.5] * 10)
    assert stats.within_digit_std == pytest.approx(0.5) and stats.real_digit_diversity is None
    plain = json.loads(json.dumps(stats.as_json(), allow_nan=False))
    assert plain["per_digit_confidence"] == pytest.approx([0.6] * 10) and plain["count"] == 20


def test_real_digit_diversity_takes_the_first_test_images_of_each_digit():
    images = np.zeros((40, 28, 28), np.uint8)
    labels = np.repeat(np.arange(10), 4)
    images[1::4] = 255  # of each digit's four images, the first two differ in every pixel
    assert checks.real_digit_diversity(images, labels, [2] * 10) == pytest.approx([0.5] * 10)
    assert checks.real_digit_diversity(images, labels, [1] * 10) == pytest.approx([0.0] * 10)


def made_up_reference(**changes) -> dict:
    data = {"accuracy": 0.97, "accuracy_interval": [0.96, 0.98], "count": 2000, "per_digit_accuracy": [0.97] * 10,
            "per_digit_confidence": [0.95] * 10, "per_digit_diversity": [0.0812] * 10,
            "real_digit_diversity": [0.1534] * 10, "median_nearest_distance": 4.56, "score": 100.0, "seed": 0,
            "date": "2026-01-02", "commit": "abc1234"}
    return {**data, **changes}


def test_feedback_shows_the_reference_beside_the_student_and_omits_it_gracefully():
    stats = hand_made_stats()
    reference = reference_stats.parse_reference_stats(made_up_reference())
    with_reference = checks.check_cvae_generation(stats, None, 0.9, 0.2, reference=reference)
    assert "(95% interval 29.9% to 70.1%); full credit above 90%" in with_reference.feedback
    assert "linear in between. The reference solution: 97.0% (96.0% to 98.0%).</p>" in with_reference.feedback
    assert "(the reference solution: 4.56)" in with_reference.feedback
    assert with_reference.feedback.count("<i>reference solution</i>") == 3
    assert "<td>0.081</td>" in with_reference.feedback and "<td>95%</td>" in with_reference.feedback
    # The stats were measured without test images: the real digits' row comes from the reference.
    assert "diversity of real test digits</td>" + "<td>0.153</td>" * 10 in with_reference.feedback
    without = checks.check_cvae_generation(stats, None, 0.9, 0.2)
    assert "reference solution" not in without.feedback.lower() and "real test digits</td>" not in without.feedback
    assert "(95% interval 29.9% to 70.1%); full credit" in without.feedback
    assert without.fraction == with_reference.fraction == pytest.approx((0.5 - 0.2) / 0.7)
    assert without.extra_data == with_reference.extra_data == {"generation_stats": stats.as_json()}


def test_the_reference_file_round_trips_and_a_bad_one_reads_as_none(tmp_path):
    data = made_up_reference()
    path = reference_stats.write_reference_stats(data, tmp_path / "stats.json")
    assert json.loads(path.read_text()) == data and list(json.loads(path.read_text())) == sorted(data)
    loaded = load_reference_stats(path)
    assert loaded == ReferenceStats(0.97, (0.96, 0.98), [0.97] * 10, [0.95] * 10, [0.0812] * 10, [0.1534] * 10,
                                    4.56, seed=0, date="2026-01-02", commit="abc1234")
    assert not list(tmp_path.glob(".stats.json-*"))
    for text in ("{not json", "[]", json.dumps(made_up_reference(per_digit_confidence=[0.9] * 3)),
                 json.dumps(made_up_reference(accuracy=None)), json.dumps(made_up_reference(accuracy=float("nan")))):
        path.write_text(text)
        assert load_reference_stats(path) is None, text
    assert load_reference_stats(tmp_path / "missing.json") is None


def test_the_stored_reference_came_from_a_full_marks_grade_and_ships_in_the_archive(tmp_path):
    stored = load_reference_stats()
    assert stored is not None, f"{REFERENCE_STATS} is missing: run python -m autograder.tools.measure_reference"
    data = json.loads(REFERENCE_STATS.read_text())
    assert data["score"] == 100 and data["commit"] and data["date"] and data["seed"] == stored.seed == 0
    assert data["count"] == 10 * 200
    assert stored.accuracy > 0.9 and stored.accuracy_interval[0] < stored.accuracy < stored.accuracy_interval[1]
    successes = round(stored.accuracy * data["count"])
    assert stored.accuracy_interval == pytest.approx(checks.wilson_interval(successes, data["count"]), abs=1e-4)
    assert all(0.5 < c <= 1 for c in stored.per_digit_confidence)
    assert all(checks.MIN_WITHIN_DIGIT_STD < d < r for d, r in zip(stored.per_digit_diversity,
                                                                   stored.real_digit_diversity))
    assert stored.median_nearest_distance > checks.COPY_DISTANCE
    assert archive_members()["autograder/reference_stats.json"] == REFERENCE_STATS
    with zipfile.ZipFile(build_zip(tmp_path / "autograder.zip")) as archive:
        assert json.loads(archive.read("autograder/reference_stats.json")) == data


@pytest.mark.slow
def test_the_grade_reads_the_reference_file_when_it_exists_and_grades_without_it(tmp_path, monkeypatch):
    from autograder.config import GradeConfig
    from autograder.grading.grade import GenerationJudge, generation_outcome, load_classifier

    arrays = mnist_subset(num_train=2048, num_test=10_000)
    labels = np.repeat(np.arange(10), 20)
    # Real test digits (the last of each digit, not the first ones the real digits' row uses) stand in for samples.
    samples = np.concatenate([arrays.test_images[arrays.test_labels == d][-20:] for d in range(10)])
    samples = samples.astype(np.float64)[:, None] / 255.0
    classifier = load_classifier()
    judge = GenerationJudge(classifier, labels, 0.93, tmp_path)

    def outcome():
        return generation_outcome({"cvae.samples": samples, "cvae.epoch_seconds": np.ones(2), "done.cvae": 1.0},
                                  {"cvae.sample_labels": labels, "cvae_epochs": np.int64(4)}, "", GradeConfig(),
                                  arrays.train_images, classifier, judge, (arrays.test_images, arrays.test_labels))

    path = reference_stats.write_reference_stats(made_up_reference(), tmp_path / "reference_stats.json")
    monkeypatch.setattr(reference_stats, "REFERENCE_STATS", path)
    shown = outcome()
    assert "The reference solution: 97.0% (96.0% to 98.0%)." in shown.feedback and shown.fraction == 1.0
    stats = shown.extra_data["generation_stats"]
    assert stats["accuracy"] > 0.95 and len(stats["real_digit_diversity"]) == 10
    monkeypatch.setattr(reference_stats, "REFERENCE_STATS", tmp_path / "missing.json")
    omitted = outcome()
    assert "reference solution" not in omitted.feedback.lower() and omitted.fraction == 1.0
    assert "diversity of real test digits" in omitted.feedback and omitted.extra_data == shown.extra_data


@pytest.mark.slow
def test_the_stored_statistics_are_those_of_a_grade_of_the_reference_today(reference_full_grade):
    """The session's full-budget grade of the reference (with the stored seed) measures what the file says.

    A change to the reference, its training or the grader's defaults that moves the statistics makes the
    file stale: run ``python -m autograder.tools.measure_reference``. The margins are those of 200 samples per
    digit and of the grader's own arithmetic on another machine, not of a changed model.
    """
    stored = load_reference_stats()
    assert stored is not None and stored.seed == reference_stats.DEFAULT_SEED
    measured = reference_stats.parse_reference_stats(
        {**reference_stats.generation_stats_of(reference_full_grade), "seed": stored.seed})
    advice = "the stored reference statistics are stale: run python -m autograder.tools.measure_reference"
    assert measured.accuracy == pytest.approx(stored.accuracy, abs=0.01), advice
    assert measured.per_digit_accuracy == pytest.approx(stored.per_digit_accuracy, abs=0.03), advice
    assert measured.per_digit_confidence == pytest.approx(stored.per_digit_confidence, abs=0.03), advice
    assert measured.per_digit_diversity == pytest.approx(stored.per_digit_diversity, abs=0.005), advice
    assert measured.median_nearest_distance == pytest.approx(stored.median_nearest_distance, abs=0.1), advice


def test_the_stored_real_digits_are_those_the_grade_measures():
    stored = load_reference_stats()
    assert stored is not None
    arrays = mnist_subset(num_train=1, num_test=10_000)
    measured = checks.real_digit_diversity(arrays.test_images, arrays.test_labels, [200] * 10)
    assert stored.real_digit_diversity == pytest.approx(measured, abs=1e-4)


@pytest.mark.slow
def test_samples_that_ignore_the_label_score_near_chance_with_low_confidence():
    """A decoder that ignores its label: real test 3s requested as every digit, scored by the real classifier.

    Beside it, the stored reference (a real grade of the reference solution) is confident on every digit.
    """
    from autograder.grading.grade import load_classifier

    arrays = mnist_subset(num_train=2048, num_test=10_000)
    threes = arrays.test_images[arrays.test_labels == 3][-200:].astype(np.float64)[:, None] / 255.0
    samples = np.concatenate([threes] * 10)
    labels = np.repeat(np.arange(10), 200)
    probabilities = load_classifier().probabilities(samples)
    stats = checks.generation_stats(samples, labels, probabilities, arrays.train_images,
                                    test_images=arrays.test_images, test_labels=arrays.test_labels)
    assert 0.08 < stats.accuracy < 0.12 and stats.accuracy_interval[1] < 0.15
    assert stats.per_digit[3] > 0.95 and max(stats.per_digit[:3] + stats.per_digit[4:]) < 0.05
    assert stats.per_digit_confidence[3] > 0.9 and max(np.delete(stats.per_digit_confidence, 3)) < 0.1
    # Real digits vary more than the reference's smooth samples (measured: 0.07 for the ones, 0.14 to 0.17 else).
    assert all(0.05 < d < 0.25 for d in stats.real_digit_diversity)
    reference = load_reference_stats()
    assert reference is not None
    assert min(reference.per_digit_confidence) > 0.9 > 0.1 > max(np.delete(stats.per_digit_confidence, 3))
    assert reference.accuracy_interval[0] > 0.9 > 0.15 > stats.accuracy_interval[1]
    outcome = checks.check_cvae_generation(stats, None, 0.9, 0.2, reference=reference)
    assert outcome.fraction == 0.0 and "the worst digit" in outcome.feedback
    assert f"The reference solution: {reference.accuracy:.1%}" in outcome.feedback
