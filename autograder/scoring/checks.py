"""The checks, their points, and how each one scores what the child returned.

``CHECKS`` is the single list of checks and points: the grader, the results
table and the handout all read it. Every score is computed here, in the
grader's process, from plain arrays, against the grader's own numpy
computation of the same quantity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..children.harness import PROBES

# BEGIN GRADER ONLY
import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.scoring.reference_stats import ReferenceStats
# END GRADER ONLY

NUM_CLASSES = 10
BCE_EPSILON = 1e-7
# The students' self-check runs a copy of this module made by the release tool, without the parts between
# "BEGIN GRADER ONLY" and "END GRADER ONLY" (the grader's own formulas).
GRADER_COPY = False
# BEGIN GRADER ONLY
GRADER_COPY = True
# END GRADER ONLY


@dataclass(frozen=True)
class CheckSpec:
    key: str
    name: str
    points: float
    summary: str


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("one_hot", "one_hot", 5,
              "one-hot matrix of random labels, compared entry by entry"),
    CheckSpec("reparametrize", "reparametrize: distribution", 8,
              "shape, mean and variance over 20,000 draws, fresh noise at every call"),
    CheckSpec("reparametrize_gradient", "reparametrize: gradients", 4,
              "gradients of z with respect to mu and logvar"),
    CheckSpec("loss_function", "loss_function", 15,
              "negative ELBO per image on five random batches"),
    CheckSpec("vae_forward", "VAE forward pass", 8,
              "shapes of x_hat, mu, logvar and of the decoder's output; x_hat in [0, 1]"),
    CheckSpec("cvae_forward", "CVAE forward pass", 10,
              "the same for the CVAE, and the decoder's output depends on the label"),
    CheckSpec("train_vae", "train_vae", 10,
              "a few batches lower the loss; the returned total has the right size"),
    CheckSpec("vae_training", "VAE training", 15,
              "the VAE trained with your train_vae until its loss is below 120 (at most 8 epochs)"),
    CheckSpec("cvae_generation", "CVAE generation", 25,
              "the CVAE trained the same way (at most 4 epochs); 200 samples per digit scored by a "
              "pretrained classifier: above 90% is full credit"),
)
TOTAL_POINTS = sum(spec.points for spec in CHECKS)
CHECKS_BY_KEY = {spec.key: spec for spec in CHECKS}


@dataclass
class Outcome:
    """The fraction of a check's points earned and the feedback shown to the student."""

    fraction: float
    feedback: str
    output_format: str = "md"
    # Plain, JSON-serialisable numbers for the instructor's tools (the test result's ``extra_data``).
    extra_data: dict = field(default_factory=dict)


# BEGIN GRADER ONLY
def model_refused(reason: str) -> Outcome:
    """No credit: the exported model, the only evidence a training check accepts, could not be run."""
    return failed("The grader measures your trained model by running it, exported as a TensorFlow graph, in a "
                  f"process of its own on inputs your code never sees, and could not: {reason}.")


def unverified(outcome: Outcome, error: str) -> Outcome:
    """``outcome``, marked as computed from numbers the submission's own process produced."""
    note = ("Unverified: your model could not be exported as a TensorFlow graph (the grader traces "
            f"model(x) and model.decoder(z) with tf.function; it failed with `{error}`), so this score "
            "comes from numbers your own program computed. The course staff will review it. Keep Python "
            "and NumPy (.numpy(), np.*) out of your models' call methods to avoid this.")
    if outcome.output_format == "html":
        return dataclasses.replace(outcome, feedback=f"<p>{html.escape(note, quote=False)}</p>{outcome.feedback}")
    return dataclasses.replace(outcome, feedback=f"{note} {outcome.feedback}")
# END GRADER ONLY


def passed(feedback: str) -> Outcome:
    return Outcome(1.0, feedback)


def failed(feedback: str, fraction: float = 0.0) -> Outcome:
    return Outcome(fraction, feedback)


# The usual wrong versions of the loss, in the order the feedback tries them. The self-check's copy of
# this module (made by the release tool) has no grader-only parts: it reads the values of the right loss
# and of these versions from the data the release stored, never from a formula.
LOSS_VARIANTS = (
    "the reconstruction term is a mean over pixels instead of a sum",
    "the KL term is missing its factor 1/2",
    "the KL term has the wrong sign",
    "mu**2 has the wrong sign in the KL (it is subtracted: 1 + logvar - mu**2 - exp(logvar))",
    "exp(logvar) has the wrong sign in the KL (it is subtracted: 1 + logvar - mu**2 - exp(logvar))",
    "logvar has the wrong sign in the KL (it is added: 1 + logvar - mu**2 - exp(logvar))",
    "the standard deviation is used where the variance belongs in the KL "
    "(exp(logvar / 2) instead of exp(logvar))",
    "logvar is treated as log(sigma) in the KL",
    "the loss is not divided by the batch size",
    "the KL term is missing",
    "the loss is averaged over the latent dimensions too",
)
# BEGIN GRADER ONLY


# The grader's trusted computations.


def bce_sum(x_hat: np.ndarray, x: np.ndarray) -> float:
    """Binary cross-entropy summed over every pixel of every image (float64)."""
    x_hat = np.clip(np.asarray(x_hat, np.float64), BCE_EPSILON, 1 - BCE_EPSILON)
    x = np.asarray(x, np.float64)
    return float(-np.sum(x * np.log(x_hat) + (1 - x) * np.log(1 - x_hat)))


def kl_sum(mu: np.ndarray, logvar: np.ndarray) -> float:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the batch and the latent dimensions."""
    mu = np.asarray(mu, np.float64)
    logvar = np.asarray(logvar, np.float64)
    return float(-0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar)))


def negative_elbo(x_hat, x, mu, logvar) -> float:
    """The contract's ``loss_function``: (BCE + KL) / N."""
    return (bce_sum(x_hat, x) + kl_sum(mu, logvar)) / len(x)


def loss_variants(x_hat, x, mu, logvar) -> dict[str, float]:
    """Values of the usual wrong versions of the loss (``LOSS_VARIANTS``), to name the likely bug."""
    n = len(x)
    bce = bce_sum(x_hat, x)
    kl = kl_sum(mu, logvar)
    mu64 = np.asarray(mu, np.float64)
    logvar64 = np.asarray(logvar, np.float64)
    kl_mu_sign = float(-0.5 * np.sum(1 + logvar64 + mu64**2 - np.exp(logvar64)))
    kl_variance_sign = float(-0.5 * np.sum(1 + logvar64 - mu64**2 + np.exp(logvar64)))
    kl_logvar_sign = float(-0.5 * np.sum(1 - logvar64 - mu64**2 - np.exp(logvar64)))
    kl_sigma_as_variance = float(-0.5 * np.sum(1 + logvar64 - mu64**2 - np.exp(0.5 * logvar64)))
    kl_logvar_as_log_sigma = float(-0.5 * np.sum(1 + 2 * logvar64 - mu64**2 - np.exp(2 * logvar64)))
    pixels = np.prod(np.shape(x)[1:])
    values = ((bce / pixels + kl) / n, (bce + 2 * kl) / n, (bce - kl) / n, (bce + kl_mu_sign) / n,
              (bce + kl_variance_sign) / n, (bce + kl_logvar_sign) / n,
              (bce + kl_sigma_as_variance) / n, (bce + kl_logvar_as_log_sigma) / n, bce + kl, bce / n,
              (bce + kl / np.shape(mu)[1]) / n)
    return dict(zip(LOSS_VARIANTS, values))


