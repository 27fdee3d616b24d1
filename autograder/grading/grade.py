"""Grade one submission: run its code in sandboxed children, score the results, write the report.

The grader's own process never imports TensorFlow or the submission: it makes
the inputs, starts children (``harness.py`` next to a copy of the submission,
as an unprivileged user when the grader is root), reads back plain arrays and
computes every score itself. The results file is written in a ``finally``
block, so whatever the submission does, a valid results file is the grader's;
before each stage the grader rewrites a provisional one (``unfinished``), so
that even a grader killed from outside leaves a valid grade.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder.children.harness import PROBES
from autograder.config import GradeConfig
from autograder.grading.results import Report, TestResult, write_results
from autograder.grading.sandbox import (ChildResult, Limits, available_cpus, lock_down, memory_cgroup,
                                        network_isolation_available, prepare_workdir, run_child, unprivileged_user)
from autograder.grading.submission import HARNESS_NAME, SubmissionError, copy_submission
from autograder.grading.unfinished import ProvisionalResults
from autograder.grading.verification import VerifiedModels, run_models
from autograder.paths import CODE_DIR, PACKAGE_DIR, ensure_code_on_path
from autograder.scoring import checks
from autograder.scoring.classifier import ClassifierError, NumpyClassifier
from autograder.scoring.reference_stats import load_reference_stats
from autograder.scoring.requests import load_result_file, save_request, scoring_request, training_request, unit_request

# Seconds kept back from the total limit for scoring and writing the results.
RESERVE_SECONDS = 30.0
# A training child starts no epoch that would end later than this before its time limit.
TRAIN_MARGIN_SECONDS = 20.0
# The largest result file the grader reads while a child still runs (a legitimate one is about 20 MB).
MAX_WATCHED_BYTES = 64 * 2**20
UNIT_PROBES = tuple(PROBES)
# The assignment's secret, written by build-zip into the Gradescope archive (never into the release).
SECRET_FILE = PACKAGE_DIR / "secret"


class GraderError(Exception):
    """The grader itself cannot run (no data, no classifier); not the submission's fault."""


@dataclass
class ChildRun:
    """What one child returned: its arrays (empty when none came back) and how it ended."""

    arrays: dict
    child: ChildResult
    # A result file was there but was refused (too large, not a plain NumPy archive).
    refused: bool = False
    # The child's result file; its exported models are in the folder beside it (``models_dir``).
    output: Path | None = None

    def exported(self, name: str) -> Path | None:
        """The folder where the child exported the model ``name`` (None when the child made none)."""
        return None if self.output is None else self.output.with_suffix(".models") / name

    @property
    def detail(self) -> str:
        if self.child.status == "ok" and self.refused:
            return ("finished, but its result file was refused (larger than 256 MB once unpacked, or not a plain "
                    "NumPy archive)")
        if self.child.status == "ok":
            return ("ended with exit status 0 before it finished: something in the submission ended the process "
                    "(os._exit or a similar call)")
        return self.child.detail


def thread_settings(cpus: float) -> dict[str, str]:
    """Thread counts for TensorFlow in a child, when a CPU quota holds it below the cores it sees.

    TensorFlow sizes its thread pools by the cores it sees; in a container
    whose quota is a fraction of them (Gradescope's default is 0.5 vCPU), the
    extra threads only contend for the quota.
    """
    if cpus >= len(os.sched_getaffinity(0)):
        return {}
    threads = str(max(1, int(cpus)))
    return {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "OMP_NUM_THREADS": threads}


def machine_report(config: GradeConfig) -> tuple[dict, list[str]]:
    """The CPUs and memory this grade runs with (the container's, where it sets them), the seconds it is
    planned to and whether a platform's timeout sets them (``GradeConfig.deployed``), and warnings."""
    cgroup = memory_cgroup()
    memory_mb = cgroup.limit_mb() if cgroup else None
    machine = {"cpus": round(available_cpus(), 2), "memory_mb": None if memory_mb is None else round(memory_mb),
               "grade_seconds": round(config.total_seconds), "platform_timeout": config.platform_timeout}
    warnings = []
    if memory_mb is not None and memory_mb < config.recommended_memory_mb:
        warnings.append(f"this machine's memory limit is {memory_mb:.0f} MB, below the {config.recommended_memory_mb} "
                        "MB the grader needs for large networks; a run it stops for memory says so in the feedback")
    return machine, warnings


