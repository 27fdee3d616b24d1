"""The grader's scoring functions on arrays built by hand (no child processes, no TensorFlow)."""

import numpy as np
import pytest

from autograder.config import GradeConfig
from autograder.grading.grade import unit_request
from autograder.scoring import checks


@pytest.fixture(scope="module")
def request_():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(600, 28, 28), dtype=np.uint8)
    request = unit_request(1234, images, rng.integers(0, 10, 600, dtype=np.uint8))
    return {**request, **checks.expected_values(request)}


def test_points_total_100_and_keys_are_unique():
    assert checks.TOTAL_POINTS == 100
    assert len(checks.CHECKS_BY_KEY) == len(checks.CHECKS)
    # The seven unit checks, in the order of the handout's table; the two training checks are scored apart.
    assert list(checks.UNIT_CHECKS) == ["one_hot", "reparametrize", "reparametrize_gradient", "loss_function",
                                        "vae_forward", "cvae_forward", "train_vae"]


def test_every_registered_probe_has_its_check_and_points_and_nothing_else_does(monkeypatch):
    from autograder.children.harness import PROBES

    assert {key: check.__name__ for key, check in checks.UNIT_CHECKS.items()} == \
        {key: f"check_{key}" for key in PROBES}
    monkeypatch.setitem(PROBES, "decoder_range", (lambda vae, request: {}, ("vae",)))
    with pytest.raises(ImportError, match=r"\['decoder_range'\].*check_<name>"):
        checks.unit_checks()


def test_probes_are_run_again_alone_unless_the_same_step_would_stop_them_again():
    done = {f"done.{probe}": 1 for probe in ("one_hot", "reparametrize")}
    # The combined run hung in loss_function: the probes it never reached run again, each alone.
    hung = {**done, "started.loss_function": 1}
    assert checks.probes_to_run_alone(hung) == ["reparametrize_gradient", "vae_forward", "cvae_forward", "train_vae"]
    # vae.py raised on import: every probe that imports it would raise the same again.
    failed_import = {"started.import_assignment": 1, "done.import_assignment": 1,
                     "started.import_vae": 1, "done.import_vae": 1, "import_vae.error": "SyntaxError"}
    assert checks.probes_to_run_alone(failed_import) == ["one_hot"]
    assert checks.probes_to_run_alone({**failed_import, "import_assignment.error": "SyntaxError"}) == []


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
    assert outcome.fraction == 0.5 and "d z / d logvar should be (z - mu) / 2" in outcome.feedback
    cut = dict(detached, **{"reparametrize_gradient.missing_logvar": np.array(1.0),
                            "reparametrize_gradient.missing_mu": np.array(0.0)})
    outcome = checks.check_reparametrize_gradient(cut, request_, "")
    assert outcome.fraction == 0.5 and "no gradient reaches logvar: tape.gradient returned None" in outcome.feedback
    returns_mu = {"reparametrize_gradient.z": mu, "reparametrize_gradient.grad_mu": weights,
                  "reparametrize_gradient.grad_logvar": np.zeros_like(mu),
                  "reparametrize_gradient.missing_logvar": np.array(1.0)}
    outcome = checks.check_reparametrize_gradient(returns_mu, request_, "")
    assert outcome.fraction == 0.5 and "no gradient reaches logvar" in outcome.feedback
    sigma_as_variance = dict(good, **{"reparametrize_gradient.grad_logvar": weights * (z - mu)})
    outcome = checks.check_reparametrize_gradient(sigma_as_variance, request_, "")
    assert "sigma is exp(logvar) where it should be exp(logvar / 2)" in outcome.feedback


def batches(request_):
    return [[request_[f"loss.{i}.{name}"].astype(np.float64) for name in ("x_hat", "x", "mu", "logvar")]
            for i in range(int(request_["loss.count"]))]


# The tests compare the grader's formulas with these, written out here rather than read from checks.py.
CLIP = 1e-7


def hand_bce(x_hat, x):
    """Binary cross-entropy summed over everything, probabilities clipped to [1e-7, 1 - 1e-7] as the grader does."""
    p = np.clip(np.asarray(x_hat, np.float64), CLIP, 1 - CLIP)
    x = np.asarray(x, np.float64)
    return float(-np.sum(x * np.log(p) + (1 - x) * np.log1p(-p)))