def expected_values(request: dict) -> dict[str, np.ndarray]:
    """What the unit checks compare the probes' results with, computed from the request's inputs.

    Kept apart from the request file the child reads, so the submission never
    sees them; the release stores them for the self-check's seed as data.
    """
    batches = loss_batches(request)
    logvar = request["reparam.logvar"][0].astype(np.float64)
    return {
        "one_hot.expected": np.eye(NUM_CLASSES)[request["one_hot.labels"]],
        # The variance of z per dimension, and its square (what exp(logvar) as sigma would give).
        "reparam.variance": np.exp(logvar),
        "reparam.variance_squared": np.exp(2 * logvar),
        "loss.expected": np.array([negative_elbo(*batch) for batch in batches]),
        "loss.variants": np.array([list(loss_variants(*batch).values()) for batch in batches]),
    }
# END GRADER ONLY


def loss_batches(request: dict) -> list[list[np.ndarray]]:
    """The ``loss_function`` probe's inputs: one ``[x_hat, x, mu, logvar]`` (float64) per batch."""
    return [[request[f"loss.{i}.{name}"].astype(np.float64) for name in ("x_hat", "x", "mu", "logvar")]
            for i in range(int(request["loss.count"]))]


# Helpers for feedback.


# The submission's modules each probe imports, in import order (the unit probes' from the harness's
# registry; the training runs import both).
PROBE_MODULES = {**{name: needs for name, (_, needs) in PROBES.items()},
                 "vae": ("vae", "assignment"), "cvae": ("vae", "assignment")}


def unfinished_step(arrays: dict) -> str | None:
    """The step the harness started but never finished (it hung or ended the process there)."""
    for key in arrays:
        if key.startswith("started.") and f"done.{key[len('started.'):]}" not in arrays:
            return key[len("started."):]
    return None


def probes_to_run_alone(arrays: dict) -> list[str]:
    """The unit probes that the run of all probes together did not finish, to run again each alone.

    The step where that run stopped (a probe, or importing a module) is not
    run again: it would only stop again, and the time limit is shared. Nor is a
    probe that needs a module whose import raised: importing the same files again
    raises the same error (a syntax error would otherwise cost one child per probe).
    """
    stopped_at = unfinished_step(arrays) or ""
    return [probe for probe in UNIT_CHECKS
            if f"done.{probe}" not in arrays and probe != stopped_at
            and stopped_at.removeprefix("import_") not in PROBE_MODULES.get(probe, ("vae",))
            and not any(f"import_{module}.error" in arrays for module in PROBE_MODULES.get(probe, ("vae",)))]


def error_of(result: dict, probe: str) -> str | None:
    """The error a probe reported, or the error of importing a module it needs."""
    if f"{probe}.error" in result:
        return str(result[f"{probe}.error"])
    for module in PROBE_MODULES.get(probe, ("vae",)):
        if f"import_{module}.error" in result:
            return f"importing {module}.py failed: {result[f'import_{module}.error']}"
    return None


def missing_result(result: dict, probe: str, child_detail: str) -> Outcome:
    error = error_of(result, probe)
    if error:
        return failed(f"Your code raised an error: `{error}`")
    return failed(f"No result came back: the program {child_detail}.")


def array(result: dict, key: str) -> np.ndarray | None:
    value = result.get(key)
    return None if value is None else np.asarray(value, dtype=np.float64)


def epochs_text(count: int) -> str:
    return f"{count} epoch{'' if count == 1 else 's'}"