def result_file_refused(path: Path) -> bool:
    """Whether a result file is there but ``load_result_file`` found nothing to read in it.

    The harness saves an empty archive before its first step, which is not a refusal.
    """
    if not os.path.lexists(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.infolist())
    except (OSError, zipfile.BadZipFile):
        return True


class Grader:
    """Runs the children for one submission inside one temporary sandbox folder."""

    def __init__(self, sandbox: Path, config: GradeConfig, log, deadline: float):
        self.sandbox = sandbox
        self.config = config
        self.log = log
        self.deadline = deadline
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(sandbox),
            "LANG": "C.UTF-8",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(sandbox / ".matplotlib"),
            "KERAS_HOME": str(sandbox / ".keras"),
            "PYTHONDONTWRITEBYTECODE": "1",
            # A fixed threshold above which glibc's malloc maps memory afresh (and returns it on free).
            # The default threshold adapts upwards, after which an eager training loop's tensors
            # fragment the heap: measured, a child's peak RSS over one epoch falls from 1.1 GB to
            # 0.9 GB with the same speed.
            "MALLOC_MMAP_THRESHOLD_": "131072",
        }
        self.env.update(thread_settings(available_cpus()))
        self.run_as = self._child_user()
        if not network_isolation_available():
            log("warning: children share the grader's network (cutting it off takes root and a platform "
                "that allows network namespaces)")
        # How the children that run student code are isolated here, for the log and the results' extra data.
        self.isolation = {"user": "unprivileged" if self.run_as else "the grader's",
                          "network": "cut off" if network_isolation_available() else "shared"}
        log(f"children run as {self.isolation['user']} user, network {self.isolation['network']}")
        self.machine, warnings = machine_report(config)
        self.warnings: list[str] = []
        log(f"the grade is planned to {config.total_seconds:.0f} s" + (
            " (the platform's timeout less a margin)" if config.platform_timeout else
            " (no platform's timeout here: the caps of epochs and the bars decide; the time only stops a hang)"))
        for warning in warnings:
            self.warn(warning)

    def warn(self, warning: str) -> None:
        """A warning for the instructor: in the log, and in the results' ``extra_data``."""
        self.warnings.append(warning)
        self.log(f"warning: {warning}")

    def _child_user(self) -> str | None:
        """``"auto"`` (an unprivileged user when root) if that user can start Python, else None.

        When the unprivileged user cannot reach the interpreter (for example a
        virtual environment under /root) or the sandbox's path (a private
        temporary folder), children run as the grader's user and the grader
        says so: the limits still hold, the file isolation not.
        """
        owner = unprivileged_user()
        if owner is None:
            return None
        prepare_workdir(self.sandbox, owner)
        # Python opens the harness by its absolute path, so every folder above the
        # sandbox must let the child's user through, not only the sandbox itself.
        probe = run_child([sys.executable, "-I", "-c", "import os, numpy; os.stat(os.getcwd())"],
                          cwd=self.sandbox, limits=Limits(wall_seconds=60), env=self.env)
        if probe.status == "ok":
            return "auto"
        self.log(f"warning: the unprivileged user cannot start {sys.executable} in {self.sandbox} "
                 f"({probe.detail}); children run as the grader's user, without file isolation")
        return None

    def seconds_left(self) -> float:
        """Seconds until the deadline, less the reserve for scoring and writing the results."""
        return self.deadline - time.monotonic() - RESERVE_SECONDS

    def train(self, task: str, request: Path, limits: Limits, keep_seconds: float = 0.0, watch=None,
              keep_epoch: bool = False) -> ChildRun:
        """Run a training task with the time left but ``keep_seconds``; ``watch`` as in ``run``.

        The child's own training budget ends ``TRAIN_MARGIN_SECONDS`` before its
        time limit: it starts no epoch that would not finish by then (with
        ``keep_epoch``, no epoch unless one more epoch and a child's start-up
        would still fit after it, for the next model), so that its time limit
        only ever stops a run whose epochs got slower.
        """
        seconds = min(limits.wall_seconds, self.seconds_left() - keep_seconds)
        limits = dataclasses.replace(limits, wall_seconds=max(seconds, 5.0))
        budget = [f"{max(seconds - TRAIN_MARGIN_SECONDS, 0.0):.1f}", "keep-epoch" if keep_epoch else "last"]
        return self.run(task, request, limits, budget, watch)

    def run(self, task: str, request: Path, limits: Limits, extra: list[str] | None = None,
            watch=None) -> ChildRun:
        """Run one harness task in the submission's folder (see ``run_in``)."""
        return self.run_in(self.sandbox, [HARNESS_NAME, task], task, request, limits, extra, watch)

    def fresh_folder(self, name: str) -> Path:
        """A new empty folder beside the sandbox, handed to the children's user."""
        folder = self.sandbox.parent / f"{name}-{secrets.token_hex(4)}"
        folder.mkdir()
        prepare_workdir(folder, unprivileged_user() if self.run_as else None)
        return folder

    def run_in(self, folder: Path, script: list[str], task: str, request: Path | dict, limits: Limits,
               extra: list[str] | None = None, watch=None) -> ChildRun:
        """Run ``python -I SCRIPT... REQUEST RESULT EXTRA...`` in ``folder``; its time limit shrinks so that
        the whole grade meets the deadline.

        ``request`` is a saved request in ``folder``, or a dict to save there.
        ``watch(output, done)``, when given, runs in a thread while the child
        runs: it may read the child's result file as it grows and answer it,
        until the event ``done`` is set.
        """
        remaining = self.seconds_left()
        if remaining < 5:
            return ChildRun({}, ChildResult("timeout", None, 0.0, "", 0.0,
                                            "was not run: the grader's total time limit was reached"))
        limits = dataclasses.replace(limits, wall_seconds=min(limits.wall_seconds, remaining))
        if isinstance(request, dict):
            request = save_request(folder / f"request-{secrets.token_hex(8)}.npz", request)
        # A name no earlier child could know, so that nothing it left in the folder is read as this
        # run's result or stands in the way of it.
        output = folder / f"result-{task.replace(':', '-')}-{secrets.token_hex(8)}.npz"
        # The grader wrote the request after the folder was handed to the child's user, who may read
        # it but not change it. The folder itself is not walked again: a child can make it too deep.
        os.chmod(request, 0o644)
        argv = [sys.executable, "-I", *script, request.name, output.name, *(extra or [])]
        done = threading.Event()
        watcher = threading.Thread(target=watch, args=(output, done), daemon=True) if watch else None
        if watcher:
            watcher.start()
        try:
            child = run_child(argv, cwd=folder, limits=limits, env=self.env, run_as=self.run_as)
        finally:
            done.set()
            if watcher:
                watcher.join()
        arrays = load_result_file(output)
        self.log(f"  {task}: {child.status} in {child.seconds:.1f} s, peak {child.peak_rss_mb:.0f} MB")
        return ChildRun(arrays, child, refused=not arrays and result_file_refused(output), output=output)


