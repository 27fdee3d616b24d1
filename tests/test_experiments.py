"""Tests for the experiments package's command line (``experiments/cli.py``, ``__main__.py``), end to end.

Each command runs through ``cli.main`` with --quick budgets, so ``commands.py``
and ``figures.py`` are tested here too; ``runs.py`` and ``datasets.py`` have
their own test files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder.scoring import classifier
from experiments import cli

REPO_DIR = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not os.environ.get("MNIST_DATA_DIR"), reason="MNIST_DATA_DIR is not set")


def run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_traverse_writes_figures_and_resumes(tmp_path, capsys):
    out = tmp_path / "traverse"
    argv = ["traverse", "--quick", "--outputs_dir", str(out)]
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0
    assert "KL weight 1" in stdout and "active units" in stdout
    for name in ("traversals.png", "attribute_arithmetic.png", "reconstructions.png", "samples.png",
                 "training_curves.png", "report.md", "results.csv"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "](traversals.png)" in report and "IWAE NLL" in report
    saved = json.loads((out / "runs" / "main" / "metrics.json").read_text())
    assert saved["metrics"]["iwae_nll"] <= saved["metrics"]["negative_elbo"] + 1.0
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0 and "finished earlier, skipped" in stdout and "main: training" not in stdout


@pytest.mark.slow
def test_beta_sweep_csv_plot_and_best_beta(tmp_path, capsys):
    out = tmp_path / "sweep"
    code, _, _ = run_cli(["beta-sweep", "--quick", "--betas", "0", "1", "--outputs_dir", str(out)], capsys)
    assert code == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [float(r["beta"]) for r in rows] == [0.0, 1.0]
    assert float(rows[0]["kl"]) > float(rows[1]["kl"])
    assert (out / "beta_sweep.png").stat().st_size > 0
    assert "Best β =" in (out / "report.md").read_text()


@pytest.mark.slow
def test_anneal_logs_the_ramp(tmp_path, capsys):
    out = tmp_path / "anneal"
    code, stdout, _ = run_cli(["anneal", "--quick", "--kl_warmup_epochs", "2", "--outputs_dir", str(out)], capsys)
    assert code == 0
    # The weight is logged at the last of 16 steps per epoch: after epoch 1 of a
    # 2-epoch ramp it is 15/16 / 2 = 0.469.
    assert "KL weight 0.469" in stdout
    histories = json.loads((out / "runs" / "annealed" / "metrics.json").read_text())["history"]
    assert [round(h["kl_weight"], 2) for h in histories] == [0.47, 0.97, 1.0]
    assert (out / "training_curves.png").stat().st_size > 0


@pytest.mark.slow
def test_manifold_and_compare_ae_figures(tmp_path, capsys):
    out = tmp_path / "manifold"
    assert run_cli(["manifold", "--quick", "--outputs_dir", str(out)], capsys)[0] == 0
    assert (out / "manifold.png").stat().st_size > 0 and (out / "latent_codes.png").stat().st_size > 0
    out = tmp_path / "compare"
    assert run_cli(["compare-ae", "--quick", "--outputs_dir", str(out)], capsys)[0] == 0
    assert (out / "interpolation_ae_vs_vae.png").stat().st_size > 0
    assert (out / "samples_autoencoder.png").stat().st_size > 0


@pytest.mark.slow
def test_evaluate_conv_cvae_gaussian_binarized(tmp_path, capsys):
    out = tmp_path / "evaluate"
    code, stdout, _ = run_cli(["evaluate", "--quick", "--cvae", "--arch", "conv", "--likelihood", "gaussian",
                               "--sigma", "0.3", "--binarize", "dynamic", "--outputs_dir", str(out)], capsys)
    assert code == 0
    metrics = json.loads((out / "runs" / "main" / "metrics.json").read_text())["metrics"]
    assert metrics["sample_diversity"] > 0
    if classifier.CLASSIFIER_PATH.is_file():
        # The classifier is in the repository: its score is demanded, never a skip.
        assert "Classifier accuracy skipped" not in stdout
        confusion = np.array(metrics["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == 1000
        assert metrics["classifier_accuracy"] == pytest.approx(np.trace(confusion) / 1000)
        # Chance is 0.1; this quick run's samples score about 0.5.
        assert metrics["classifier_accuracy"] > 0.2
        assert (out / "confusion.png").stat().st_size > 0
    else:
        assert metrics["classifier_accuracy"] is None and "Classifier accuracy skipped" in stdout


def test_only_a_missing_classifier_file_skips_the_score(tmp_path, monkeypatch):
    scorer, note = cli.load_scorer()
    assert scorer is not None and note == ""
    monkeypatch.setattr(classifier, "CLASSIFIER_PATH", tmp_path / "missing.keras")
    scorer, note = cli.load_scorer()
    assert scorer is None
    assert note.startswith("Classifier accuracy skipped: there is no classifier at ") and "missing.keras" in note


@pytest.fixture(params=["changed", "unreadable"])
def broken_classifier(request, tmp_path, monkeypatch):
    """The first half of the classifier's file, put where the command looks for it; returns what the error names."""
    path = tmp_path / "classifier.keras"
    data = classifier.CLASSIFIER_PATH.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(classifier, "CLASSIFIER_PATH", path)
    if request.param == "changed":
        return "has SHA-256"
    # With the recorded hash made to match, Keras itself has to read the truncated archive.
    monkeypatch.setattr(classifier, "CLASSIFIER_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return "classifier.keras"


def test_a_broken_classifier_fails_the_command_in_one_line(broken_classifier, tmp_path, capsys):
    out = tmp_path / "evaluate"
    code, stdout, err = run_cli(["evaluate", "--quick", "--cvae", "--outputs_dir", str(out)], capsys)
    assert code == 1
    assert err.startswith("python -m experiments: error: the classifier that scores the CVAE's samples could "
                          "not be loaded: ") and err.count("\n") == 1, err
    assert broken_classifier in err
    # The command stops before it trains: nothing was skipped, nothing was written.
    assert "skipped" not in stdout and not out.exists()


def test_usage_errors_are_one_line(tmp_path, capsys):
    for argv in (["manifold", "--cvae", "--quick"], ["traverse", "--weights", str(tmp_path / "none.h5")],
                 ["evaluate", "--dataset", "cifar"]):
        code, _, err = run_cli(argv + ["--outputs_dir", str(tmp_path / "out")], capsys)
        assert code == 2 and err.count("\n") == 1, argv


@pytest.mark.slow
def test_python_m_experiments_help():
    done = subprocess.run([sys.executable, "-m", "experiments", "--help"], cwd=REPO_DIR, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m experiments")
    for name in ("beta-sweep", "anneal", "traverse", "manifold", "compare-ae", "evaluate", "--quick", "--dataset"):
        assert name in done.stdout