def shape_text(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


# The unit checks: each takes the probe results, the request the grader sent,
# and a sentence about how the child ended (for missing results).


def check_one_hot(result, request, child_detail) -> Outcome:
    output = array(result, "one_hot.output")
    if output is None:
        return missing_result(result, "one_hot", child_detail)
    labels = request["one_hot.labels"]
    expected = np.asarray(request["one_hot.expected"], dtype=np.float64)
    if output.shape != expected.shape:
        return failed(f"Expected shape {shape_text(expected.shape)} for {len(labels)} labels and "
                      f"10 classes, got {shape_text(output.shape)}.")
    wrong = np.flatnonzero(~np.isclose(output, expected, atol=1e-6).all(axis=1))
    if len(wrong):
        i = wrong[0]
        verb = "is" if len(wrong) == 1 else "are"
        return failed(f"Row {i} (label {labels[i]}) should be 1 at column {labels[i]} and 0 elsewhere; "
                      f"got {np.round(output[i], 3).tolist()}. {len(wrong)} of {len(labels)} rows {verb} wrong.")
    return passed(f"All {len(labels)} rows are correct.")


def check_reparametrize(result, request, child_detail) -> Outcome:
    first = array(result, "reparametrize.first")
    second = array(result, "reparametrize.second")
    if first is None or second is None:
        return missing_result(result, "reparametrize", child_detail)
    mu = request["reparam.mu"].astype(np.float64)
    if first.shape != mu.shape or second.shape != mu.shape:
        return failed(f"Expected z with the shape of mu {shape_text(mu.shape)}, got {shape_text(first.shape)}.")
    if not (np.isfinite(first).all() and np.isfinite(second).all()):
        return failed("z contains NaN or infinite values.")
    if np.allclose(first, mu):
        return failed("z equals mu: no noise is added. Expected z = mu + exp(logvar / 2) * eps.")
    if np.allclose(first, second):
        return failed("Two calls with the same inputs returned the same z: draw new noise eps at every call "
                      "(for example with tf.random.normal inside the function, not once at import).")
    n = len(mu)
    mean, var = first.mean(axis=0), first.var(axis=0)
    want_mean, want_var = mu[0], np.asarray(request["reparam.variance"], dtype=np.float64)
    mean_ok = np.abs(mean - want_mean) <= 6 * np.sqrt(want_var / n) + 1e-3
    var_ok = np.abs(var / want_var - 1) <= 0.06
    if mean_ok.all() and var_ok.all():
        return passed(f"Mean and variance over {n} draws match mu and exp(logvar) in every dimension.")
    columns = ", ".join(
        f"(mu {want_mean[j]:.2f}, var {want_var[j]:.3f}) got (mean {mean[j]:.3f}, var {var[j]:.3f})"
        for j in range(len(want_mean))
    )
    cause = "check that sigma = exp(logvar / 2) multiplies eps ~ N(0, 1) and mu is added."
    if np.allclose(var / np.asarray(request["reparam.variance_squared"], dtype=np.float64), 1, atol=0.06):
        cause = "the variance is exp(logvar)^2: exp(logvar) is used as the standard deviation; use exp(logvar / 2)."
    elif np.allclose(var, 1, atol=0.06):
        cause = "the variance is 1 whatever logvar is: eps is not scaled by sigma = exp(logvar / 2)."
    return failed(f"Expected per-dimension mean mu and variance exp(logvar). Per dimension: {columns}. Likely: {cause}",
                  fraction=0.25 if mean_ok.all() else 0.0)


def check_reparametrize_gradient(result, request, child_detail) -> Outcome:
    z = array(result, "reparametrize_gradient.z")
    if z is None:
        return missing_result(result, "reparametrize_gradient", child_detail)
    grad_mu = array(result, "reparametrize_gradient.grad_mu")
    grad_logvar = array(result, "reparametrize_gradient.grad_logvar")
    mu = request["grad.mu"].astype(np.float64)
    weights = request["grad.weights"].astype(np.float64)
    if z.shape != mu.shape or grad_mu.shape != mu.shape or grad_logvar.shape != mu.shape:
        return failed(f"Expected z and both gradients with the shape of mu {shape_text(mu.shape)}.")
    want_logvar = weights * 0.5 * (z - mu)
    missing = {name: array(result, f"reparametrize_gradient.missing_{name}") for name in ("mu", "logvar")}
    missing = {name: flag is not None and flag.size == 1 and flag.item() == 1 for name, flag in missing.items()}
    # A gradient that does not exist is wrong even where its right value would be 0 (z equal to mu).
    mu_ok = not missing["mu"] and np.allclose(grad_mu, weights, rtol=1e-3, atol=1e-5)
    logvar_ok = not missing["logvar"] and np.allclose(grad_logvar, want_logvar, rtol=1e-3, atol=1e-4)
    if mu_ok and logvar_ok:
        return passed("d z / d mu = 1 and d z / d logvar = (z - mu) / 2, as expected.")
    problems = []
    for name, ok in (("mu", mu_ok), ("logvar", logvar_ok)):
        if missing[name]:
            problems.append(f"no gradient reaches {name}: tape.gradient returned None, so z is not computed "
                            f"from {name} with TensorFlow operations (a NumPy step or a .numpy() call cuts the tape)")
        elif not ok and name == "mu":
            problems.append(f"d z / d mu should be 1 per element; it averages {np.mean(grad_mu / weights):.3f}")
        elif not ok and np.allclose(grad_logvar, 2 * want_logvar, rtol=1e-3, atol=1e-4):
            problems.append("d z / d logvar is z - mu instead of (z - mu) / 2: sigma is exp(logvar) where it "
                            "should be exp(logvar / 2)")
        elif not ok:
            worst = float(np.max(np.abs(grad_logvar - want_logvar)))
            problems.append(f"d z / d logvar should be (z - mu) / 2; it differs by up to {worst:.3f}")
    return failed("Expected the gradients of z = mu + exp(logvar / 2) * eps: " + "; ".join(problems) + ".",
                  fraction=0.5 if (mu_ok or logvar_ok) else 0.0)


def check_loss_function(result, request, child_detail) -> Outcome:
    values = array(result, "loss_function.values")
    if values is None:
        return missing_result(result, "loss_function", child_detail)
    count = int(request["loss.count"])
    batches = loss_batches(request)
    if values.shape != (count,):
        return failed(f"Expected one scalar per batch; got {values.size} values for {count} batches: "
                      "loss_function must return a scalar (a sum over the batch divided by N).")
    expected = np.asarray(request["loss.expected"], dtype=np.float64)
    correct = np.isclose(values, expected, rtol=2e-4, atol=1e-3)
    if correct.all():
        return passed(f"All {count} batches match the negative ELBO per image.")
    i = int(np.flatnonzero(~correct)[0])
    cause = "compare your formula with (BCE summed over pixels and images + KL summed) / N."
    variants = np.asarray(request["loss.variants"], dtype=np.float64)
    for description, column in zip(LOSS_VARIANTS, variants.T):
        if np.allclose(values, column, rtol=2e-4, atol=1e-3):
            cause = description + "."
            break
    return failed(f"Batch {i} ({len(batches[i][1])} images): expected {expected[i]:.4f}, got {values[i]:.4f} "
                  f"({int(correct.sum())} of {count} batches right). Likely: {cause}")


# Each output's share of a forward-pass check: the model's own output weighs most, and a slip in one
# output (a decoder that returns flat (N, 784) images) costs its share, not the whole check.
FORWARD_SHARES = {"x_hat": 0.4, "mu": 0.2, "logvar": 0.2, "decoded": 0.2}


def _check_forward(result, request, child_detail, probe, decoded_shape) -> tuple[Outcome | None, dict[str, str]]:
    """A missing result's outcome, or the problems of each output (name -> what is wrong)."""
    x_hat = array(result, f"{probe}.x_hat")
    if x_hat is None:
        return missing_result(result, probe, child_detail), {}
    n = len(request["forward.x"])
    latent = int(request["forward.latent_size"])
    want = {"x_hat": (n, 1, 28, 28), "mu": (n, latent), "logvar": (n, latent), "decoded": decoded_shape}
    problems = {}
    for name, shape in want.items():
        value = array(result, f"{probe}.{name}")
        if value is None or value.shape != shape:
            got = "nothing" if value is None else shape_text(value.shape)
            problems[name] = f"{name} should have shape {shape_text(shape)}, got {got}"
        elif not np.isfinite(value).all():
            problems[name] = f"{name} contains NaN or infinite values"
        elif name in ("x_hat", "decoded") and (value.min() < -1e-6 or value.max() > 1 + 1e-6):
            problems[name] = (f"{name} should be probabilities in [0, 1] (a sigmoid output), "
                              f"got values from {value.min():.3f} to {value.max():.3f}")
    return None, problems


def forward_feedback(model: str, problems: dict[str, str]) -> tuple[float, str]:
    """The fraction the forward pass keeps and what is wrong, from each output's problems."""
    lost = sum(FORWARD_SHARES[name] for name in problems)
    shares = ", ".join(f"{name} {FORWARD_SHARES[name]:.0%}" for name in problems)
    return 1.0 - lost, f"With {model}: " + "; ".join(problems.values()) + f" (the check's share of each: {shares})."


def check_vae_forward(result, request, child_detail) -> Outcome:
    z_rows = len(request["forward.z"])
    outcome, problems = _check_forward(result, request, child_detail, "vae_forward", (z_rows, 1, 28, 28))
    if outcome:
        return outcome
    if problems:
        fraction, feedback = forward_feedback("VAE(784, latent_size=%d)" % int(request["forward.latent_size"]),
                                              problems)
        return failed(feedback, fraction=fraction)
    return passed("model(x) returns x_hat (N, 1, 28, 28) in [0, 1], mu and logvar (N, Z); "
                  "model.decoder(z) returns (N, 1, 28, 28).")


def check_cvae_forward(result, request, child_detail) -> Outcome:
    z_rows = len(request["forward.z"])
    outcome, problems = _check_forward(result, request, child_detail, "cvae_forward",
                                       (z_rows * NUM_CLASSES, 1, 28, 28))
    if outcome:
        return outcome
    fraction, feedback = 1.0, ""
    if problems:
        fraction, feedback = forward_feedback(
            "CVAE(784, 10, latent_size=%d)" % int(request["forward.latent_size"]), problems)
    # Whether the label changes the image is judged on any finite output of the right size (a flat one too).
    decoded = array(result, "cvae_forward.decoded")
    if decoded is not None and decoded.size == z_rows * NUM_CLASSES * 28 * 28 and np.isfinite(decoded).all():
        decoded = decoded.reshape(z_rows, NUM_CLASSES, -1)
        spread = np.abs(decoded - decoded.mean(axis=1, keepdims=True)).max(axis=(1, 2))
        if (spread < 1e-6).any():
            fraction *= 0.6
            feedback = (feedback + " Decoding" if feedback else "Shapes are right, but decoding") + (
                " the same z with the ten different labels gives the same image: the decoder ignores "
                "the label. Feed concat([z, c]) through the decoder (use every column of its input).")
    if fraction < 1.0:
        return failed(feedback, fraction=fraction)
    return passed("Shapes are right, and the decoder's output changes with the label.")


def malformed(result, prefix, images) -> str | None:
    """What is wrong with the arrays a trained model returned, or None when the loss can be measured."""
    mu, logvar, x_hat = (array(result, f"{prefix}.{k}") for k in ("mu", "logvar", "x_hat"))
    n = len(images)
    for name, value in (("mu", mu), ("logvar", logvar), ("the decoder's output", x_hat)):
        if value is None:
            return f"{name} did not come back"
    if x_hat.shape != (n, 1, 28, 28):
        return (f"the decoder returned shape {shape_text(array(result, f'{prefix}.decoded_shape'))} for {n} "
                f"codes; expected ({n}, 1, 28, 28) or ({n}, 784)")
    if mu.shape != logvar.shape or mu.ndim != 2 or len(mu) != n:
        return f"mu {shape_text(mu.shape)} and logvar {shape_text(logvar.shape)} should both be ({n}, Z)"
    return None


def invalid_outputs(result, prefix) -> str:
    """What makes a trained model's outputs unusable for the loss (NaN, infinities, x_hat outside [0, 1])."""
    problems = []
    for name, label in (("mu", "mu"), ("logvar", "logvar"), ("x_hat", "the decoder's output")):
        value = array(result, f"{prefix}.{name}")
        if value is not None and not np.isfinite(value).all():
            problems.append(f"{label} contains NaN or infinite values")
    x_hat, logvar = array(result, f"{prefix}.x_hat"), array(result, f"{prefix}.logvar")
    if x_hat is not None and np.isfinite(x_hat).all() and (x_hat.min() < -1e-6 or x_hat.max() > 1 + 1e-6):
        problems.append(f"the decoder's output ranges from {x_hat.min():.3f} to {x_hat.max():.3f}, outside [0, 1]")
    if logvar is not None and np.isfinite(logvar).all() and logvar.max() > 80:
        problems.append(f"logvar reaches {logvar.max():.0f}, so exp(logvar) overflows")
    return "; ".join(problems)


# BEGIN GRADER ONLY
def grader_loss(result, prefix, images, clip: bool = False) -> float | None:
    """The grader's negative ELBO from the child's mu, logvar and decoded x_hat (None if malformed).

    Outputs outside [0, 1] give NaN (no credit for what is not a probability),
    unless ``clip``: then they are clipped into it, as the cross-entropy does.
    """
    if malformed(result, prefix, images):
        return None
    mu, logvar, x_hat = (array(result, f"{prefix}.{k}") for k in ("mu", "logvar", "x_hat"))
    if not (np.isfinite(mu).all() and np.isfinite(logvar).all() and np.isfinite(x_hat).all()):
        return float("nan")
    if logvar.max() > 80 or (not clip and (x_hat.min() < -1e-6 or x_hat.max() > 1 + 1e-6)):
        return float("nan")
    x = images.astype(np.float64)[:, None] / 255.0
    return negative_elbo(x_hat, x, mu, logvar)
# END GRADER ONLY


def measured_loss(result, prefix, images, clip: bool = False) -> float | None:
    """The negative ELBO of a model's outputs on ``images`` (None when it cannot be measured).

    The grader computes it from the model's ``mu``, ``logvar`` and decoded
    ``x_hat``; the self-check reads the value of the student's own
    ``loss_function`` (``PREFIX.loss``).
    """
    # BEGIN GRADER ONLY
    if GRADER_COPY:
        return grader_loss(result, prefix, images, clip)
    # END GRADER ONLY
    own = array(result, f"{prefix}.loss")
    return None if own is None or own.size != 1 else float(own.item())


def measurement_problem(result, prefix, images) -> str | None:
    """Why the loss of a model's outputs cannot be measured, or None."""
    # BEGIN GRADER ONLY
    if GRADER_COPY:
        return malformed(result, prefix, images)
    # END GRADER ONLY
    return None if array(result, f"{prefix}.loss") is not None else "its loss did not come back"


def own_optimizer_note(steps) -> str:
    """A polite note when ``train_vae`` trained without ``model.optimizer`` (its step counter never moved)."""
    if steps is None or not len(steps) or (steps != 0).any():
        return ""
    return (" Note: model.optimizer took no steps, so your train_vae trains with an optimizer of its own; "
            "the grader's learning rate and schedule were not used. That costs no points here, but the "
            "assignment asks for model.optimizer.")


def flat_decoder_note(result, prefix) -> str:
    shape = array(result, f"{prefix}.decoded_shape")
    if shape is None or tuple(shape[1:]) == (1, 28, 28):
        return ""
    return (f" Your decoder returns images of shape {shape_text(shape)}; the grader reshaped them to "
            "(N, 1, 28, 28) for this check (the forward-pass checks take the points for the shape).")


def no_epoch_finished(result, prefix, child_detail: str) -> str:
    """Why a training run left no finished epoch: an error, no result at all, or how the run ended."""
    error = error_of(result, prefix)
    if error:
        return f"Training raised an error before the first epoch ended: `{error}`"
    if not result:
        return f"No result came back: the training run {child_detail}."
    if f"started.{prefix}" in result:
        return f"No epoch finished: the training run {child_detail} during the first epoch."
    return f"Training did not start: the training run {child_detail}."


def epochs_finished(result, prefix: str) -> int:
    """How many epochs the training child of ``prefix`` finished."""
    seconds = array(result, f"{prefix}.epoch_seconds")
    return 0 if seconds is None else np.atleast_1d(seconds).size


def training_end(result, prefix: str, cap: int, bar_met: bool) -> str:
    """Why training ended: ``"error"`` (the submission raised), ``"stopped"`` (the child ended during an
    epoch), ``"bar"`` (the model met its check's bar), ``"cap"`` (the last epoch allowed) or ``"time"``
    (the next epoch would not have ended within the grade's time)."""
    if result.get(f"{prefix}.error"):
        return "error"
    if f"done.{prefix}" not in result:
        return "stopped"
    if bar_met:
        return "bar"
    return "cap" if epochs_finished(result, prefix) >= cap else "time"


def training_story(result, prefix, child_detail: str, cap: int, bar_met: str | None) -> str:
    """How the training run went: epochs, why it stopped, and notes that cost no points.

    ``bar_met`` is the sentence saying the model met its check's bar after the
    last epoch, or None when it did not.
    """
    seconds = array(result, f"{prefix}.epoch_seconds")
    epochs = epochs_finished(result, prefix)
    # Timings vary from run to run: they are shown only where time decided how training ended.
    per_epoch = f" ({np.mean(seconds):.0f} s per epoch)" if epochs else ""
    end = training_end(result, prefix, cap, bool(bar_met))
    if end == "error":
        ended = f"Training stopped in epoch {epochs + 1} with an error: `{result[f'{prefix}.error']}`."
    elif end == "stopped":
        ended = f"The training run {child_detail} during epoch {epochs + 1}."
    elif end == "bar":
        ended, per_epoch = bar_met, ""
    elif end == "cap":
        ended, per_epoch = f"Training reached the grader's cap of {epochs_text(cap)}.", ""
    else:
        ended = ("Training stopped before the cap because the next epoch would not have ended within the "
                 "grade's time limit: time ran out on the machine that trained it, which is no fault of your code."
                 + still_falling(array(result, f"{prefix}.metric")))
    trainer = "The grader" if GRADER_COPY else "This self-check"
    text = f"{trainer} trained {epochs_text(epochs)}{per_epoch}. {ended}"
    return text + own_optimizer_note(array(result, f"{prefix}.grader_steps")) + flat_decoder_note(result, prefix)


def still_falling(losses) -> str:
    """A sentence saying that the loss fell in the last epoch, when it did (else nothing)."""
    if losses is None or len(losses) < 2 or not np.all(np.isfinite(losses[-2:])) or losses[-1] >= losses[-2]:
        return ""
    return f" Its loss was still falling ({losses[-2]:.1f}, then {losses[-1]:.1f})."


def upstream_note(failed_units: list[str]) -> str:
    """Which unit checks that training depends on lost points (training runs the same code)."""
    if not failed_units:
        return ""
    return (" Training runs the code of checks that lost points above (" + ", ".join(failed_units)
            + "): fixing those first may fix this one.")


def failed_upstream(outcomes: dict[str, Outcome], key: str) -> list[str]:
    """The names of the unit checks in ``outcomes`` that lost points and whose code training check ``key`` runs.

    Both training checks run every contract function but one_hot, which only the CVAE uses.
    """
    return [CHECKS_BY_KEY[unit].name for unit, outcome in outcomes.items()
            if outcome.fraction < 1 and (unit != "one_hot" or key == "cvae_generation")]


def with_upstream(outcome: Outcome, failed_units: list[str]) -> Outcome:
    """``outcome`` with a note naming the failed unit checks whose code training runs (when it lost points)."""
    note = upstream_note(failed_units)
    if outcome.fraction >= 1 or not note:
        return outcome
    if outcome.output_format == "html":
        return dataclasses.replace(outcome, feedback=f"<p>{note.strip()}</p>" + outcome.feedback)
    return dataclasses.replace(outcome, feedback=outcome.feedback + note)


# When the loss function's values could not be recorded (train_vae computes its loss without calling
# loss_function), the mean per-batch loss that train_vae's return value implies must lie within these
# factors of the grader's loss after and before the epoch. The window is wide because a correct deep
# network can spike during its first batches; the wrong sizes it separates are 8 times smaller (a mean
# over the batches) or 64 times larger (a sum over the images of each batch).
PLAUSIBLE_BATCH_LOSS = (0.5, 3.0)
# When they were recorded, train_vae's return value must lie within these factors of their sum (scaled
# to one call per batch). A correct return is that sum exactly; the wrong sizes are again a factor of
# the number of batches or of the batch size away.
PLAUSIBLE_RETURN = (0.5, 2.0)
# The loss after the train_vae probe's calls must be below this fraction of the loss before, or have
# fallen by at least TRAIN_VAE_TRUSTED_SHARE of what the contract's own step took off the same weights on
# the same batches (harness.train_with_trusted_step), when that step lowered it by more than
# TRAIN_VAE_TRUSTED_MIN_FALL: some correct networks (a convolutional one) learn slowly in so few steps.
TRAIN_VAE_LOSS_BAR = 0.9
TRAIN_VAE_TRUSTED_SHARE = 0.5
TRAIN_VAE_TRUSTED_MIN_FALL = 0.02


def trusted_is_yardstick(before: float, trusted: float | None) -> bool:
    """Whether the contract's own step lowered the loss enough (from ``before`` to ``trusted``) to judge by."""
    return trusted is not None and before - trusted > TRAIN_VAE_TRUSTED_MIN_FALL * before


def train_vae_lowered(before: float, after: float, trusted: float | None) -> bool:
    """The train_vae check's rule: the loss fell below the fixed bar, or by the share of the trusted copy's fall.

    ``trusted``: the copy's loss after the same steps, None when there is none.
    """
    return after < TRAIN_VAE_LOSS_BAR * before or (
        trusted_is_yardstick(before, trusted) and before - after >= TRAIN_VAE_TRUSTED_SHARE * (before - trusted))


def expected_return(result, before, after, num_batches):
    """The range a correct return value of ``train_vae`` lies in, and how the grader knows it.

    Returns ``(low, high, explanation)``: from the loss function's recorded
    values when there are any, else from the loss before and after the epoch.
    """
    total, calls = array(result, "train_vae.loss_total"), array(result, "train_vae.loss_calls")
    if total is not None and calls is not None and calls.size == 1 and calls.item() >= 1 \
            and total.size == 1 and np.isfinite(total.item()):
        target = total.item() / calls.item() * num_batches
        calls_text = f"{int(calls.item())} call" + ("" if calls.item() == 1 else "s")
        low, high = sorted((PLAUSIBLE_RETURN[0] * target, PLAUSIBLE_RETURN[1] * target))
        return (low, high,
                f"loss_function's {calls_text} during the last epoch returned {total.item():.1f} in all, "
                f"so the sum over the {num_batches} batches of the per-image loss is {target:.1f}")
    low, high = sorted((PLAUSIBLE_BATCH_LOSS[0] * after * num_batches, PLAUSIBLE_BATCH_LOSS[1] * before * num_batches))
    return low, high, (f"the sum over the {num_batches} batches of the per-image loss lies between "
                       f"{low:.0f} and {high:.0f}")


def check_train_vae(result, request, child_detail) -> Outcome:
    if "train_vae.returned" not in result:
        return missing_result(result, "train_vae", child_detail)
    images = request["steps.eval_images"]
    for moment in ("before", "after"):
        problem = measurement_problem(result, f"train_vae.{moment}", images)
        if problem:
            return failed(f"{moment.capitalize()} train_vae ran, {problem}, so the loss could not be measured.")
    # A decoder without a sigmoid costs the forward checks; here its outputs are clipped into [0, 1],
    # so that train_vae is judged on what it does.
    before = measured_loss(result, "train_vae.before", images, clip=True)
    after = measured_loss(result, "train_vae.after", images, clip=True)
    if not np.isfinite(before) or not np.isfinite(after):
        moment = "before" if not np.isfinite(before) else "after"
        return failed(f"The model's outputs {moment} train_vae ran are NaN or infinite, "
                      "so the loss could not be measured.")
    returned = float(array(result, "train_vae.returned")[0])
    num_batches = -(-len(request["steps.images"]) // int(request["steps.batch_size"]))
    epochs = int(request["steps.epochs"])
    trusted = None if measurement_problem(result, "train_vae.trusted", images) else \
        measured_loss(result, "train_vae.trusted", images, clip=True)
    trusted = trusted if trusted is not None and np.isfinite(trusted) else None
    lowered = train_vae_lowered(before, after, trusted)
    low, high, explanation = expected_return(result, before, after, num_batches)
    plausible = np.isfinite(returned) and low <= returned <= high
    source = ("test images (the grader's computation)" if GRADER_COPY
              else "of the images it trains on (measured with your loss_function)")
    lines = [f"Loss on {len(images)} {source}: {before:.1f} before, {after:.1f} after "
             f"{epochs} calls of train_vae, each one epoch of {num_batches} batches"
             + (f" (from the same weights on the same batches, the contract's own step reached {trusted:.1f})."
                if trusted is not None else "."),
             f"The last call returned {returned:.1f}."]
    steps = array(result, "train_vae.grader_steps")
    steps = None if steps is None or steps.size != 1 or steps.item() < 0 else int(steps.item())
    encoder_moved = not (np.allclose(array(result, "train_vae.before.mu"), array(result, "train_vae.after.mu"))
                         and np.allclose(array(result, "train_vae.before.logvar"),
                                         array(result, "train_vae.after.logvar")))
    if lowered and plausible and not encoder_moved:
        return failed(" ".join(lines) + " But mu and logvar on the same images did not change at all: the "
                      "encoder was not trained. Take the gradients with respect to all of "
                      "model.trainable_variables and apply them all.", fraction=0.5)
    if lowered and plausible:
        return passed(" ".join(lines) + own_optimizer_note(None if steps is None else np.array([steps])))
    fraction = 0.0
    if lowered:
        fraction = 0.7
        expected = f"Expected {explanation}"
        batch_size = int(request["steps.batch_size"])
        if low <= returned * num_batches <= high:
            lines.append(f"{expected}; what it returned is the size of one batch's loss (a mean over the batches, "
                         "or the last batch's loss, instead of their sum).")
        elif low * batch_size <= returned <= high * batch_size:
            lines.append(f"{expected}; it is about {batch_size} times too large: each batch's loss is summed "
                         "over its images instead of being the per-image loss.")
        else:
            lines.append(f"{expected}.")
    else:
        if steps == 0:
            cause = ("model.optimizer took no step, and no other optimizer lowered the loss either: apply the "
                     "gradients with model.optimizer.apply_gradients once per batch.")
        elif steps is not None:
            cause = (f"model.optimizer took {steps} steps in the last call of {num_batches} batches, but they did "
                     "not lower the loss: check that the loss is computed inside the GradientTape and that the "
                     "gradients are taken with respect to model.trainable_variables.")
        else:
            cause = "model.optimizer was replaced by something without a step counter."
        share = (f", or by at least {TRAIN_VAE_TRUSTED_SHARE:.0%} of what the contract's own step took off"
                 if trusted_is_yardstick(before, trusted) else "")
        lines.append(f"Expected the loss to fall by at least {1 - TRAIN_VAE_LOSS_BAR:.0%}{share}: " + cause)
        if plausible:
            fraction = 0.3
    return failed(" ".join(lines), fraction=fraction)


def unit_checks() -> dict:
    """The check of each probe of the one registry of probes, ``harness.PROBES``, in the order of ``CHECKS``.

    A probe's result is scored by the function of this module named ``check_<probe>`` (result, request,
    how its child ended) -> Outcome, and its points are the ``CheckSpec`` of the same key; a probe
    registered without either is an error here, when the grader starts.
    """
    incomplete = [name for name in PROBES if f"check_{name}" not in globals() or name not in CHECKS_BY_KEY]
    if incomplete:
        raise ImportError(f"the probes {incomplete} of harness.PROBES need a check_<name> function and a "
                          "CheckSpec in checks.CHECKS")
    return {spec.key: globals()[f"check_{spec.key}"] for spec in CHECKS if spec.key in PROBES}


UNIT_CHECKS = unit_checks()


def vae_met_bar(result, request) -> bool:
    """Whether the VAE's loss after its last epoch, measured by its child, was below its early stop's bar."""
    losses = array(result, "vae.metric")
    stop_below = float(request["vae.stop_below"])
    return bool(losses is not None and len(losses) and np.isfinite(stop_below) and losses[-1] < stop_below)


def check_vae_training(result, request, child_detail: str, config) -> Outcome:
    """The negative ELBO of the VAE that the grader trained with the submission's ``train_vae``."""
    images = request["eval.images"]
    threshold = config.vae_loss_threshold
    cap = int(request["vae_epochs"])
    if "vae.epoch_seconds" not in result:
        return failed(no_epoch_finished(result, "vae", child_detail))
    problem = malformed(result, "vae", images)
    if problem:
        return failed(f"After training, {problem}, so the loss could not be measured.")
    loss = measured_loss(result, "vae", images)
    returned = array(result, "vae.returned")
    losses = array(result, "vae.metric")
    history = ""
    if losses is not None and len(losses) > 1:
        history = " After each epoch: " + ", ".join(f"{v:.1f}" for v in losses) + "."
    if returned is not None:
        history += " Your train_vae returned " + ", ".join(f"{v:.0f}" for v in returned) + "."
    stop_below = float(request["vae.stop_below"])
    bar_met = (f"It stopped once its loss on the {int(request['eval.stop_count'])} test images of its stop set "
               f"was below {stop_below:g} (the bar less a margin).") if vae_met_bar(result, request) else None
    story = training_story(result, "vae", child_detail, cap, bar_met)
    if not np.isfinite(loss):
        return failed(f"After training, {invalid_outputs(result, 'vae') or 'the loss is not finite'}, so the "
                      f"loss cannot be measured. {story}{history}")
    source = "" if GRADER_COPY else ", measured with your loss_function (the grader computes it on other test images)"
    text = (f"Negative ELBO per image on {len(images)} test images{source}: {loss:.1f} (below {threshold:g} earns "
            f"full credit; the grader trains at most {epochs_text(cap)} and stops as soon as it is). "
            f"{story}{history}")
    if loss < threshold:
        return passed(text)
    # Partial credit falls linearly to zero at 1.5 times the threshold.
    fraction = float(np.clip((1.5 * threshold - loss) / (0.5 * threshold), 0.0, 1.0))
    return failed(text, fraction=fraction)


# BEGIN GRADER ONLY
# The CVAE's generation: the grader's classifier scores it; the self-check shows the samples.


@dataclass
class GenerationStats:
    accuracy: float
    per_digit: list[float]
    count: int
    within_digit_std: float
    copied_fraction: float
    median_nearest_distance: float
    # The share of samples that look like shifted, noisy or re-contrasted training images (copies.py).
    disguised_share: float
    # Mean pixel std across the ten labels for one code, and across codes for one label (None if unknown).
    label_spread: float | None = None
    code_spread: float | None = None
    # The 95% Wilson score interval of ``accuracy``.
    accuracy_interval: tuple[float, float] = (0.0, 1.0)
    # Per digit d: the classifier's mean probability of d on the samples drawn for d.
    per_digit_confidence: list[float] = field(default_factory=list)
    # Per digit: the mean over pixels of the per-pixel std of that digit's samples.
    per_digit_diversity: list[float] = field(default_factory=list)
    # The same diversity of as many real MNIST test digits of each digit (None when not measured).
    real_digit_diversity: list[float] | None = None

    def as_json(self) -> dict:
        """The statistics as plain floats, ints and lists (non-finite values as None), for ``extra_data``."""

        def plain(value):
            if value is None:
                return None
            if isinstance(value, (list, tuple)):
                return [plain(item) for item in value]
            value = float(value)
            return value if np.isfinite(value) else None

        return {
            "accuracy": plain(self.accuracy), "accuracy_interval": plain(self.accuracy_interval),
            "count": int(self.count), "per_digit_accuracy": plain(self.per_digit),
            "per_digit_confidence": plain(self.per_digit_confidence),
            "per_digit_diversity": plain(self.per_digit_diversity),
            "real_digit_diversity": plain(self.real_digit_diversity),
            "within_digit_std": plain(self.within_digit_std), "copied_fraction": plain(self.copied_fraction),
            "disguised_share": plain(self.disguised_share),
            "median_nearest_distance": plain(self.median_nearest_distance),
            "label_spread": plain(self.label_spread), "code_spread": plain(self.code_spread),
        }


# The 97.5% quantile of the standard normal distribution: a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    share = successes / trials
    shrink = 1 + z**2 / trials
    centre = (share + z**2 / (2 * trials)) / shrink
    half_width = z / shrink * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2))
    return float(max(0.0, centre - half_width)), float(min(1.0, centre + half_width))


