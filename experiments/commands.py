"""The experiments of ``python -m experiments``: which runs each trains, its figures, CSV and report.

Each experiment writes under ``config.outputs_dir``: ``runs/<name>/`` per
trained model (see ``experiments.runs``), ``results.csv``, the PNG figures and
``report.md``.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from training import UsageError, progress_bar

from . import figures as ef
from .metrics import (
    Likelihood,
    active_units,
    classifier_scores,
    elbo_terms,
    importance_weighted_nll,
    posterior_stats,
    sample_diversity,
)
from .runs import (
    Data,
    ExperimentConfig,
    RunResult,
    RunSpec,
    execute_run,
    load_data,
    write_text_atomically,
)

SAMPLES_PER_CLASS = 100
# Experiments whose figures read the latent space of an unconditional model.
VAE_ONLY = ("traverse", "manifold", "compare-ae")
CSV_COLUMNS = ("run", "beta", "kl_warmup_epochs", "kl_hold_epochs", "latent_size", "negative_elbo",
               "reconstruction", "kl", "iwae_nll", "active_units", "classifier_accuracy",
               "sample_diversity", "train_seconds", "evaluate_seconds")


@dataclass
class Scorer:
    """The autograder's classifier and its ``predict(classifier, images) -> (N, 10)`` function."""

    classifier: object
    predict: Callable


def run_specs(config: ExperimentConfig) -> list[RunSpec]:
    """The models an experiment trains, in order."""
    z = config.latent_size
    warm, hold = config.kl_warmup_epochs, config.kl_hold_epochs
    if config.experiment == "beta-sweep":
        return [RunSpec(f"beta_{b:g}", b, warm, hold, z) for b in config.betas]
    if config.experiment == "anneal":
        # Without an explicit --kl_warmup_epochs, the ramp takes half of the training.
        ramp = warm if warm > 0 else max(1.0, config.num_epochs / 2)
        return [RunSpec("no_annealing", config.beta, 0.0, 0.0, z),
                RunSpec("annealed", config.beta, ramp, hold, z)]
    if config.experiment == "compare-ae":
        return [RunSpec("autoencoder", 0.0, 0.0, 0.0, z),
                RunSpec("vae", config.beta if config.beta > 0 else 1.0, warm, hold, z)]
    if config.experiment == "manifold":
        return [RunSpec("latent2", config.beta, warm, hold, 2)]
    return [RunSpec("main", config.beta, warm, hold, z)]


def make_evaluator(config: ExperimentConfig, data: Data, scorer: Scorer | None) -> Callable:
    """``evaluate(model, run) -> metrics dict`` on the test set of ``data``."""
    images, labels = data.test_floats(), data.test_labels
    likelihood = Likelihood(config.likelihood, config.sigma)

    def evaluate(model, run: RunSpec) -> dict:
        terms = elbo_terms(model, images, labels, config.cvae, likelihood)
        bar = progress_bar(range(len(images)), f"{run.name} IWAE K={config.iw_samples}")
        done = [0]

        def advance(count: int) -> None:
            bar.update(count - done[0])
            done[0] = count

        iwae = importance_weighted_nll(model, images, labels, config.cvae, likelihood,
                                       config.iw_samples, progress=advance)
        bar.close()
        mu, _ = posterior_stats(model, images, labels, config.cvae)
        units, variances = active_units(mu)
        metrics = {**terms, "iwae_nll": iwae, "iw_samples": config.iw_samples,
                   "active_units": units, "posterior_mean_variance": [float(v) for v in variances],
                   "test_images": len(images), "classifier_accuracy": None}
        rng = np.random.default_rng(config.seed)
        if config.cvae:
            requested = np.repeat(np.arange(10), SAMPLES_PER_CLASS)
            z = rng.standard_normal((len(requested), run.latent_size)).astype(np.float32)
            drawn = ef.decode(model, z, requested)
            metrics["sample_diversity"] = sample_diversity(drawn, requested)
            if scorer is not None:
                scores = classifier_scores(scorer.classifier, scorer.predict, drawn, requested)
                metrics.update({"classifier_accuracy": scores["accuracy"],
                                "per_class_accuracy": scores["per_class_accuracy"],
                                "confusion": scores["confusion"]})
        else:
            z = rng.standard_normal((10 * SAMPLES_PER_CLASS, run.latent_size)).astype(np.float32)
            metrics["sample_diversity"] = sample_diversity(ef.decode(model, z))
        return metrics

    return evaluate


