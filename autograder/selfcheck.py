"""The students' self-check, ``python check.py``: the grader's own checks, run on their machine.

``check.py`` beside the students' files only calls ``main``. The release ships this module in
``_selfcheck/`` with the grader's checks, harness and request builder, without their grader-only
parts, and stores what the checks compare with as data (``expected.json``); in the course
repository the same code runs from the ``autograder`` package, which computes those values.

The unit checks (one_hot, reparametrize, loss_function, the forward passes, a few batches of
train_vae) run every probe in one child process, as the grader does, so a crash still leaves a
report. ``--training`` then trains the student's VAE and CVAE as the grader does (its latent sizes,
learning rate schedule, batches, epoch caps and time limit) and gives the grader's "VAE training"
feedback; the classifier stays with the grader, so the CVAE's samples are saved as a picture.
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
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from .scoring import checks, requests

PACKAGE_DIR = Path(__file__).resolve().parent
HARNESS = PACKAGE_DIR / "children" / "harness.py"
EXPECTED_FILE = PACKAGE_DIR / "expected.json"
# Limits of the child that runs every probe, and of a probe run again on its own after a crash.
ALL_PROBES_SECONDS = 300
ONE_PROBE_SECONDS = 120
# How often a running child's result file is looked at, for the progress of a training.
PROGRESS_POLL_SECONDS = 1.0
FEEDBACK_INDENT = "       "
# TensorFlow's start-up log lines, left out of the output shown after a crash.
TF_LOG_LINE = re.compile(r"(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d)")


def stored_values() -> tuple[Callable[[dict], dict], Callable[[bool], Any]]:
    """What the checks compare with: ``expected(request)``, and ``training_config(small)``.

    The release stores them as data beside this module (``expected.json``, for the self-check's
    seed); in the course repository the grader computes them.
    """
    if EXPECTED_FILE.is_file():
        stored = json.loads(EXPECTED_FILE.read_text())

        def expected(request: dict) -> dict:
            if int(request["seed"]) != stored["seed"]:
                raise ValueError(f"the stored expected values are for seed {stored['seed']}, not {request['seed']}")
            return {key: np.asarray(value) for key, value in stored["values"].items()}

        def training_config(small: bool) -> SimpleNamespace:
            return as_namespace(stored["training"]["small" if small else "full"])

        return expected, training_config
    # BEGIN GRADER ONLY
    from .config import GradeConfig

    return checks.expected_values, lambda small: GradeConfig().small() if small else GradeConfig()
    # END GRADER ONLY
    raise FileNotFoundError(f"{EXPECTED_FILE} is missing: copy the _selfcheck folder back from the "
                            "assignment's release")


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


def run_harness(code_dir: Path, task: str, work: Path, seconds: float, request_name: str = "request.npz",
                extra: tuple[str, ...] = (), on_progress: Callable[[dict], None] | None = None
                ) -> tuple[dict, str, str]:
    """Run one harness task (the copy in ``work``) on the code in ``code_dir``.

    ``on_progress`` gets the child's arrays each time its result file changes (the harness saves
    it after every step and epoch). Returns the child's arrays, how it ended and its output.
    """
    request, result = work / request_name, work / f"result-{task.replace(':', '-')}.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", MPLBACKEND="Agg")
    start = time.monotonic()
    seen = None
    # The output goes to a file, not a pipe, so that a child that prints a lot never blocks.
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen([sys.executable, str(work / "harness.py"), task, str(request), str(result), *extra],
                                 cwd=code_dir, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                 stderr=subprocess.STDOUT)
        while True:
            try:
                returncode = child.wait(timeout=PROGRESS_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - start > seconds:
                    child.kill()
                    child.wait()
                    returncode = None
                    break
            if on_progress is not None and result.is_file() and result.stat().st_mtime_ns != seen:
                seen = result.stat().st_mtime_ns
                on_progress(requests.load_result_file(result))
        output.seek(0)
        text = output.read().decode(errors="replace")
    arrays = requests.load_result_file(result)
    if on_progress is not None:
        on_progress(arrays)
    return arrays, describe_exit(returncode, time.monotonic() - start), text


def epochs(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def epoch_printer(prefix: str, max_epochs: int) -> Callable[[dict], None]:
    """An ``on_progress`` that prints one line per finished epoch of the ``prefix`` model's training."""
    shown = 0

    def show(arrays: dict) -> None:
        nonlocal shown
        seconds, metric = arrays.get(f"{prefix}.epoch_seconds"), arrays.get(f"{prefix}.metric")
        if seconds is None:
            return
        for epoch in range(shown, len(seconds)):
            loss = ""
            if metric is not None and epoch < len(metric) and np.isfinite(metric[epoch]):
                loss = f": test loss {metric[epoch]:.1f} per image"
            print(f"  epoch {epoch + 1}/{max_epochs}{loss}  [{seconds[epoch]:.1f} s]", flush=True)
        shown = max(shown, len(seconds))

    return show