def per_digit_diversity(images, labels) -> list[float]:
    """Per digit, the mean over pixels of the per-pixel std of the images of that digit (NaN if none)."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    labels = np.asarray(labels)
    return [float(flat[labels == d].std(axis=0).mean()) if np.any(labels == d) else float("nan")
            for d in range(NUM_CLASSES)]


def real_digit_diversity(test_images, test_labels, counts) -> list[float]:
    """``per_digit_diversity`` of the first ``counts[d]`` MNIST test images of each digit d (pixels in [0, 1]).

    The same number of images per digit as samples, so that the two are measured alike; the first
    ones in the file's order, so that every grade compares with the same real digits.
    """
    test_labels = np.asarray(test_labels)
    chosen = [np.flatnonzero(test_labels == d)[: int(counts[d])] for d in range(NUM_CLASSES)]
    images = np.concatenate([np.asarray(test_images)[index] for index in chosen]) / 255.0
    labels = np.concatenate([np.full(len(index), d) for d, index in enumerate(chosen)])
    return per_digit_diversity(images, labels)


def nearest_training_distances(samples: np.ndarray, train_images: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance (pixels in [0, 1]) from each sample to its nearest training image."""
    flat = samples.reshape(len(samples), -1).astype(np.float32)
    best = np.full(len(flat), np.inf, dtype=np.float32)
    sample_norms = (flat**2).sum(axis=1)
    for start in range(0, len(train_images), chunk):
        block = train_images[start:start + chunk].reshape(-1, flat.shape[1]).astype(np.float32) / 255.0
        distances = sample_norms[:, None] - 2 * flat @ block.T + (block**2).sum(axis=1)[None, :]
        best = np.minimum(best, distances.min(axis=1))
    return np.sqrt(np.maximum(best, 0.0))