class GenerationJudge:
    """Scores the CVAE's samples after each epoch, in the grader, and tells the child whether to go on.

    The child saves its arrays after every epoch and waits for the file
    ``decision-EPOCH``; this watcher reads the saved samples, classifies them
    with the grader's classifier (which never enters the child) and writes
    "stop" once they earn full credit, else "go". The accuracies it measured
    are the per-epoch history of the feedback.
    """

    def __init__(self, classifier: NumpyClassifier, labels: np.ndarray, full_credit: float, sandbox: Path):
        self.classifier = classifier
        self.labels = labels
        self.full_credit = full_credit
        self.sandbox = sandbox
        self.accuracies: dict[int, float] = {}

    def __call__(self, output: Path, done: threading.Event) -> None:
        seen = None
        finished = False
        while not finished:
            # One more look after the child ended: its last epoch asks for no decision.
            finished = done.wait(0.5)
            try:
                status = output.stat()
            except OSError:
                continue
            if (status.st_mtime_ns, status.st_size) == seen or status.st_size > MAX_WATCHED_BYTES:
                continue
            seen = (status.st_mtime_ns, status.st_size)
            arrays = load_result_file(output)
            epochs = checks.epochs_finished(arrays, "cvae")
            if epochs == 0 or epochs in self.accuracies:
                continue
            self.accuracies[epochs] = self.accuracy(arrays.get("cvae.samples"))
            if not finished:
                self.answer(epochs, "stop" if self.accuracies[epochs] > self.full_credit else "go")

    def accuracy(self, samples) -> float:
        """The share of samples classified as their label (NaN when the samples are unusable)."""
        if not isinstance(samples, np.ndarray) or samples.shape != (len(self.labels), 1, 28, 28) \
                or not np.isfinite(samples).all():
            return float("nan")
        return float(np.mean(self.classifier.logits(samples).argmax(axis=1) == self.labels))

    def answer(self, epoch: int, decision: str) -> None:
        """Write ``decision-EPOCH`` in the child's folder without following any link the child made there."""
        temporary = self.sandbox / f".decision-{secrets.token_hex(8)}"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(descriptor, "w") as file:
                file.write(decision)
            os.replace(temporary, self.sandbox / f"decision-{epoch}")
        except OSError:
            pass  # Without an answer the child trains on, up to its cap.

    @property
    def met_bar(self) -> bool:
        """Whether the samples of the last epoch earned full credit.

        This reads the accuracies, not whether a "stop" was written: the child's last
        epoch asks for no decision, so whether the watcher answered it before the
        child ended is a race, and the feedback must not depend on it.
        """
        return bool(self.accuracies) and self.accuracies[max(self.accuracies)] > self.full_credit

    def history(self) -> np.ndarray | None:
        return np.array([self.accuracies[e] for e in sorted(self.accuracies)]) if self.accuracies else None


