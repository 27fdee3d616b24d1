"""Check your functions with the autograder's own unit checks, on your machine, in seconds.

Usage (from this folder)::

    python check.py                  # every unit check, in seconds
    python check.py --training       # and the grader's training of your VAE and CVAE (minutes)
    python check.py --data_dir DIR   # MNIST from DIR (as in assignment.py)

It runs the grader's unit checks (one_hot, reparametrize, loss_function, the
forward passes of VAE and CVAE, and a few batches of train_vae) on your
vae.py and assignment.py, and prints for each check whether it passes and,
if not, the grader's feedback. Your code runs in a child process, so a crash
still leaves a report.

With ``--training`` it then trains your VAE and CVAE exactly as the grader
does (its latent sizes, learning rate schedule, batch size, epoch caps and
time limit) with your train_vae, and gives the grader's feedback on "VAE
training", with the loss measured by your own loss_function. The grader's
classifier stays with the grader: the CVAE's samples for the grader's codes
are saved as a picture (outputs/check_cvae_samples.png) for you to judge.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

CODE_DIR = Path(__file__).resolve().parent
# Limits of the child that runs every probe, and of a probe run again on its own after a crash.
ALL_PROBES_SECONDS = 300
ONE_PROBE_SECONDS = 120
FEEDBACK_INDENT = "       "
# TensorFlow's start-up log lines, left out of the output shown after a crash.
TF_LOG_LINE = re.compile(r"(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d)")


@dataclass
class SelfCheck:
    """The grader's unit checks and request builder, its harness, and the expected values of the checks."""

    checks: ModuleType
    requests: ModuleType
    harness: Path
    expected: Callable[[dict], dict]
    # The grader's training budget, time limit and bars (small=True: its quick budget).
    training_config: Callable[[bool], Any]


def grader_modules() -> SelfCheck:
    """The grader's checks, request builder and harness, and where the expected values come from.

    In the student release they are the ``_selfcheck/`` copies (without the
    grader's formulas) and the values the release stored for the self-check's
    seed; in the course repository, the ``autograder`` package itself.
    """
    bundled = CODE_DIR / "_selfcheck"
    if bundled.is_dir():
        if str(CODE_DIR) not in sys.path:
            sys.path.insert(0, str(CODE_DIR))
        from _selfcheck import checks, requests

        stored = json.loads((bundled / "expected.json").read_text())

        def expected(request: dict) -> dict:
            if int(request["seed"]) != stored["seed"]:
                raise ValueError(f"the stored expected values are for seed {stored['seed']}, not {request['seed']}")
            return {key: np.asarray(value) for key, value in stored["values"].items()}

        def training_config(small: bool) -> SimpleNamespace:
            return as_namespace(stored["training"]["small" if small else "full"])

        return SelfCheck(checks, requests, bundled / "harness.py", expected, training_config)
    repo = CODE_DIR.parent.parent
    if (repo / "autograder" / "checks.py").is_file():
        if str(repo) not in sys.path:
            sys.path.insert(0, str(repo))
        from autograder import checks, requests
        from autograder.config import GradeConfig

        return SelfCheck(checks, requests, repo / "autograder" / "harness.py", checks.expected_values,
                         lambda small: GradeConfig().small() if small else GradeConfig())
    raise FileNotFoundError(f"the _selfcheck folder is missing from {CODE_DIR}; "
                            "copy it back from the assignment's release")


def as_namespace(value):
    """JSON objects as attribute namespaces (the stored settings read like the grader's config)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{key: as_namespace(item) for key, item in value.items()})
    return value


def mnist_arrays(data_dir: str | None):
    """MNIST's arrays from your data setup (as in assignment.py), or the reason they are unavailable."""
    from mnist_data import DataError, load_arrays

    try:
        return load_arrays(data_dir), None
    except DataError as error:
        return None, str(error)


def describe_exit(returncode: int | None, seconds: float) -> str:
    """How the child ended, completing "No result came back: the program ..."."""
    if returncode is None:
        return f"was stopped after {seconds:.0f} s, the time limit"
    if returncode < 0:
        return f"was killed by signal {signal.Signals(-returncode).name}"
    if returncode != 0:
        return f"exited with status {returncode}"
    return "ended before returning its results (does it call sys.exit or os._exit?)"


def run_harness(harness: Path, task: str, work: Path, seconds: float, request_name: str = "request.npz",
                extra: tuple[str, ...] = ()) -> tuple[dict, str, str]:
    """Run one harness task on the code in this folder; returns its arrays, how it ended and its output."""
    request, result = work / request_name, work / f"result-{task.replace(':', '-')}.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg")
    start = time.monotonic()
    try:
        child = subprocess.run([sys.executable, str(harness), task, str(request), str(result), *extra],
                               cwd=CODE_DIR, env=env, capture_output=True, text=True, timeout=seconds)
        returncode, output = child.returncode, child.stdout + child.stderr
    except subprocess.TimeoutExpired as error:
        returncode = None
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part or ""
                         for part in (error.stdout, error.stderr))
    return load_result(result), describe_exit(returncode, time.monotonic() - start), output