def hand_kl(mu, logvar):
    """Sum of KL(N(mu, sigma^2) || N(0, 1)) = log(1 / sigma) + (sigma^2 + mu^2 - 1) / 2, sigma = exp(logvar / 2)."""
    sigma = np.exp(np.asarray(logvar, np.float64) / 2)
    mu = np.asarray(mu, np.float64)
    return float(np.sum(np.log(1 / sigma) + (sigma**2 + mu**2 - 1) / 2))


def hand_negative_elbo(x_hat, x, mu, logvar):
    return (hand_bce(x_hat, x) + hand_kl(mu, logvar)) / len(x)


def test_negative_elbo_matches_a_hand_computation():
    x_hat = np.full((2, 1, 28, 28), 0.5)
    x = np.zeros((2, 1, 28, 28))
    mu = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert checks.negative_elbo(x_hat, x, mu, np.zeros((2, 2))) == pytest.approx(
        (2 * 784 * np.log(2) + 0.5 + 2.0) / 2)
    # Saturated probabilities: a wrong 0 or 1 costs -log(1e-7) = 7 log(10) nats, a right one about 1e-7.
    x_hat = np.array([[[[0.0, 1.0], [0.25, 1.0]]]])
    x = np.array([[[[1.0, 0.0], [1.0, 1.0]]]])
    mu, logvar = np.array([[0.5]]), np.array([[np.log(2.0)]])
    kl = 0.5 * (2.0 + 0.25 - 1.0 - np.log(2.0))
    assert checks.negative_elbo(x_hat, x, mu, logvar) == pytest.approx(
        2 * 7 * np.log(10) + np.log(4) + 1e-7 + kl, rel=1e-9)


@pytest.mark.parametrize("bug, expected_cause", [
    ("mean_pixels", "mean over pixels"),
    ("no_half", "missing its factor 1/2"),
    ("flipped", "wrong sign"),
    ("sigma_as_variance", "standard deviation is used where the variance belongs"),
    ("no_batch_mean", "not divided by the batch size"),
    ("no_kl", "KL term is missing"),
    ("mu_sign", "mu**2 has the wrong sign"),
    ("variance_sign", "exp(logvar) has the wrong sign"),
    ("logvar_sign", "logvar has the wrong sign"),
])
def test_loss_check_names_the_bug(request_, bug, expected_cause):
    def buggy(x_hat, x, mu, logvar):
        bce, kl, n = hand_bce(x_hat, x), hand_kl(mu, logvar), len(x)
        return {
            "mean_pixels": (bce / 784 + kl) / n,
            "no_half": (bce + 2 * kl) / n,
            "flipped": (bce - kl) / n,
            "sigma_as_variance": (bce - 0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar / 2))) / n,
            "no_batch_mean": bce + kl,
            "no_kl": bce / n,
            "mu_sign": (bce - 0.5 * np.sum(1 + logvar + mu**2 - np.exp(logvar))) / n,
            "variance_sign": (bce - 0.5 * np.sum(1 + logvar - mu**2 + np.exp(logvar))) / n,
            "logvar_sign": (bce - 0.5 * np.sum(1 - logvar - mu**2 - np.exp(logvar))) / n,
        }[bug]

    values = np.array([buggy(*batch) for batch in batches(request_)])
    outcome = checks.check_loss_function({"loss_function.values": values}, request_, "")
    assert outcome.fraction == 0.0
    assert expected_cause in outcome.feedback
    correct = np.array([hand_negative_elbo(*batch) for batch in batches(request_)])
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