def sample_grid_html(samples: np.ndarray) -> str:
    """The 10x10 grid of samples (row k: label k) as an inline PNG image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    ensure_code_on_path()
    from figures import tile_images

    canvas = tile_images(np.clip(samples[: 100], 0, 1), 10, 10)
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, 1.0 - np.kron(canvas, np.ones((2, 2))), cmap="gray", vmin=0, vmax=1,
                            format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<p>Your samples, row k decoded with label k:</p><img alt="samples" src="data:image/png;base64,{encoded}"/>'


def first_samples_per_digit(samples: np.ndarray, labels: np.ndarray, count: int = 10) -> np.ndarray:
    return np.concatenate([samples[labels == d][:count] for d in range(10)])


def score_generation(arrays: dict, detail: str, request: dict, train_images, classifier: NumpyClassifier,
                     test=None):
    """Classify the CVAE's samples; returns (stats, problem, grid) with stats None when none can be scored."""
    samples = arrays.get("cvae.samples")
    labels = request["cvae.sample_labels"]
    if "cvae.epoch_seconds" not in arrays:
        return None, checks.no_epoch_finished(arrays, "cvae", detail), ""
    if not isinstance(samples, np.ndarray) or samples.shape != (len(labels), 1, 28, 28):
        shape = checks.shape_text(np.shape(samples))
        return None, (f"Expected samples of shape ({len(labels)}, 1, 28, 28) or ({len(labels)}, 784) from the "
                      f"decoder, got {shape}."), ""
    if not np.isfinite(samples).all() or samples.min() < -1e-6 or samples.max() > 1 + 1e-6:
        return None, "The decoder's samples are NaN, infinite or outside [0, 1].", ""
    probabilities = classifier.probabilities(samples)
    test_images, test_labels = test if test is not None else (None, None)
    stats = checks.generation_stats(samples, labels, probabilities, train_images, arrays.get("cvae.label_sweep"),
                                    test_images, test_labels)
    grid = sample_grid_html(first_samples_per_digit(samples, labels))
    return stats, None, grid


def run_units(grader: Grader, request_path: Path, config: GradeConfig) -> dict[str, ChildRun]:
    """All unit probes in one child; probes it could not reach run again, each in a child of its own.

    The step where the combined child stopped (a probe, or importing a module)
    is not run again: it would only stop again, and the time limit is shared.
    """
    together = grader.run("units", request_path, config.unit_limits)
    runs = {probe: together for probe in UNIT_PROBES}
    for probe in checks.probes_to_run_alone(together.arrays):
        runs[probe] = grader.run(f"unit:{probe}", request_path, config.probe_limits)
    return runs