def load_result(path: Path) -> dict:
    """The child's arrays (float64) and messages (str), as the grader reads them; empty when none."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: str(data[key]) if data[key].dtype.kind == "U" else data[key].astype(np.float64)
                    for key in data.files}
    except (OSError, ValueError):
        return {}


def run_probes(checks, harness: Path, work: Path) -> tuple[dict[str, tuple[dict, str]], list[str]]:
    """Every probe in one child; a probe it did not reach runs again in a child of its own, as in the grader.

    Returns each probe's (arrays, how its child ended) and the output of any
    child that failed.
    """
    shutil.copyfile(harness, work / "harness.py")
    arrays, detail, output = run_harness(work / "harness.py", "units", work, ALL_PROBES_SECONDS)
    runs = {probe: (arrays, detail) for probe in checks.UNIT_CHECKS}
    failures = [output] if not all(f"done.{probe}" in arrays for probe in runs) else []
    for probe in checks.probes_to_run_alone(arrays):
        alone, alone_detail, alone_output = run_harness(work / "harness.py", f"unit:{probe}", work,
                                                        ONE_PROBE_SECONDS)
        runs[probe] = (alone, alone_detail)
        if f"done.{probe}" not in alone:
            failures.append(alone_output)
    return runs, failures


def print_check(status: str, name: str, points: str, feedback: str) -> None:
    print(f"[{status}] {name} ({points})")
    # Long words (paths) stay whole, so that they can be copied.
    print(textwrap.fill(" ".join(feedback.split()), width=100, initial_indent=FEEDBACK_INDENT,
                        subsequent_indent=FEEDBACK_INDENT, break_long_words=False, break_on_hyphens=False))


def print_output_tail(output: str) -> None:
    """The last lines a failed child printed, without TensorFlow's start-up log."""
    lines = [line for line in output.strip().splitlines() if not TF_LOG_LINE.match(line)]
    if lines:
        tail = textwrap.indent("\n".join(lines[-15:]), "    ")
        print(f"\nThe last lines your code printed before it stopped:\n{tail}")


def print_report(checks, runs: dict, request: dict, failures: list[str], skip_train_vae: bool) -> bool:
    """Score every probe with the grader's checks and print the report; True when every check run passes."""
    passed = failed = 0
    earned = possible = 0.0
    for key, check in checks.UNIT_CHECKS.items():
        spec = checks.CHECKS_BY_KEY[key]
        if key == "train_vae" and skip_train_vae:
            print_check("SKIP", spec.name, f"-/{spec.points:g} points",
                        "Not checked: MNIST is not available (see above). Set MNIST_DATA_DIR or pass "
                        "--data_dir, as for assignment.py.")
            continue
        arrays, detail = runs[key]
        outcome = check(arrays, request, detail)
        score = spec.points * outcome.fraction
        earned, possible = earned + score, possible + spec.points
        ok = outcome.fraction >= 1.0
        passed, failed = passed + ok, failed + (not ok)
        print_check("PASS" if ok else "FAIL", spec.name, f"{score:g}/{spec.points:g} points", outcome.feedback)
    for output in failures:
        print_output_tail(output)
    skipped = f", {checks.CHECKS_BY_KEY['train_vae'].name} skipped" if skip_train_vae else ""
    training = ", ".join(f"{spec.name} ({spec.points:g} points)" for spec in checks.CHECKS
                         if spec.key not in checks.UNIT_CHECKS)
    print(f"\n{passed} of {passed + failed} checks pass{skipped}: {earned:g} of {possible:g} points. "
          f"The training checks, {training}, run with --training.")
    return failed == 0


def save_samples(samples: np.ndarray, labels: np.ndarray, per_label: int = 10) -> Path:
    """The first ``per_label`` samples of each label as a grid, one row per label; returns the PNG's path.

    samples: (N, 1, 28, 28) in [0, 1]; labels: (N,) the label each was drawn for.
    """
    from figures import image_grid_figure, save_figure
    from training import DEFAULT_OUTPUTS_DIR

    rows = [np.flatnonzero(labels == label)[:per_label] for label in range(10)]
    grid = np.clip(samples[np.concatenate(rows)], 0.0, 1.0)
    figure = image_grid_figure(grid, 10, per_label, "Your CVAE's samples for the grader's codes", row_labels=range(10))
    return save_figure(figure, DEFAULT_OUTPUTS_DIR / "check_cvae_samples.png")