def test_a_slip_in_one_output_costs_that_outputs_share_of_the_forward_checks(request_):
    """A decoder that returns flat (N, 784) images, with call() reshaping x_hat right, loses the decoder's
    share (a fifth) of each forward check; one that also ignores the label loses that part as well."""
    n, latent = len(request_["forward.x"]), int(request_["forward.latent_size"])
    rows = len(request_["forward.z"])
    rng = np.random.default_rng(2)

    def outputs(probe, decoded_rows, decoded):
        return {f"{probe}.x_hat": rng.uniform(size=(n, 1, 28, 28)), f"{probe}.mu": np.zeros((n, latent)),
                f"{probe}.logvar": np.zeros((n, latent)), f"{probe}.decoded": decoded.reshape(decoded_rows, 784)}

    flat_vae = checks.check_vae_forward(outputs("vae_forward", rows, rng.uniform(size=(rows, 784))), request_, "")
    assert flat_vae.fraction == pytest.approx(0.8) and f"({rows}, 784)" in flat_vae.feedback
    varied = rng.uniform(size=(rows * 10, 784))
    flat_cvae = checks.check_cvae_forward(outputs("cvae_forward", rows * 10, varied), request_, "")
    assert flat_cvae.fraction == pytest.approx(0.8) and "ignores the label" not in flat_cvae.feedback
    same = np.repeat(rng.uniform(size=(rows, 1, 784)), 10, axis=1)
    both = checks.check_cvae_forward(outputs("cvae_forward", rows * 10, same), request_, "")
    assert both.fraction == pytest.approx(0.8 * 0.6) and f"({rows * 10}, 784)" in both.feedback
    assert "ignores the label" in both.feedback
    # An x_hat outside [0, 1] (no sigmoid) costs x_hat's share; a decoder with the same output, its own too.
    raw = outputs("vae_forward", rows, rng.uniform(size=(rows, 784)) * 3)
    raw["vae_forward.x_hat"] = raw["vae_forward.x_hat"] * 3
    assert checks.check_vae_forward(raw, request_, "").fraction == pytest.approx(0.4)


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
    assert outcome.fraction == 0.0 and "barely depends on z" in outcome.feedback

    copies = train[rng.choice(500, 200)].astype(np.float64)[:, None] / 255.0
    outcome = checks.check_cvae_generation(checks.generation_stats(copies, labels, confident, train),
                                           None, 0.9, 0.2)
    assert outcome.fraction == 0.0 and "copies of training images" in outcome.feedback

    half_right = np.eye(10)[np.where(np.arange(200) % 2 == 0, labels, (labels + 1) % 10)]
    outcome = checks.check_cvae_generation(checks.generation_stats(novel, labels, half_right, train),
                                           None, 0.9, 0.2)
    assert outcome.fraction == pytest.approx((0.5 - 0.2) / 0.7)


# The training checks: every way a training run can end, and the notes that cost no points.


def child(detail="ended with exit status 0 before it finished"):
    """How the training child ended, as the grader words it for the feedback."""
    return detail


def training_request(images):
    return {"eval.images": images, "eval.labels": np.zeros(len(images), np.int64), "vae_epochs": np.int64(6),
            "vae.stop_below": np.float64(118.0), "eval.stop_count": np.int64(2000)}


def trained(images, x_hat, epochs_losses, prefix="vae", finished=True, steps=128.0, decoded_shape=None):
    """The arrays a training child leaves after ``len(epochs_losses)`` epochs."""
    n = len(images)
    result = {f"started.{prefix}": 1.0, f"{prefix}.mu": np.zeros((n, 4)), f"{prefix}.logvar": np.zeros((n, 4)),
              f"{prefix}.x_hat": x_hat, f"{prefix}.metric": np.array(epochs_losses),
              f"{prefix}.returned": np.array(epochs_losses) * 469, f"{prefix}.epoch_seconds":
              np.full(len(epochs_losses), 30.0), f"{prefix}.grader_steps": np.full(len(epochs_losses), steps),
              f"{prefix}.decoded_shape": np.array(decoded_shape or (n, 1, 28, 28), dtype=np.float64)}
    if finished:
        result[f"done.{prefix}"] = 1.0
    return result


@pytest.fixture(scope="module")
def binary_images():
    return (np.random.default_rng(0).uniform(size=(50, 28, 28)) > 0.5).astype(np.uint8) * 255