def training_blocker(units: ChildRun) -> ChildRun | None:
    """When the submission's modules could not be imported in the unit run, training cannot work.

    Returns a stand-in result that carries the import error (or how the import
    ended), so that the training checks report it without starting a child.
    """
    errors = {k: v for k, v in units.arrays.items() if k.startswith("import_") and k.endswith(".error")}
    stopped_at = checks.unfinished_step(units.arrays)
    if errors:
        return ChildRun(errors, units.child)
    if stopped_at in ("import_vae", "import_assignment"):
        # The stand-in did not finish normally, whatever the status of the run it stands for.
        status = "exit" if units.child.status == "ok" else units.child.status
        return ChildRun({}, dataclasses.replace(units.child, status=status, detail=f"did not finish importing "
                                                f"{stopped_at[len('import_'):]}.py: it {units.detail}"))
    return None


def test_result(key: str, outcome: checks.Outcome, found: Evidence | None = None) -> TestResult:
    spec = checks.CHECKS_BY_KEY[key]
    return TestResult(name=spec.name, score=round(spec.points * outcome.fraction, 2), max_score=spec.points,
                      output=outcome.feedback, output_format=outcome.output_format,
                      unverified=found is not None and found.unverified is not None,
                      extra_data=dict(outcome.extra_data))


def zero_report(message: str) -> list[TestResult]:
    return [TestResult(spec.name, 0.0, spec.points, message) for spec in checks.CHECKS]


def load_data():
    ensure_code_on_path()
    from mnist_data import DataError, load_arrays

    try:
        return load_arrays()
    except DataError as error:
        raise GraderError(f"MNIST is not available to the grader: {error}") from None


def unit_outcomes(grader: Grader, config: GradeConfig, arrays, seed: int) -> tuple[dict, dict[str, checks.Outcome],
                                                                                  dict[str, ChildRun]]:
    """Run and score the unit checks (every check but the two training checks): (request, outcomes, runs).

    The outcome of ``train_vae`` is measured on the child's own arrays; ``grade``
    replaces it by the measurement of the exported models.
    """
    # The checks use the grader's own copy of the inputs; the file the children read may have been changed.
    units_request = unit_request(seed, arrays.train_images, arrays.train_labels)
    units_path = save_request(grader.sandbox / "units.npz", units_request)
    # What the checks compare with is computed after the request file is written: the child never sees it.
    units_request.update(checks.expected_values(units_request))
    unit_runs = run_units(grader, units_path, config)
    outcomes = {probe: check(unit_runs[probe].arrays, units_request, unit_runs[probe].detail)
                for probe, check in checks.UNIT_CHECKS.items()}
    return units_request, outcomes, unit_runs


def check_units(submission: Path, config: GradeConfig | None = None, log=print) -> dict[str, checks.Outcome]:
    """Only the unit checks of ``submission``, without training: a quick verdict for tests."""
    config = config or GradeConfig()
    with work_folder("units-", log) as sandbox:
        arrays = load_data()
        files = copy_submission(Path(submission), sandbox)
        seeds = grade_seeds(config, sandbox, files, log)
        grader = Grader(sandbox, config, log, time.monotonic() + config.total_seconds)
        return unit_outcomes(grader, config, arrays, seeds.units)[1]


def load_classifier() -> NumpyClassifier:
    try:
        return NumpyClassifier.load()
    except ClassifierError as error:
        raise GraderError(str(error)) from None


@dataclass(frozen=True)
class Seeds:
    """Independent seeds of the unit inputs, the training inputs and the scoring inputs.

    Each is derived from a master secret with HMAC, so a child that sees the
    first two learns nothing of the third.
    """

    units: int
    training: int
    scoring: int

    @classmethod
    def from_master(cls, master: bytes) -> "Seeds":
        def derive(purpose: str) -> int:
            # 31 bits: Keras and NumPy's legacy seeding take seeds below 2**32.
            return int.from_bytes(hmac.new(master, purpose.encode(), hashlib.sha256).digest()[:4], "big") >> 1

        return cls(derive("units"), derive("training"), derive("scoring"))