def run_training_checks(found: SelfCheck, arrays, small: bool, work: Path) -> bool:
    """Train the VAE and the CVAE as the grader does and print its feedback; True when "VAE training" passes."""
    checks, requests = found.checks, found.requests
    config = found.training_config(small)
    budget, seconds = config.budget, float(config.train_limits.wall_seconds)
    request = requests.training_request(config, requests.SELF_CHECK_SEED, arrays)
    # The grader stops the CVAE's training once its classifier is satisfied; here it trains to the cap.
    request["cvae.ask_grader"] = np.bool_(False)
    requests.save_request(work / "training.npz", request)
    schedule = (f"batches of {budget.batch_size} from {budget.train_images:,} training images, Adam at "
                f"{budget.learning_rate:g} with a cosine decay")
    print(f"\nTraining your VAE as the grader does (latent size {budget.vae_latent_size}, {schedule}; at most "
          f"{budget.vae_epochs} epochs and {seconds / 60:.0f} minutes)...", flush=True)
    result, detail, output = run_harness(work / "harness.py", "train_vae", work, seconds + 60, "training.npz",
                                         (str(seconds),))
    spec = checks.CHECKS_BY_KEY["vae_training"]
    outcome = checks.check_vae_training(result, request, detail, config)
    print_check("PASS" if outcome.fraction >= 1 else "FAIL", spec.name,
                f"{spec.points * outcome.fraction:g}/{spec.points:g} points", outcome.feedback)
    if "done.vae" not in result:
        print_output_tail(output)

    print(f"\nTraining your CVAE as the grader does (latent size {budget.cvae_latent_size}, {schedule}; "
          f"{budget.cvae_epochs} epochs, at most {seconds / 60:.0f} minutes)...", flush=True)
    result, detail, output = run_harness(work / "harness.py", "train_cvae", work, seconds + 60, "training.npz",
                                         (str(seconds),))
    spec = checks.CHECKS_BY_KEY["cvae_generation"]
    if "cvae.epoch_seconds" not in result or "cvae.samples" not in result:
        print_check("FAIL", spec.name, f"0/{spec.points:g} points", checks.no_epoch_finished(result, "cvae", detail))
        print_output_tail(output)
        return False
    path = save_samples(result["cvae.samples"], request["cvae.sample_labels"])
    story = checks.training_story(result, "cvae", detail, int(request["cvae_epochs"]), None)
    print_check("INFO", spec.name, f"?/{spec.points:g} points",
                f"{story} Not scored here: the grader's classifier, which scores these samples, stays with the "
                f"grader; full credit needs more than {config.generation_full_credit:.0%} of them recognised as "
                f"their label (the grader stops training as soon as they are). Look at your CVAE's samples for "
                f"the grader's codes, one row per label: each row should show its label's digit, in varied "
                f"styles. They are in {path}")
    if "done.cvae" not in result:
        print_output_tail(output)
    return outcome.fraction >= 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None,
                        help="folder with the MNIST files (default: $MNIST_DATA_DIR, then the cache, "
                             "then a download)")
    parser.add_argument("--training", action="store_true",
                        help="also train your VAE and CVAE as the grader does (a few minutes)")
    parser.add_argument("--small", action="store_true",
                        help="with --training: the grader's small budget (fewer images and epochs), a quick try")
    args = parser.parse_args(argv)
    try:
        found = grader_modules()
    except (FileNotFoundError, ImportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    checks, requests = found.checks, found.requests
    arrays, no_data = mnist_arrays(args.data_dir)
    if no_data:
        print(f"MNIST is not available, so train_vae is not checked:\n{textwrap.indent(no_data, '    ')}\n")
        # The train_vae probe still needs images to run on; its result is not scored.
        images, labels = np.zeros((512, 28, 28), np.uint8), np.zeros(512, np.int64)
    else:
        images, labels = arrays.train_images, arrays.train_labels
    request = requests.unit_request(requests.SELF_CHECK_SEED, images, labels)
    print(f"Checking vae.py and assignment.py in {CODE_DIR} with the autograder's unit checks...",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="vae-check-") as work:
        work = Path(work)
        requests.save_request(work / "request.npz", request)
        # What the checks compare with joins the request only after the child's copy is written.
        request.update(found.expected(request))
        runs, failures = run_probes(checks, found.harness, work)
        units_pass = print_report(checks, runs, request, failures, skip_train_vae=bool(no_data))
        if not args.training:
            return 0 if units_pass else 1
        if no_data:
            print("\nThe training checks need MNIST: set MNIST_DATA_DIR or pass --data_dir, as for assignment.py.")
            return 1
        training_passes = run_training_checks(found, arrays, args.small, work)
    return 0 if units_pass and training_passes else 1


if __name__ == "__main__":
    sys.exit(main())