def results_csv(results: list[RunResult]) -> str:
    """One row per run with its settings and test metrics."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in results:
        spec, m = result.spec, result.metrics
        values = {"run": spec.name, "beta": spec.beta, "kl_warmup_epochs": spec.kl_warmup_epochs,
                  "kl_hold_epochs": spec.kl_hold_epochs, "latent_size": spec.latent_size, **m}
        writer.writerow(["" if values.get(c) is None else values.get(c) for c in CSV_COLUMNS])
    return out.getvalue()


def _results_table(report: ef.Report, results: list[RunResult]) -> None:
    header = ["run", "β", "warm-up", "Z", "−ELBO", "reconstruction", "KL", "IWAE NLL", "active units",
              "diversity"]
    rows = [[r.spec.name, f"{r.spec.beta:g}", f"{r.spec.kl_warmup_epochs:g}", r.spec.latent_size,
             r.metrics["negative_elbo"], r.metrics["reconstruction"], r.metrics["kl"],
             r.metrics["iwae_nll"], r.metrics["active_units"], r.metrics["sample_diversity"]]
            for r in results]
    if any(r.metrics.get("classifier_accuracy") is not None for r in results):
        header.append("sample accuracy")
        for row, r in zip(rows, results):
            accuracy = r.metrics.get("classifier_accuracy")
            row.append("" if accuracy is None else f"{100 * accuracy:.1f}%")
    report.table(header, rows)


def best_beta(results: list[RunResult]) -> RunResult:
    """The run with the lowest importance-weighted NLL estimate: the best density model."""
    return min(results, key=lambda r: r.metrics["iwae_nll"])


def run_experiment(config: ExperimentConfig, scorer: Scorer | None, scorer_note: str,
                   log: Callable[[str], None] = print) -> Path:
    """Run ``config.experiment`` end to end and return the path of its report."""
    if config.cvae and config.experiment in VAE_ONLY:
        raise UsageError(f"{config.experiment} draws the latent space of the plain VAE; drop --cvae")
    if config.weights is not None and config.experiment != "evaluate":
        raise UsageError("--weights is for the evaluate experiment only")
    started = time.perf_counter()
    out = Path(config.outputs_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(config)
    log(f"{config.dataset}: {data.source} ({len(data.train_labels)} training, "
        f"{len(data.test_labels)} test images{', binarized ' + config.binarize if config.binarize != 'none' else ''})")
    if config.cvae and scorer is None:
        log(scorer_note)
    evaluate = make_evaluator(config, data, scorer)
    results = [execute_run(config, spec, data, evaluate, log) for spec in run_specs(config)]
    write_text_atomically(results_csv(results), out / "results.csv")

    report = ef.Report(f"Experiment: {config.experiment}")
    settings = ", ".join(f"{k} = {v}" for k, v in vars(config).items()
                         if k not in ("outputs_dir", "data_dir", "device"))
    report.text(f"Settings: {settings}.")
    report.text(f"Data: {config.dataset} from {data.source}; metrics on {len(data.test_labels)} test "
                f"images, in nats per image, with the {config.likelihood} likelihood"
                + (f" (σ = {config.sigma:g})" if config.likelihood == "gaussian" else "") + ". "
                "−ELBO is a one-sample estimate; IWAE NLL is the importance-weighted estimate of "
                f"−log p(x) with K = {config.iw_samples} (a tighter bound). Active units: latent "
                "dimensions whose posterior mean varies by more than 0.01 over the test set. "
                "Diversity: mean distance between two samples (of the same requested digit for a CVAE).")
    if config.binarize == "none" and config.likelihood == "bernoulli":
        report.text("The images are grey levels, so the Bernoulli 'likelihood' is the cross-entropy "
                    "the assignment trains with, not a true likelihood; use --binarize dynamic for "
                    "numbers comparable with the literature.")
    if config.cvae and scorer is None:
        report.text(scorer_note)
    report.heading("Results")
    _results_table(report, results)

    images, labels = data.test_floats(), data.test_labels
    primary = results[-1]
    if config.experiment == "beta-sweep":
        primary = best_beta(results)
        rows = [{"beta": r.spec.beta, **r.metrics} for r in results]
        path = ef.beta_sweep_plot(rows, out / "beta_sweep.png")
        report.figure(path, out, "Test metrics against β (symmetric log axis, linear below 0.5 so that β = 0 fits)")
        report.text(f"Best β = {primary.spec.beta:g}, by the criterion: the lowest importance-weighted "
                    "estimate of the test negative log-likelihood (the best density model; the ELBO "
                    "itself is only a bound, and its reconstruction and KL trade off against each other as β "
                    "changes).")
    if config.experiment == "compare-ae":
        pairs = np.random.default_rng(config.seed).choice(len(images), size=(8, 2), replace=False).reshape(-1)
        models = {f"{r.spec.name} (β = {r.spec.beta:g})": r.model for r in results}
        mus = {name: posterior_stats(model, images[pairs])[0] for name, model in models.items()}
        path = ef.interpolations_side_by_side(models, mus, out / "interpolation_ae_vs_vae.png")
        report.figure(path, out, "Interpolation between the codes of two test images: the plain autoencoder "
                      "(β = 0, left) and the VAE (right)")
        path = ef.samples(results[0].model, results[0].spec.latent_size, False, out / "samples_autoencoder.png",
                          config.seed)
        report.figure(path, out, "The plain autoencoder decoding z ~ N(0, I): its codes do not follow the prior")
    if config.experiment == "traverse":
        mu, _ = posterior_stats(primary.model, images)
        order = np.argsort(primary.metrics["kl_per_dim"])[::-1]
        path = ef.traversals(primary.model, mu[0], order, out / "traversals.png")
        report.figure(path, out, "Single-dimension traversals around the code of a test image, the "
                      "dimensions with the most KL first")
        path = ef.attribute_arithmetic(primary.model, mu, images, labels, out / "attribute_arithmetic.png")
        report.figure(path, out, "Attribute arithmetic with mean codes: each digit's mean code (top), and test "
                      "codes moved along (mean code of thick digits − mean code of thin digits)")
    if config.experiment == "manifold":
        path = ef.manifold(primary.model, out / "manifold.png")
        report.figure(path, out, "The decoder over a grid of the 2-D latent space")
        mu, _ = posterior_stats(primary.model, images)
        path = ef.code_scatter(mu, labels, out / "latent_codes.png")
        report.figure(path, out, "Posterior means of the test images, coloured by digit")

    report.heading(f"Run {primary.spec.name}")
    path = ef.reconstructions(primary.model, images, labels if config.cvae else None,
                              out / "reconstructions.png")
    report.figure(path, out, "Test inputs and their reconstructions (decoded posterior means)")
    path = ef.samples(primary.model, primary.spec.latent_size, config.cvae, out / "samples.png", config.seed)
    report.figure(path, out, "Samples from the prior")
    if primary.metrics.get("confusion") is not None:
        path = ef.confusion_figure(np.array(primary.metrics["confusion"]), out / "confusion.png")
        report.figure(path, out, "Which digit the autograder's classifier sees in samples drawn for each label")
    histories = {r.spec.name: r.history for r in results if r.history}
    if histories:
        path = ef.training_curves(histories, out / "training_curves.png")
        report.figure(path, out, "Training curves: averages per training image over each epoch; active "
                      "units on 1,000 test images after each epoch")
    report.text(f"Wall time of this invocation: {time.perf_counter() - started:.1f} s "
                f"({sum(r.skipped for r in results)} of {len(results)} runs reused from earlier).")
    path = write_text_atomically(report.render(), out / "report.md")
    log(f"Wrote {out / 'results.csv'} and {path}")
    return path