def grade_seeds(config: GradeConfig, sandbox: Path, files: list[str], log) -> Seeds:
    """The seeds of this grade: from ``config.seed`` when set, else from the assignment's secret.

    With the secret (``autograder/secret``, which build-zip writes into the
    Gradescope archive), the seeds depend on the secret and on the
    submission's files: a regrade of the same files draws the same inputs, and
    no one without the secret can compute them. Without either, they are drawn
    at random for this grade.
    """
    if config.seed is not None:
        return Seeds.from_master(f"seed:{config.seed}".encode())
    try:
        secret = SECRET_FILE.read_bytes().strip()
    except OSError:
        secret = b""
    if not secret:
        log("no assignment secret (autograder/secret): this grade's inputs are drawn at random")
        return Seeds.from_master(secrets.token_bytes(32))
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (sandbox / name).read_bytes() + b"\0")
    return Seeds.from_master(secret + digest.digest())


# The models the children export and the checks that score them: check key -> (probe prefix, models).
SCORED_MODELS = {"train_vae": ("train_vae", ("train_vae.before", "train_vae.after", "train_vae.trusted")),
                 "vae_training": ("vae", ("vae",)), "cvae_generation": ("cvae", ("cvae",))}
# Exported models a check scores when they come back and does without otherwise: the train_vae probe's
# copy trained by the contract's own step only widens what that check accepts.
OPTIONAL_MODELS = frozenset({"train_vae.trusted"})


def trained(run: ChildRun, prefix: str) -> bool:
    """Whether the child got as far as a model to score (the probe returned, or an epoch finished)."""
    return f"{prefix}.returned" in run.arrays if prefix == "train_vae" else f"{prefix}.epoch_seconds" in run.arrays


def exported_models(runs: dict[str, ChildRun]) -> dict[str, Path]:
    """Model name -> the folder its child exported it to, for every model to score that was exported."""
    models = {}
    for key, (prefix, names) in SCORED_MODELS.items():
        run = runs[key]
        if trained(run, prefix) and f"{prefix}.export_error" not in run.arrays:
            models.update({name: run.exported(name) for name in names if run.exported(name) is not None})
    return models


@dataclass
class Evidence:
    """What a training check scores: the exported model's arrays on the grader's secret inputs when they
    exist, else the child's own (``unverified`` says why), or nothing (``refused`` says why)."""

    arrays: dict
    request: dict
    unverified: str | None = None
    refused: str | None = None


def evidence(key: str, run: ChildRun, request: dict, verified: VerifiedModels, scoring: dict) -> Evidence:
    prefix, names = SCORED_MODELS[key]
    names = [name for name in names if name not in OPTIONAL_MODELS]
    refused = [verified.refused[name] for name in names if name in verified.refused]
    if refused:
        return Evidence(run.arrays, request, refused=refused[0])
    if all(f"{name}.x_hat" in verified.arrays for name in names):
        # The child's own measurement of an optional model never stands in for the grader's.
        arrays = {k: v for k, v in run.arrays.items() if not k.startswith(tuple(f"{n}." for n in OPTIONAL_MODELS))}
        arrays.update({k: v for k, v in verified.arrays.items() if k.startswith(f"{prefix}.")})
        return Evidence(arrays, {**request, **scoring})
    export_error = run.arrays.get(f"{prefix}.export_error")
    if trained(run, prefix) and export_error is None:
        return Evidence(run.arrays, request, refused="no exported model came back")
    return Evidence(run.arrays, request, unverified=None if export_error is None else str(export_error))


def scored_outcome(found: Evidence, check) -> checks.Outcome:
    """``check(arrays, request)`` on the evidence, or no credit when the exported model could not be run."""
    if found.refused:
        return checks.model_refused(found.refused)
    outcome = check(found.arrays, found.request)
    return outcome if found.unverified is None else checks.unverified(outcome, found.unverified)


def run_notes(**runs: ChildRun) -> dict[str, str]:
    """What the provisional results say of each training run that has ended without finishing normally."""
    titles = {"vae_training": "VAE", "cvae_generation": "CVAE"}
    return {key: f"Its {titles[key]}'s training run {run.child.detail}." for key, run in runs.items()
            if run.child.status != "ok"}