def run_probes(code_dir: Path, work: Path) -> tuple[dict[str, tuple[dict, str]], list[str]]:
    """Every probe in one child; a probe it did not reach runs again in a child of its own, as in the grader.

    Returns each probe's (arrays, how its child ended) and the output of any
    child that failed.
    """
    shutil.copyfile(HARNESS, work / "harness.py")
    arrays, detail, output = run_harness(code_dir, "units", work, ALL_PROBES_SECONDS)
    runs = {probe: (arrays, detail) for probe in checks.UNIT_CHECKS}
    failures = [output] if not all(f"done.{probe}" in arrays for probe in runs) else []
    for probe in checks.probes_to_run_alone(arrays):
        alone, alone_detail, alone_output = run_harness(code_dir, f"unit:{probe}", work, ONE_PROBE_SECONDS)
        runs[probe] = (alone, alone_detail)
        if f"done.{probe}" not in alone:
            failures.append(alone_output)
    return runs, failures


def print_check(status: str, name: str, points: str, feedback: str) -> None:
    print(f"[{status}] {name} ({points})")
    # Long words (paths) stay whole, so that they can be copied.
    print(textwrap.fill(" ".join(feedback.split()), width=100, initial_indent=FEEDBACK_INDENT,
                        subsequent_indent=FEEDBACK_INDENT, break_long_words=False, break_on_hyphens=False))


def print_skip(spec, reason: str) -> None:
    """A check that is not judged here, and why."""
    print_check("SKIP", spec.name, f"-/{spec.points:g} points", reason)


def print_output_tail(output: str) -> None:
    """The last lines a failed child printed, without TensorFlow's start-up log."""
    lines = [line for line in output.strip().splitlines() if not TF_LOG_LINE.match(line)]
    if lines:
        tail = textwrap.indent("\n".join(lines[-15:]), "    ")
        print(f"\nThe last lines your code printed before it stopped:\n{tail}")


def own_loss_caveat(outcomes: dict) -> str | None:
    """Why a check measured with the student's loss_function is not judged here, or None when it can be.

    The self-check measures a model's loss with the student's own ``loss_function`` (the release
    ships no code that computes it); the grader computes the loss itself. While ``loss_function`` fails
    its check, those measurements say nothing about the grader's verdict.
    """
    loss_check = outcomes.get("loss_function")
    if loss_check is None or loss_check.fraction >= 1:
        return None
    return ("Not judged here: this self-check measures the loss with your loss_function, which lost points "
            "above, while the grader computes the loss itself. Fix loss_function, then run check.py again.")