def sweep_spreads(sweep) -> tuple[float | None, float | None]:
    """(label spread, code spread) of a (10 codes x 10 labels, 1, 28, 28) sweep of the decoder."""
    if sweep is None or np.shape(sweep) != (NUM_CLASSES * NUM_CLASSES, 1, 28, 28) or not np.isfinite(sweep).all():
        return None, None
    grid = np.asarray(sweep).reshape(NUM_CLASSES, NUM_CLASSES, -1)
    return float(grid.std(axis=1).mean()), float(grid.std(axis=0).mean())


def generation_stats(samples, labels, probabilities, train_images, sweep=None, test_images=None,
                     test_labels=None) -> GenerationStats:
    """The statistics of the samples; with MNIST's test images, also those of as many real digits."""
    # Imported here: this module also ships alone with the students' self-check, which never scores samples.
    from autograder.scoring.copies import copies_of_training_images

    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    per_digit = [float(np.mean(predicted[labels == d] == d)) for d in range(NUM_CLASSES)]
    confidence = [float(np.mean(probabilities[labels == d, d])) for d in range(NUM_CLASSES)]
    diversity = per_digit_diversity(samples, labels)
    real = None
    if test_images is not None and test_labels is not None:
        real = real_digit_diversity(test_images, test_labels, [np.sum(labels == d) for d in range(NUM_CLASSES)])
    correct = int(np.sum(predicted == labels))
    distances = nearest_training_distances(samples, train_images)
    return GenerationStats(
        accuracy=correct / len(labels), per_digit=per_digit, count=len(labels),
        within_digit_std=float(np.mean(diversity)),
        copied_fraction=float(np.mean(distances < COPY_DISTANCE)),
        disguised_share=float(np.mean(copies_of_training_images(samples, train_images))),
        median_nearest_distance=float(np.median(distances)),
        label_spread=sweep_spreads(sweep)[0], code_spread=sweep_spreads(sweep)[1],
        accuracy_interval=wilson_interval(correct, len(labels)), per_digit_confidence=confidence,
        per_digit_diversity=diversity, real_digit_diversity=real,
    )


