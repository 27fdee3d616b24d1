"""The grader's scoring functions on arrays built by hand (no child processes, no TensorFlow)."""

import numpy as np
import pytest

from autograder import checks
from autograder.config import GradeConfig
from autograder.grade import unit_request


@pytest.fixture(scope="module")
def request_():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(600, 28, 28), dtype=np.uint8)
    return unit_request(GradeConfig(), images, rng.integers(0, 10, 600, dtype=np.uint8))


def test_points_total_100_and_keys_are_unique():
    assert checks.TOTAL_POINTS == 100
    assert len(checks.CHECKS_BY_KEY) == len(checks.CHECKS)
    assert set(checks.UNIT_CHECKS) <= set(checks.CHECKS_BY_KEY)


def test_one_hot_check(request_):
    labels = request_["one_hot.labels"]
    good = {"one_hot.output": np.eye(10)[labels]}
    assert checks.check_one_hot(good, request_, "").fraction == 1.0
    shifted = {"one_hot.output": np.eye(10)[(labels + 1) % 10]}
    outcome = checks.check_one_hot(shifted, request_, "")
    assert outcome.fraction == 0.0 and "should be 1 at column" in outcome.feedback
    transposed = {"one_hot.output": np.eye(10)[labels].T}
    assert "Expected shape (37, 10)" in checks.check_one_hot(transposed, request_, "").feedback


def reparam_draws(request_, sigma_of, seed=0):
    rng = np.random.default_rng(seed)
    mu = request_["reparam.mu"].astype(np.float64)
    logvar = request_["reparam.logvar"].astype(np.float64)
    return mu + sigma_of(logvar) * rng.standard_normal(mu.shape)


def test_reparametrize_check_accepts_correct_draws_and_names_common_bugs(request_):
    correct = lambda lv: np.exp(lv / 2)  # noqa: E731
    good = {"reparametrize.first": reparam_draws(request_, correct, 0),
            "reparametrize.second": reparam_draws(request_, correct, 1)}
    assert checks.check_reparametrize(good, request_, "").fraction == 1.0

    same_noise = dict(good, **{"reparametrize.second": good["reparametrize.first"]})
    assert "draw new noise" in checks.check_reparametrize(same_noise, request_, "").feedback

    no_noise = {"reparametrize.first": request_["reparam.mu"], "reparametrize.second": request_["reparam.mu"]}
    assert "no noise" in checks.check_reparametrize(no_noise, request_, "").feedback

    variance_as_std = {"reparametrize.first": reparam_draws(request_, np.exp, 0),
                       "reparametrize.second": reparam_draws(request_, np.exp, 1)}
    outcome = checks.check_reparametrize(variance_as_std, request_, "")
    assert outcome.fraction < 1.0 and "used as the standard deviation" in outcome.feedback


def test_reparametrize_gradient_check(request_):
    mu = request_["grad.mu"].astype(np.float64)
    weights = request_["grad.weights"].astype(np.float64)
    z = mu + np.random.default_rng(0).standard_normal(mu.shape)
    good = {"reparametrize_gradient.z": z, "reparametrize_gradient.grad_mu": weights,
            "reparametrize_gradient.grad_logvar": weights * 0.5 * (z - mu)}
    assert checks.check_reparametrize_gradient(good, request_, "").fraction == 1.0
    detached = dict(good, **{"reparametrize_gradient.grad_logvar": np.zeros_like(mu)})
    outcome = checks.check_reparametrize_gradient(detached, request_, "")
    assert outcome.fraction == 0.5 and "logvar" in outcome.feedback


def batches(request_):
    return [[request_[f"loss.{i}.{name}"].astype(np.float64) for name in ("x_hat", "x", "mu", "logvar")]
            for i in range(int(request_["loss.count"]))]


def test_negative_elbo_matches_a_hand_computation():
    x_hat = np.full((2, 1, 28, 28), 0.5)
    x = np.zeros((2, 1, 28, 28))
    mu = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert checks.negative_elbo(x_hat, x, mu, np.zeros((2, 2))) == pytest.approx(
        (2 * 784 * np.log(2) + 0.5 + 2.0) / 2)