def print_report(runs: dict, request: dict, failures: list[str], skip_train_vae: bool) -> tuple[bool, dict]:
    """Score every probe with the grader's checks and print the report.

    Returns whether every check run passes, and each check's outcome.
    """
    passed = failed = 0
    earned = possible = 0.0
    outcomes, skipped = {}, []
    shown_errors = set()
    for key, check in checks.UNIT_CHECKS.items():
        spec = checks.CHECKS_BY_KEY[key]
        if key == "train_vae" and skip_train_vae:
            skip_reason = ("Not checked: MNIST is not available (see above). Set MNIST_DATA_DIR or pass "
                           "--data_dir, as for assignment.py.")
        else:
            arrays, detail = runs[key]
            outcome = outcomes[key] = check(arrays, request, detail)
            # A train_vae that ran is judged by losses measured with loss_function; one that failed is not.
            caveat = own_loss_caveat(outcomes) if key == "train_vae" and "train_vae.returned" in arrays else None
            skip_reason = f"{caveat} With your loss_function: {outcome.feedback}" if caveat else None
        if skip_reason:
            skipped.append(spec.name)
            print_skip(spec, skip_reason)
            continue
        score = spec.points * outcome.fraction
        earned, possible = earned + score, possible + spec.points
        ok = outcome.fraction >= 1.0
        passed, failed = passed + ok, failed + (not ok)
        # An import that fails stops several probes with the same error: it is shown in full once.
        feedback = outcome.feedback
        if feedback.startswith("Your code raised an error: `importing") and feedback in shown_errors:
            feedback = "Your code raised the same error as above."
        shown_errors.add(outcome.feedback)
        print_check("PASS" if ok else "FAIL", spec.name, f"{score:g}/{spec.points:g} points", feedback)
    for output in failures:
        print_output_tail(output)
    not_judged = f", {' and '.join(skipped)} not judged" if skipped else ""
    training = ", ".join(f"{spec.name} ({spec.points:g} points)" for spec in checks.CHECKS
                         if spec.key not in checks.UNIT_CHECKS)
    print(f"\n{passed} of {passed + failed} checks pass{not_judged}: {earned:g} of {possible:g} points. "
          f"The training checks, {training}, run with --training.")
    return failed == 0, outcomes


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


def run_training_checks(code_dir: Path, config, arrays, work: Path, unit_outcomes: dict) -> bool:
    """Train the VAE and the CVAE as the grader does (``config``: its settings) and print its feedback.

    ``unit_outcomes`` are the unit checks' outcomes: a failing training check names those that lost
    points, as the grader's does. True when "VAE training" passes.
    """
    budget, seconds = config.budget, float(config.train_limits.wall_seconds)
    request = requests.training_request(config, requests.SELF_CHECK_SEED, arrays)
    # The grader stops the CVAE's training once its classifier is satisfied; here it trains to the cap.
    request["cvae.ask_grader"] = np.bool_(False)
    requests.save_request(work / "training.npz", request)
    schedule = (f"batches of {budget.batch_size} from {budget.train_images:,} training images, Adam at "
                f"{budget.learning_rate:g} with a cosine decay")
    print(f"\nTraining your VAE as the grader does (latent size {budget.vae_latent_size}, {schedule}; at most "
          f"{epochs(budget.vae_epochs)} and {seconds / 60:.0f} minutes)...", flush=True)
    result, detail, output = run_harness(code_dir, "train_vae", work, seconds + 60, "training.npz", (str(seconds),),
                                         epoch_printer("vae", budget.vae_epochs))
    spec = checks.CHECKS_BY_KEY["vae_training"]
    outcome = checks.with_upstream(checks.check_vae_training(result, request, detail, config),
                                   checks.failed_upstream(unit_outcomes, "vae_training"))
    # A training that finished an epoch is judged by a loss measured with loss_function.
    caveat = own_loss_caveat(unit_outcomes) if "vae.epoch_seconds" in result else None
    if caveat:
        print_skip(spec, f"{caveat} With your loss_function: {outcome.feedback}")
    else:
        print_check("PASS" if outcome.fraction >= 1 else "FAIL", spec.name,
                    f"{spec.points * outcome.fraction:g}/{spec.points:g} points", outcome.feedback)
    if "done.vae" not in result:
        print_output_tail(output)

    print(f"\nTraining your CVAE as the grader does (latent size {budget.cvae_latent_size}, {schedule}; "
          f"{epochs(budget.cvae_epochs)}, at most {seconds / 60:.0f} minutes)...", flush=True)
    result, detail, output = run_harness(code_dir, "train_cvae", work, seconds + 60, "training.npz",
                                         (str(seconds),), epoch_printer("cvae", budget.cvae_epochs))
    spec = checks.CHECKS_BY_KEY["cvae_generation"]
    if "cvae.epoch_seconds" not in result or "cvae.samples" not in result:
        print_check("FAIL", spec.name, f"0/{spec.points:g} points", checks.no_epoch_finished(result, "cvae", detail))
        print_output_tail(output)
        return False
    path = save_samples(result["cvae.samples"], request["cvae.sample_labels"])
    story = checks.training_story(result, "cvae", detail, int(request["cvae_epochs"]), None)
    story += checks.upstream_note(checks.failed_upstream(unit_outcomes, "cvae_generation"))
    print_check("INFO", spec.name, f"?/{spec.points:g} points",
                f"{story} Not scored here: the grader's classifier, which scores these samples, stays with the "
                f"grader; full credit needs more than {config.generation_full_credit:.0%} of them recognised as "
                f"their label (the grader stops training as soon as they are). Look at your CVAE's samples for "
                f"the grader's codes, one row per label: each row should show its label's digit, in varied "
                f"styles. They are in {path}")
    if "done.cvae" not in result:
        print_output_tail(output)
    return outcome.fraction >= 1