# A sample this close (L2, pixels in [0, 1]) to a training image counts as a copy;
# distinct MNIST digits are typically 5 to 10 apart.
COPY_DISTANCE = 1.0
MIN_WITHIN_DIGIT_STD = 0.02
MAX_COPIED_FRACTION = 0.1


def _digit_row(title: str, values, style: str, reference: bool = False) -> str:
    """One row of the per-digit table: a title and ten numbers (``style`` a format spec; None shows as -)."""
    cells = "".join(f"<td>{'-' if v is None or not np.isfinite(v) else format(v, style)}</td>" for v in values)
    title = f"<i>{html.escape(title, quote=False)}</i>" if reference else html.escape(title, quote=False)
    return f"<tr><td>{title}</td>{cells}</tr>"


def generation_table_html(stats: GenerationStats, reference: ReferenceStats | None) -> str:
    """The per-digit table: accuracy, confidence and diversity, each with the reference solution's row below."""
    header = "<tr><th>digit</th>" + "".join(f"<th>{d}</th>" for d in range(NUM_CLASSES)) + "</tr>"
    rows = [(_digit_row("accuracy", stats.per_digit, ".0%"), "per_digit_accuracy", ".0%"),
            (_digit_row("mean confidence", stats.per_digit_confidence, ".0%"), "per_digit_confidence", ".0%"),
            (_digit_row("diversity", stats.per_digit_diversity, ".3f"), "per_digit_diversity", ".3f")]
    body = ""
    for row, reference_field, style in rows:
        body += row
        if reference is not None:
            body += _digit_row("reference solution", getattr(reference, reference_field), style, reference=True)
    # The stored reference measured the same real digits (the first of each digit in the test set).
    real = stats.real_digit_diversity or (reference.real_digit_diversity if reference is not None else None)
    if real is not None:
        body += _digit_row("diversity of real test digits", real, ".3f")
    return f"<table>{header}{body}</table>"