def grade_in(sandbox: Path, submission: Path, config: GradeConfig, log, deadline: float,
             provisional: ProvisionalResults) -> Report:
    arrays = load_data()
    classifier = load_classifier()
    files = copy_submission(submission, sandbox)
    log(f"submission files: {', '.join(files)}")
    seeds = grade_seeds(config, sandbox, files, log)
    grader = Grader(sandbox, config, log, deadline)
    # The grader's warnings list itself, so that each later stage's results carry the warnings so far.
    provisional.extra_data.update(isolation=grader.isolation, machine=grader.machine, warnings=grader.warnings)
    began = deadline - config.total_seconds

    def reached(stage: str, **runs: ChildRun) -> None:
        # Every unit check but train_vae is final once its child has run; train_vae is scored on the
        # exported models, which run last.
        scored = {key: test_result(key, outcome) for key, outcome in outcomes.items() if key != "train_vae"}
        provisional.write(stage, scored, run_notes(**runs), time.monotonic() - began)

    provisional.write("units", seconds=time.monotonic() - began)
    units_request, outcomes, unit_runs = unit_outcomes(grader, config, arrays, seeds.units)
    train = training_request(config, seeds.training, arrays)
    train_path = save_request(sandbox / "train.npz", train)
    import_failure = training_blocker(unit_runs["train_vae"])
    if import_failure:
        vae_run = cvae_run = import_failure
    else:
        reached("vae")
        vae_run = grader.train("train_vae", train_path, config.train_limits,
                               config.cvae_reserve_seconds + config.scoring_reserve_seconds, keep_epoch=True)
    judge = GenerationJudge(classifier, train["cvae.sample_labels"],
                            config.generation_full_credit + config.generation_stop_margin, sandbox)
    if not import_failure:
        reached("cvae", vae_training=vae_run)
        cvae_run = grader.train("train_cvae", train_path, config.train_limits, config.scoring_reserve_seconds,
                                watch=judge)
    reached("scoring", vae_training=vae_run, cvae_generation=cvae_run)

    # The scores of the three training checks come only from the exported models, run on inputs
    # drawn from the scoring seed by children that never import the submission.
    runs = {"train_vae": unit_runs["train_vae"], "vae_training": vae_run, "cvae_generation": cvae_run}
    scoring = scoring_request(config, seeds.scoring, seeds.training, arrays)
    verified = run_models(grader, exported_models(runs), scoring, config.model_limits)
    found = {key: evidence(key, runs[key], units_request if key == "train_vae" else train, verified, scoring)
             for key in SCORED_MODELS}

    outcomes["train_vae"] = scored_outcome(found["train_vae"], lambda a, r: checks.check_train_vae(
        a, r, unit_runs["train_vae"].detail))
    tests = [test_result(key, outcome, found.get(key)) for key, outcome in outcomes.items()]
    # Training runs the code the unit checks test: a failing training check names those that lost points.
    vae_outcome = scored_outcome(found["vae_training"], lambda a, r: checks.check_vae_training(
        a, r, vae_run.detail, config))
    tests.append(test_result("vae_training", checks.with_upstream(
        vae_outcome, checks.failed_upstream(outcomes, "vae_training")), found["vae_training"]))
    generation = scored_outcome(found["cvae_generation"], lambda a, r: generation_outcome(
        a, r, cvae_run.detail, config, arrays.train_images, classifier, judge,
        (arrays.test_images, arrays.test_labels)))
    tests.append(test_result("cvae_generation", checks.with_upstream(
        generation, checks.failed_upstream(outcomes, "cvae_generation")), found["cvae_generation"]))
    for title, run, prefix, met_bar, outcome in (
            ("VAE", vae_run, "vae", checks.vae_met_bar(vae_run.arrays, train), vae_outcome),
            ("CVAE", cvae_run, "cvae", judge.met_bar, generation)):
        cap = int(train[f"{prefix}_epochs"])
        if outcome.fraction < 1 and checks.training_end(run.arrays, prefix, cap, met_bar) == "time":
            grader.warn(time_cut_warning(title, checks.epochs_finished(run.arrays, prefix), cap, config))
    output = [f"Graded {', '.join(files)}."]
    failed_runs = {run.child.detail for run in [*unit_runs.values(), vae_run, cvae_run]
                   if run.child.status != "ok"}
    if failed_runs:
        output.append("Some runs of your code did not finish normally: " + "; ".join(sorted(failed_runs)) + ".")
    # How each child that ran the submission ended (ChildResult.status), for the instructor's gradebook.
    statuses = {f"units.{name}": run.child.status for name, run in unit_runs.items()}
    statuses.update(vae=vae_run.child.status, cvae=cvae_run.child.status)
    return Report(tests=tests, output=" ".join(output),
                  extra_data={"runs": statuses, "isolation": grader.isolation, "machine": grader.machine,
                              **({"warnings": grader.warnings} if grader.warnings else {})})