@pytest.mark.parametrize("bug, expected_cause", [
    ("mean_pixels", "mean over pixels"),
    ("no_half", "missing its factor 1/2"),
    ("flipped", "wrong sign"),
    ("sigma_as_variance", "standard deviation is used where the variance belongs"),
    ("no_batch_mean", "not divided by the batch size"),
    ("no_kl", "KL term is missing"),
])
def test_loss_check_names_the_bug(request_, bug, expected_cause):
    def buggy(x_hat, x, mu, logvar):
        bce, kl, n = checks.bce_sum(x_hat, x), checks.kl_sum(mu, logvar), len(x)
        return {
            "mean_pixels": (bce / 784 + kl) / n,
            "no_half": (bce + 2 * kl) / n,
            "flipped": (bce - kl) / n,
            "sigma_as_variance": (bce - 0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar / 2))) / n,
            "no_batch_mean": bce + kl,
            "no_kl": bce / n,
        }[bug]

    values = np.array([buggy(*batch) for batch in batches(request_)])
    outcome = checks.check_loss_function({"loss_function.values": values}, request_, "")
    assert outcome.fraction == 0.0
    assert expected_cause in outcome.feedback
    correct = np.array([checks.negative_elbo(*batch) for batch in batches(request_)])
    assert checks.check_loss_function({"loss_function.values": correct}, request_, "").fraction == 1.0


def test_missing_results_report_the_error_or_how_the_child_ended(request_):
    outcome = checks.check_one_hot({"one_hot.error": "NameError: name 'np' is not defined"}, request_, "")
    assert "NameError" in outcome.feedback and outcome.fraction == 0.0
    outcome = checks.check_one_hot({}, request_, "ran past its 180 s time limit and was stopped")
    assert "time limit" in outcome.feedback


def test_cvae_forward_check_detects_a_decoder_that_ignores_the_label(request_):
    n, latent = len(request_["forward.x"]), int(request_["forward.latent_size"])
    rows = len(request_["forward.z"])
    base = {"cvae_forward.x_hat": np.full((n, 1, 28, 28), 0.5), "cvae_forward.mu": np.zeros((n, latent)),
            "cvae_forward.logvar": np.zeros((n, latent))}
    same = np.repeat(np.random.default_rng(0).uniform(size=(rows, 1, 1, 28, 28)), 10, axis=1)
    ignoring = dict(base, **{"cvae_forward.decoded": same.reshape(rows * 10, 1, 28, 28)})
    outcome = checks.check_cvae_forward(ignoring, request_, "")
    assert 0 < outcome.fraction < 1 and "ignores the label" in outcome.feedback
    varied = np.random.default_rng(1).uniform(size=(rows * 10, 1, 28, 28))
    assert checks.check_cvae_forward(dict(base, **{"cvae_forward.decoded": varied}), request_, "").fraction == 1
    out_of_range = dict(base, **{"cvae_forward.decoded": varied * 3})
    assert "[0, 1]" in checks.check_cvae_forward(out_of_range, request_, "").feedback


def test_generation_check_gates_on_diversity_and_copies():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(500, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 20)
    confident = np.eye(10)[labels]
    novel = rng.uniform(size=(200, 1, 28, 28))
    stats = checks.generation_stats(novel, labels, confident, train)
    assert stats.accuracy == 1.0 and stats.copied_fraction == 0.0
    assert checks.check_cvae_generation(stats, None, 0.9, 0.2).fraction == 1.0

    collapsed = np.repeat(novel[labels == 0][:1], 200, axis=0)
    outcome = checks.check_cvae_generation(checks.generation_stats(collapsed, labels, confident, train),
                                           None, 0.9, 0.2)
    assert outcome.fraction == 0.0 and "ignores z" in outcome.feedback

    copies = train[rng.choice(500, 200)].astype(np.float64)[:, None] / 255.0
    outcome = checks.check_cvae_generation(checks.generation_stats(copies, labels, confident, train),
                                           None, 0.9, 0.2)
    assert outcome.fraction == 0.0 and "copies of training images" in outcome.feedback

    half_right = np.eye(10)[np.where(np.arange(200) % 2 == 0, labels, (labels + 1) % 10)]
    outcome = checks.check_cvae_generation(checks.generation_stats(novel, labels, half_right, train),
                                           None, 0.9, 0.2)
    assert outcome.fraction == pytest.approx((0.5 - 0.2) / 0.7)