def main(argv=None, code_dir: Path | None = None) -> int:
    """``python check.py``: check the student's files in ``code_dir`` (the current folder by default)."""
    code_dir = Path(code_dir or Path.cwd()).resolve()
    parser = argparse.ArgumentParser(prog="check.py",
                                     description="Check your functions with the autograder's own checks.")
    parser.add_argument("--data_dir", default=None,
                        help="folder with the MNIST files (default: $MNIST_DATA_DIR, then the cache, "
                             "then a download)")
    parser.add_argument("--training", action="store_true",
                        help="also train your VAE and CVAE as the grader does (a few minutes)")
    parser.add_argument("--small", action="store_true",
                        help="with --training: the grader's small budget (fewer epochs and test images), a quick try")
    args = parser.parse_args(argv)
    try:
        expected, training_config = stored_values()
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    arrays, no_data = mnist_arrays(args.data_dir)
    if no_data:
        print(f"MNIST is not available, so train_vae is not checked:\n{textwrap.indent(no_data, '    ')}\n")
        # The train_vae probe still needs images to run on; its result is not scored.
        images, labels = np.zeros((512, 28, 28), np.uint8), np.zeros(512, np.int64)
    else:
        images, labels = arrays.train_images, arrays.train_labels
    request = requests.unit_request(requests.SELF_CHECK_SEED, images, labels)
    print(f"Checking vae.py and assignment.py in {code_dir} with the autograder's unit checks...", flush=True)
    with tempfile.TemporaryDirectory(prefix="vae-check-") as work:
        work = Path(work)
        requests.save_request(work / "request.npz", request)
        try:
            # What the checks compare with joins the request only after the child's copy is written.
            request.update(expected(request))
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        runs, failures = run_probes(code_dir, work)
        units_pass, unit_outcomes = print_report(runs, request, failures, skip_train_vae=bool(no_data))
        if not args.training:
            return 0 if units_pass else 1
        if no_data:
            print("\nThe training checks need MNIST: set MNIST_DATA_DIR or pass --data_dir, as for assignment.py.")
            return 1
        training_passes = run_training_checks(code_dir, training_config(args.small), arrays, work, unit_outcomes)
    return 0 if units_pass and training_passes else 1