def time_cut_warning(title: str, epochs: int, cap: int, config: GradeConfig) -> str:
    """For the instructor: the grade's time, not the submission, ended a training run short of its bar."""
    remedy = ("build the zip with a longer --time-limit, or grade it again with grade-all, which no platform's "
              "timeout stops" if config.platform_timeout else "grade it again on a machine with more time to spare")
    return (f"the {title}'s training stopped after {epochs} of at most {cap} epochs, short of its bar, because "
            f"the next epoch would not have ended within the grade's {config.total_seconds:.0f} s; it lost points "
            f"for time, not for its code: {remedy}")


def generation_outcome(arrays: dict, request: dict, detail: str, config: GradeConfig, train_images,
                       classifier: NumpyClassifier, judge: GenerationJudge, test=None) -> checks.Outcome:
    stats, problem, grid = score_generation(arrays, detail, request, train_images, classifier, test)
    story = ""
    if "cvae.epoch_seconds" in arrays:
        story = checks.training_story(
            arrays, "cvae", detail, int(request["cvae_epochs"]),
            f"It stopped once the classifier recognised more than {judge.full_credit:.0%} of the samples of "
            "other codes." if judge.met_bar else None)
    return checks.check_cvae_generation(stats, problem, config.generation_full_credit,
                                        config.generation_zero_credit, grid, story, judge.history(),
                                        load_reference_stats())


def remove_work_folder(path: Path, log) -> None:
    """Delete the grader's temporary folder; whatever the submission left in it, this never raises.

    ``shutil.rmtree`` recurses and fails on a tree nested deeper than Python's
    recursion limit, which a submission can make; ``rm -rf`` removes any depth.
    """
    try:
        shutil.rmtree(path)
    except (OSError, RecursionError):
        try:
            subprocess.run(["rm", "-rf", "--", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=300, check=False)
        except (OSError, subprocess.SubprocessError):
            pass
    if os.path.lexists(path):
        log(f"warning: could not remove the grader's temporary folder {path}")


@contextlib.contextmanager
def work_folder(prefix: str, log):
    """A fresh temporary folder of the grader's with an empty ``sandbox`` inside; yields the sandbox.

    The folder is removed afterwards, whatever the submission left in it.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        # The child's user may pass through (not list) the grader's folder to its sandbox.
        os.chmod(work, 0o711)
        sandbox = work / "sandbox"
        sandbox.mkdir()
        yield sandbox
    finally:
        remove_work_folder(work, log)


def grade(submission: Path, results_path: Path, config: GradeConfig | None = None, log=print) -> Report:
    """Grade ``submission`` and write Gradescope results to ``results_path`` (always).

    Raises GraderError after writing the results when the grader itself could not run.
    """
    config = config or GradeConfig()
    start = time.monotonic()
    report = Report(tests=zero_report("Not graded: the grader stopped before this check."))
    grader_error = None
    provisional = ProvisionalResults(Path(results_path), memory_cgroup())
    # The work folder is removed last, after the results are written, however long that takes.
    with contextlib.ExitStack() as cleanup:
        try:
            lock_down([PACKAGE_DIR, CODE_DIR, Path(results_path).resolve().parent])
            provisional.write("start")
            sandbox = cleanup.enter_context(work_folder("grade-", log))
            report = grade_in(sandbox, Path(submission), config, log, start + config.total_seconds, provisional)
        except SubmissionError as error:
            report = Report(tests=zero_report(f"Not graded: {error}"), output=f"Not graded: {error}",
                            extra_data={"invalid": str(error)})
        except Exception as error:  # noqa: BLE001 - the grader must still write its results
            grader_error = f"{type(error).__name__}: {error}"
            report = Report(tests=zero_report("Not graded: the autograder failed; this is not your fault, "
                                              "tell the course staff."),
                            output="The autograder failed; this is not your fault, tell the course staff.",
                            error=grader_error)
        finally:
            report.execution_time = time.monotonic() - start
            write_results(report, Path(results_path))
    if grader_error:
        raise GraderError(grader_error)
    return report