def test_vae_training_passes_and_says_when_it_stopped(binary_images):
    x_hat = binary_images[:, None] / 255.0
    request = training_request(binary_images)
    outcome = checks.check_vae_training(trained(binary_images, x_hat, [130.0, 117.0]), request, child(),
                                        GradeConfig())
    assert outcome.fraction == 1.0
    assert "trained 2 epochs." in outcome.feedback
    assert "stopped once its loss on the 2000 test images of its stop set was below 118 (the bar less a margin)" \
        in outcome.feedback
    assert "After each epoch: 130.0, 117.0" in outcome.feedback
    assert "Note" not in outcome.feedback


def test_vae_training_says_how_a_failing_run_ended(binary_images):
    request = training_request(binary_images)
    blurry = np.full((50, 1, 28, 28), 0.5)
    at_cap = checks.check_vae_training(trained(binary_images, blurry, [600.0] * 6), request, child(),
                                       GradeConfig())
    assert at_cap.fraction == 0.0 and "reached the grader's cap of 6 epochs" in at_cap.feedback
    out_of_time = checks.check_vae_training(trained(binary_images, blurry, [600.0] * 2), request, child(),
                                            GradeConfig())
    assert "trained 2 epochs (30 s per epoch). Training stopped before the cap because the next epoch would " \
        "not have ended within the grade's time limit: time ran out on the machine that trained it, which is no " \
        "fault of your code." in out_of_time.feedback
    assert "still falling" not in out_of_time.feedback
    killed = checks.check_vae_training(
        trained(binary_images, blurry, [600.0] * 3, finished=False), request,
        child("ran past its 250 s time limit and was stopped"), GradeConfig())
    assert "ran past its 250 s time limit and was stopped during epoch 4" in killed.feedback
    crashed = dict(trained(binary_images, blurry, [600.0]), **{"vae.error": "ValueError: boom (at vae.py:3)"})
    outcome = checks.check_vae_training(crashed, request, child(), GradeConfig())
    assert "stopped in epoch 2 with an error: `ValueError: boom (at vae.py:3)`" in outcome.feedback


def test_a_run_that_time_cut_short_while_its_loss_fell_says_so_and_warns_the_instructor(binary_images):
    from autograder.grading.grade import time_cut_warning

    request = training_request(binary_images)
    blurry = np.full((50, 1, 28, 28), 0.5)
    falling = trained(binary_images, blurry, [190.0, 160.5])
    outcome = checks.check_vae_training(falling, request, child(), GradeConfig())
    assert outcome.fraction < 1 and "Its loss was still falling (190.0, then 160.5)." in outcome.feedback
    assert checks.training_end(falling, "vae", 6, checks.vae_met_bar(falling, request)) == "time"
    # Not the time: the cap, the bar, an error, a run killed in an epoch.
    assert checks.training_end(trained(binary_images, blurry, [190.0] * 6), "vae", 6, False) == "cap"
    met = trained(binary_images, blurry, [130.0, 117.0])
    assert checks.vae_met_bar(met, request) and checks.training_end(met, "vae", 6, True) == "bar"
    assert checks.training_end(dict(falling, **{"vae.error": "ValueError"}), "vae", 6, False) == "error"
    assert checks.training_end(trained(binary_images, blurry, [190.0], finished=False), "vae", 6, False) == "stopped"

    on_gradescope = time_cut_warning("VAE", checks.epochs_finished(falling, "vae"), 6, GradeConfig())
    assert on_gradescope.startswith("the VAE's training stopped after 2 of at most 6 epochs, short of its bar")
    assert "560 s" in on_gradescope and "--time-limit" in on_gradescope
    assert "--time-limit" not in time_cut_warning("VAE", 2, 6, GradeConfig(platform_timeout=False))


def test_vae_training_without_a_finished_epoch_names_the_cause(binary_images):
    request = training_request(binary_images)
    error = checks.check_vae_training({"vae.error": "NameError: x (at assignment.py:9)", "started.vae": 1.0},
                                      request, child(), GradeConfig())
    assert "before the first epoch ended: `NameError: x (at assignment.py:9)`" in error.feedback
    killed = checks.check_vae_training({"started.vae": 1.0}, request,
                                       child("used more than 2500 MB of memory and was stopped"),
                                       GradeConfig())
    assert "No epoch finished: the training run used more than 2500 MB" in killed.feedback
    assert "sys.exit" not in killed.feedback