def generation_details_html(stats: GenerationStats, full_credit: float, zero_credit: float,
                            reference: ReferenceStats | None) -> str:
    """The measurements behind the generation score, beside the reference solution's when known."""
    low, high = stats.accuracy_interval
    beside = ""
    if reference is not None:
        beside = (f" The reference solution: {reference.accuracy:.1%} ({reference.accuracy_interval[0]:.1%} to "
                  f"{reference.accuracy_interval[1]:.1%}).")
    accuracy = (f"<p>Classifier accuracy on your samples ({stats.count // NUM_CLASSES} per digit, z ~ N(0, I) drawn "
                f"by the grader): <b>{stats.accuracy:.1%}</b> (95% interval {low:.1%} to {high:.1%}); full credit "
                f"above {full_credit:.0%}, none at {zero_credit:.0%} or below, linear in between.{beside}</p>")
    source = ""
    if reference is not None:
        measured = f" ({reference.date})" if reference.date else ""
        source = (" Reference solution: the course's own solution, graded once by this grader with its default "
                  f"settings{html.escape(measured, quote=False)}.")
    legend = ("<p>Mean confidence: the classifier's mean probability of the requested digit. Diversity: the "
              "per-pixel standard deviation of a digit's samples, averaged over the pixels; near 0, z barely "
              "changes the image. Decoded images are pixel probabilities, smoother than real digits, so their "
              f"diversity is lower than that of real test digits.{source}</p>")
    reference_distance = ("" if reference is None else
                          f" (the reference solution: {reference.median_nearest_distance:.2f})")
    measures = (f"<p>Within-digit variation (mean pixel std): {stats.within_digit_std:.3f}; median distance to "
                f"the nearest training image: {stats.median_nearest_distance:.2f}{reference_distance}; samples that "
                f"look like shifted, noisy or re-contrasted training images: {stats.disguised_share:.0%}.</p>")
    return accuracy + generation_table_html(stats, reference) + legend + measures