def test_vae_training_reports_malformed_outputs_and_free_notes(binary_images):
    request = training_request(binary_images)
    x_hat = binary_images[:, None] / 255.0
    wrong = dict(trained(binary_images, x_hat, [100.0]), **{"vae.x_hat": np.zeros((50, 28)),
                                                              "vae.decoded_shape": np.array([50.0, 28.0])})
    outcome = checks.check_vae_training(wrong, request, child(), GradeConfig())
    assert outcome.fraction == 0 and "the decoder returned shape (50, 28) for 50 codes" in outcome.feedback
    flat_own_optimizer = trained(binary_images, x_hat, [100.0], steps=0.0, decoded_shape=(50, 784))
    outcome = checks.check_vae_training(flat_own_optimizer, request, child(), GradeConfig())
    assert outcome.fraction == 1.0
    assert "returns images of shape (50, 784); the grader reshaped them" in outcome.feedback
    assert "model.optimizer took no steps" in outcome.feedback and "costs no points" in outcome.feedback


def train_vae_result(request_, before_hat, after_hat, returned, steps, encoder_trained=True, trusted_hat=None):
    images = request_["steps.images"][:256]
    result = {"train_vae.returned": np.array([returned]), "train_vae.grader_steps": np.array(steps)}
    moments = (("before", before_hat), ("after", after_hat)) + ((("trusted", trusted_hat),) if trusted_hat is not None
                                                                else ())
    for moment, x_hat in moments:
        mu = np.full((256, 8), 0.01 if moment != "before" and encoder_trained else 0.0)
        result.update({f"train_vae.{moment}.mu": mu, f"train_vae.{moment}.logvar": np.zeros((256, 8)),
                       f"train_vae.{moment}.x_hat": x_hat,
                       f"train_vae.{moment}.decoded_shape": np.array([256.0, 1, 28, 28])})
    return result, images


def test_train_vae_check_names_what_it_measured(request_):
    images = request_["steps.images"][:256].astype(np.float64)[:, None] / 255.0
    blurry = np.full((256, 1, 28, 28), 0.5)
    sharper = np.clip(0.5 * blurry + 0.5 * images, 0.01, 0.99)
    # mu and logvar are 0 for every image (the "after" mu of 0.01 adds 8 * 0.01**2 / 2 nats of KL).
    before = hand_bce(blurry, images) / 256
    after = hand_bce(sharper, images) / 256 + 8 * 0.01**2 / 2
    batches = 8
    good, _ = train_vae_result(request_, blurry, sharper, (before + after) / 2 * batches, 8.0)
    outcome = checks.check_train_vae(good, request_, "")
    assert outcome.fraction == 1.0 and "2 calls of train_vae, each one epoch of 8 batches" in outcome.feedback
    assert f"{before:.1f} before, {after:.1f} after" in outcome.feedback
    one_batch, _ = train_vae_result(request_, blurry, sharper, after, 8.0)
    outcome = checks.check_train_vae(one_batch, request_, "")
    assert outcome.fraction == 0.7 and "the size of one batch's loss" in outcome.feedback
    summed, _ = train_vae_result(request_, blurry, sharper, (before + after) / 2 * batches * 64, 8.0)
    assert "64 times too large" in checks.check_train_vae(summed, request_, "").feedback
    no_step, _ = train_vae_result(request_, blurry, blurry, before * batches, 0.0)
    assert "model.optimizer took no step" in checks.check_train_vae(no_step, request_, "").feedback
    useless_steps, _ = train_vae_result(request_, blurry, blurry, before * batches, 8.0)
    assert "took 8 steps in the last call of 8 batches, but they did not lower the loss" in checks.check_train_vae(
        useless_steps, request_, "").feedback
    own_optimizer, _ = train_vae_result(request_, blurry, sharper, (before + after) / 2 * batches, 0.0)
    outcome = checks.check_train_vae(own_optimizer, request_, "")
    assert outcome.fraction == 1.0 and "optimizer of its own" in outcome.feedback
    frozen_encoder, _ = train_vae_result(request_, blurry, sharper, (before + after) / 2 * batches, 8.0,
                                         encoder_trained=False)
    outcome = checks.check_train_vae(frozen_encoder, request_, "")
    assert outcome.fraction == 0.5 and "the encoder was not trained" in outcome.feedback