def check_cvae_generation(stats: GenerationStats | None, problem: str | None, full_credit: float,
                          zero_credit: float, grid_html: str = "", story: str = "",
                          accuracies=None, reference: ReferenceStats | None = None) -> Outcome:
    """Score the classifier's accuracy on the samples; ``story`` says how the training run went.

    ``reference`` (the reference solution's statistics, ``reference_stats``) only adds to the
    feedback; without it the feedback omits the reference's values.
    """
    if stats is None:
        return failed(" ".join(part for part in (problem or "No samples came back.", story) if part))
    extra_data = {"generation_stats": stats.as_json()}
    history = ""
    if accuracies is not None and len(accuracies) > 1 and np.isfinite(accuracies).all():
        history = " Accuracy after each epoch: " + ", ".join(f"{a:.0%}" for a in accuracies) + "."
    measured = generation_details_html(stats, full_credit, zero_credit, reference)
    details = f"{measured}<p>{html.escape(story, quote=False)}{history}</p>{grid_html}"
    if stats.within_digit_std < MIN_WITHIN_DIGIT_STD:
        return Outcome(0.0, f"<p>The samples of each digit are (nearly) identical (mean pixel std within a digit "
                       f"{stats.within_digit_std:.3f}, below {MIN_WITHIN_DIGIT_STD}): the decoded image barely "
                       "depends on z, so this earns no generation credit.</p>" + details, "html", extra_data)
    if stats.copied_fraction > MAX_COPIED_FRACTION:
        return Outcome(0.0, f"<p>{stats.copied_fraction:.0%} of the samples are copies of training images "
                       "(distance below 1.0): memorised images earn no generation credit.</p>" + details, "html",
                       extra_data)
    from autograder.scoring.copies import MAX_COPIED_SHARE, MAX_SHIFT

    if stats.disguised_share > MAX_COPIED_SHARE:
        return Outcome(0.0, f"<p>{stats.disguised_share:.0%} of the samples are training images up to a shift of "
                       f"{MAX_SHIFT} pixels, noise or a change of contrast (more than {MAX_COPIED_SHARE:.0%}): copied "
                       "images earn no generation credit.</p>" + details, "html", extra_data)
    if stats.accuracy > full_credit:
        return Outcome(1.0, details, "html", extra_data)
    fraction = float(np.clip((stats.accuracy - zero_credit) / (full_credit - zero_credit), 0.0, 1.0))
    worst = int(np.argmin(stats.per_digit))
    label_use = ""
    if stats.label_spread is not None:
        label_use = (f" Decoding one z with the ten labels changes the image by {stats.label_spread:.3f} (mean "
                     f"pixel std across labels); changing z with the label fixed changes it by "
                     f"{stats.code_spread:.3f}.")
        if stats.label_spread < 1e-6:
            label_use += " The decoder's output does not depend on the label at all."
    details = (f"<p>Below full credit: the classifier recognises {stats.accuracy:.0%} of your samples as the "
               f"digit they were drawn for (the worst digit: {worst}, {stats.per_digit[worst]:.0%}).{label_use}</p>"
               + details)
    return Outcome(fraction, details, "html", extra_data)
# END GRADER ONLY