def test_a_slow_learner_is_judged_against_the_contracts_own_step_from_the_same_weights(request_):
    """A network that learns slowly in the probe's few steps (a convolutional one) falls by less than the
    fixed bar; what the contract's own step took off the same weights decides instead."""
    images = request_["steps.images"][:256].astype(np.float64)[:, None] / 255.0
    blurry = np.full((256, 1, 28, 28), 0.5)

    def sharpened(share):
        return np.clip((1 - share) * blurry + share * images, 0.01, 0.99)

    def loss(x_hat):
        return hand_bce(x_hat, images) / 256 + (0.0 if x_hat is blurry else 8 * 0.01**2 / 2)

    before, slow, trusted = loss(blurry), sharpened(0.12), sharpened(0.2)
    assert 0.93 * before < loss(slow) < 0.97 * before and 0.9 * before < loss(trusted) < loss(slow)
    returned = (before + loss(slow)) / 2 * 8
    alone, _ = train_vae_result(request_, blurry, slow, returned, 8.0)
    outcome = checks.check_train_vae(alone, request_, "")
    assert outcome.fraction < 1 and "fall by at least 10%:" in outcome.feedback
    judged, _ = train_vae_result(request_, blurry, slow, returned, 8.0, trusted_hat=trusted)
    outcome = checks.check_train_vae(judged, request_, "")
    assert outcome.fraction == 1.0, outcome.feedback
    assert f"the contract's own step reached {loss(trusted):.1f}" in outcome.feedback
    # The comparison does not excuse a train_vae that takes nothing off.
    still, _ = train_vae_result(request_, blurry, blurry, before * 8, 8.0, trusted_hat=trusted)
    outcome = checks.check_train_vae(still, request_, "")
    assert outcome.fraction < 1 and "or by at least 50% of what the contract's own step took off" in outcome.feedback
    # Nor does a contract step that itself barely moved.
    stuck, _ = train_vae_result(request_, blurry, sharpened(0.001), returned, 8.0, trusted_hat=sharpened(0.002))
    assert checks.check_train_vae(stuck, request_, "").fraction < 1


def test_train_vae_return_is_judged_against_the_loss_values_recorded_during_the_epoch(request_):
    images = request_["steps.images"][:256].astype(np.float64)[:, None] / 255.0
    blurry = np.full((256, 1, 28, 28), 0.5)
    sharper = np.clip(0.5 * blurry + 0.5 * images, 0.01, 0.99)
    before = hand_bce(blurry, images) / 256
    # A deep network whose loss spiked to 11 times its start during the epoch: the return value is
    # far above any window around the loss before and after, but it is the sum of what was recorded.
    spiked = 11 * before * 8
    result, _ = train_vae_result(request_, blurry, sharper, spiked, 8.0)
    assert checks.check_train_vae(result, request_, "").fraction == 0.7
    result.update({"train_vae.loss_total": np.array([spiked]), "train_vae.loss_calls": np.array([8.0])})
    assert checks.check_train_vae(result, request_, "").fraction == 1.0
    mean, _ = train_vae_result(request_, blurry, sharper, spiked / 8, 8.0)
    mean.update({"train_vae.loss_total": np.array([spiked]), "train_vae.loss_calls": np.array([8.0])})
    outcome = checks.check_train_vae(mean, request_, "")
    assert outcome.fraction == 0.7 and "the size of one batch's loss" in outcome.feedback
    assert f"loss_function's 8 calls during the last epoch returned {spiked:.1f} in all" in outcome.feedback
    # Called twice per batch (once more for a log line): the sum is still judged per batch.
    twice, _ = train_vae_result(request_, blurry, sharper, spiked, 8.0)
    twice.update({"train_vae.loss_total": np.array([2 * spiked]), "train_vae.loss_calls": np.array([16.0])})
    assert checks.check_train_vae(twice, request_, "").fraction == 1.0


def test_a_consistent_negative_loss_is_judged_like_a_positive_one():
    """The self-check measures with the student's loss_function: a wrong one can make every loss negative."""
    result = {"train_vae.loss_total": np.array([-4000.0]), "train_vae.loss_calls": np.array([8.0])}
    # 8 calls returned -4000 in all: the sum over 8 batches is -4000, and a return within a factor
    # 0.5 to 2 of it is plausible, -8000 to -2000 once ordered.
    low, high, _ = checks.expected_return(result, -100.0, -200.0, 8)
    assert (low, high) == pytest.approx((-8000.0, -2000.0))
    # Without recorded values: 0.5 times the loss after (-200) to 3 times the loss before (-100), over 8 batches.
    low, high, _ = checks.expected_return({}, -100.0, -200.0, 8)
    assert (low, high) == pytest.approx((-2400.0, -800.0))


def test_training_checks_name_the_failed_unit_checks_whose_code_they_run():
    outcomes = {"one_hot": checks.failed("x"), "loss_function": checks.failed("x", 0.5),
                "vae_forward": checks.passed("x")}
    assert checks.failed_upstream(outcomes, "vae_training") == ["loss_function"]
    assert checks.failed_upstream(outcomes, "cvae_generation") == ["one_hot", "loss_function"]


def test_a_failing_training_check_names_the_unit_checks_that_lost_points():
    from autograder.scoring.checks import with_upstream

    failing = checks.failed("Negative ELBO per image: 204.5.", fraction=0.0)
    outcome = with_upstream(failing, ["loss_function"])
    assert "Training runs the code of checks that lost points above (loss_function)" in outcome.feedback
    assert with_upstream(checks.passed("fine"), ["loss_function"]).feedback == "fine"
    assert with_upstream(failing, []).feedback == failing.feedback
    html_outcome = with_upstream(checks.Outcome(0.5, "<p>x</p>", "html"), ["train_vae"])
    assert html_outcome.feedback.startswith("<p>Training runs the code")


def test_generation_below_full_credit_reports_how_much_the_label_changes_the_image():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(100, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 20)
    wrong = np.eye(10)[(labels + 3) % 10]
    samples = rng.uniform(size=(200, 1, 28, 28))
    codes = rng.uniform(size=(10, 1, 1, 28, 28))
    deaf = np.repeat(codes, 10, axis=1).reshape(100, 1, 28, 28)
    stats = checks.generation_stats(samples, labels, wrong, train, deaf)
    assert stats.label_spread < 1e-9 and stats.code_spread > 0.2
    outcome = checks.check_cvae_generation(stats, None, 0.9, 0.2)
    assert "changes the image by 0.000" in outcome.feedback
    assert "does not depend on the label at all" in outcome.feedback
    listening = rng.uniform(size=(100, 1, 28, 28))
    outcome = checks.check_cvae_generation(checks.generation_stats(samples, labels, wrong, train, listening),
                                           None, 0.9, 0.2)
    assert "changes the image by" in outcome.feedback and "not depend" not in outcome.feedback


def test_vae_training_names_what_makes_the_outputs_unusable(binary_images):
    request = training_request(binary_images)
    linear = np.full((50, 1, 28, 28), 1.5)
    outcome = checks.check_vae_training(trained(binary_images, linear, [200.0] * 6), request, child(), GradeConfig())
    assert outcome.fraction == 0 and "ranges from 1.500 to 1.500, outside [0, 1]" in outcome.feedback
    diverged = dict(trained(binary_images, np.full((50, 1, 28, 28), np.nan), [np.nan] * 6),
                    **{"vae.mu": np.full((50, 4), np.nan)})
    outcome = checks.check_vae_training(diverged, request, child(), GradeConfig())
    assert "mu contains NaN" in outcome.feedback and "the decoder's output contains NaN" in outcome.feedback


def test_epochs_finished_counts_the_epoch_seconds_a_child_saved_whatever_their_shape():
    assert checks.epochs_finished({}, "cvae") == 0
    assert checks.epochs_finished({"cvae.epoch_seconds": np.array([3.0, 2.5])}, "cvae") == 2
    # np.savez of a single number gives a 0-d array: one epoch, not an error in the grader.
    assert checks.epochs_finished({"cvae.epoch_seconds": np.array(3.0)}, "cvae") == 1
