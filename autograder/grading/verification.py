"""Scores from the exported models only: the trained networks are run in children that never ran student code.

The children that run the submission export each model they trained as a
SavedModel (``harness.export_model``). Here the grader copies those files out
of the submission's folder (plain files of known names and bounded size only),
and runs them with ``model_runner.py`` in two fresh children: one encodes the
grader's held-out images, the other decodes the codes the grader made from
those encodings with its own noise, and the grader's own sample codes. Two
processes, so that no state of the encoding run (a variable, a file) can reach
the decoding run. Every input is drawn from the scoring seed, which no child
that ran student code ever sees.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autograder.grading.sandbox import Limits
from autograder.paths import PACKAGE_DIR

RUNNER_SOURCE = PACKAGE_DIR / "children" / "model_runner.py"
RUNNER_NAME = "model_runner.py"
NUM_CLASSES = 10
MAX_MODEL_BYTES = 256 * 2**20
VARIABLE_SHARD = re.compile(r"variables\.data-\d{5}-of-\d{5}")
# How the feedback names the exported models.
MODEL_TITLES = {"train_vae.before": "the train_vae check's model before training",
                "train_vae.after": "the train_vae check's model after training",
                "train_vae.trusted": "the train_vae check's model trained by the contract's step",
                "vae": "the VAE", "cvae": "the CVAE"}


@dataclass
class VerifiedModels:
    """The arrays of the exported models, keyed as the checks read them, and why a model gave none."""

    arrays: dict = field(default_factory=dict)
    # Model name -> why it could not be run (missing, refused, stopped); such a model earns nothing.
    refused: dict[str, str] = field(default_factory=dict)


def _copy_file(source: Path, target: Path, budget: list[int]) -> None:
    """Copy one regular file without following links, counting its size against ``budget[0]``."""
    # O_NONBLOCK: opening a FIFO the child left there would otherwise wait for a writer forever.
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        # O_NOFOLLOW refuses a link with ELOOP; the feedback names it rather than the errno.
        if error.errno == errno.ELOOP:
            raise ValueError(f"{source.name} is a link") from None
        raise
    with os.fdopen(descriptor, "rb") as src:
        info = os.fstat(src.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{source.name} is not a plain file")
        budget[0] -= info.st_size
        if budget[0] < 0:
            raise ValueError(f"the exported files are larger than {MAX_MODEL_BYTES // 2**20} MB")
        with open(target, "xb") as dst:
            shutil.copyfileobj(src, dst, length=2**20)


def _plain_folder(path: Path) -> list[str]:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(f"{path.name} is a link")
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path.name} is not a folder")
    return os.listdir(path)


def collect_model(source: Path, target: Path) -> str | None:
    """Copy the SavedModel at ``source`` into the new folder ``target``; returns why it cannot be, or None.

    Only the files a SavedModel of variables and graphs has are copied (the
    graph, its fingerprint, the checkpoint's index and shards), never through
    a link, within ``MAX_MODEL_BYTES`` in all.
    """
    budget = [MAX_MODEL_BYTES]
    try:
        # Neither the models' folder nor the model's own may be a link the child made.
        _plain_folder(source.parent)
        names = _plain_folder(source)
        if "saved_model.pb" not in names:
            return "the exported folder has no saved_model.pb"
        (target / "variables").mkdir(parents=True)
        for name in ("saved_model.pb", "fingerprint.pb"):
            if name in names:
                _copy_file(source / name, target / name, budget)
        variables = _plain_folder(source / "variables") if "variables" in names else []
        for name in variables:
            if name == "variables.index" or VARIABLE_SHARD.fullmatch(name):
                _copy_file(source / "variables" / name, target / "variables" / name, budget)
    except (OSError, ValueError) as error:
        shutil.rmtree(target, ignore_errors=True)
        return f"its exported files could not be read ({error})"
    return None


def codes(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """The grader's ``z = mu + exp(logvar / 2) * eps``, in float64."""
    return mu + np.exp(0.5 * np.clip(logvar, -30.0, 30.0)) * eps


def with_labels(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.concatenate([z, np.eye(NUM_CLASSES)[labels.astype(np.int64)]], axis=1)


def usable(array, rows: int, columns: int | None = None) -> bool:
    return isinstance(array, np.ndarray) and array.ndim == 2 and len(array) == rows and \
        (columns is None or array.shape[1] == columns)


def run_models(grader, models: dict[str, Path], scoring: dict, limits: Limits) -> VerifiedModels:
    """Run the exported ``models`` (name -> exported folder) on the scoring request's inputs.

    The names are ``train_vae.before``, ``train_vae.after``, ``train_vae.trusted``, ``vae`` and
    ``cvae``; the arrays come back as ``NAME.mu``, ``NAME.logvar``,
    ``NAME.x_hat`` and for the CVAE ``cvae.samples`` and ``cvae.label_sweep``,
    each (N, 1, 28, 28) or (N, Z).
    """
    verified = VerifiedModels()
    if not models:
        return verified

    def inputs_of(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if name.startswith("train_vae."):
            return scoring["steps.eval_images"], scoring["steps.eval_labels"], scoring["steps.eps"]
        return scoring["eval.images"], scoring["eval.labels"], scoring[f"{name}.eps"]

    encode = {}
    for name in models:
        images, labels, _ = inputs_of(name)
        encode[f"{name}.x"] = images.astype(np.float32)[:, None] / 255.0
        if name == "cvae":
            encode["cvae.c"] = np.eye(NUM_CLASSES, dtype=np.float32)[labels.astype(np.int64)]
    encoded = _run(grader, "encode", models, [(name, "encode", name) for name in models], encode, limits, verified)

    decode, jobs = {}, []
    for name in models:
        if name in verified.refused:
            continue
        images, labels, eps = inputs_of(name)
        mu, logvar = encoded.get(f"{name}.mu"), encoded.get(f"{name}.logvar")
        if not (usable(mu, len(images), eps.shape[1]) and usable(logvar, len(images), eps.shape[1])):
            shape = "x".join(map(str, np.shape(mu)))
            verified.refused[name] = (f"its encoder returned mu of shape ({shape}) for {len(images)} images; "
                                      f"expected ({len(images)}, {eps.shape[1]})")
            continue
        verified.arrays[f"{name}.mu"], verified.arrays[f"{name}.logvar"] = mu, logvar
        z = codes(mu, logvar, eps)
        decode[f"{name}.z"] = with_labels(z, labels) if name == "cvae" else z
        jobs.append((name, "decode", name))
        if name == "cvae":
            sample_z, sample_labels = scoring["cvae.sample_z"], scoring["cvae.sample_labels"]
            decode["cvae.samples.z"] = with_labels(sample_z, sample_labels)
            # The first ten codes, each decoded with every label: how much the label changes the image.
            sweep_z = np.repeat(sample_z[:NUM_CLASSES], NUM_CLASSES, axis=0)
            decode["cvae.label_sweep.z"] = with_labels(sweep_z, np.tile(np.arange(NUM_CLASSES), NUM_CLASSES))
            jobs += [("cvae", "decode", "cvae.samples"), ("cvae", "decode", "cvae.label_sweep")]
    decoded = _run(grader, "decode", {name: models[name] for name, _, _ in jobs}, jobs, decode, limits, verified)
    for _, _, key in jobs:
        value = decoded.get(f"{key}.x_hat")
        if isinstance(value, np.ndarray) and value.shape[1:] == (1, 28, 28):
            verified.arrays[key if key.startswith("cvae.") and key != "cvae" else f"{key}.x_hat"] = value
    for name in models:
        if name not in verified.refused and f"{name}.x_hat" not in verified.arrays:
            verified.refused[name] = "its decoder returned nothing usable"
    return verified


def _run(grader, stage: str, models: dict[str, Path], jobs, inputs: dict, limits: Limits,
         verified: VerifiedModels) -> dict:
    """One runner child in a fresh folder with a copy of ``models``; records the models it could not run."""
    if not jobs:
        return {}
    folder = grader.fresh_folder(f"models-{stage}")
    for name, source in models.items():
        problem = collect_model(source, folder / name)
        if problem:
            verified.refused.setdefault(name, problem)
    jobs = [job for job in jobs if job[0] not in verified.refused]
    if not jobs:
        return {}
    request = dict(inputs)
    request.update({f"job.{index:03d}": np.array(" ".join(job)) for index, job in enumerate(jobs)})
    shutil.copyfile(RUNNER_SOURCE, folder / RUNNER_NAME)
    run = grader.run_in(folder, ["-P", RUNNER_NAME], f"models:{stage}", request, limits)
    for key, value in run.arrays.items():
        if key.endswith(".error") and key[: -len(".error")] in models:
            verified.refused.setdefault(key[: -len(".error")], str(value))
    if run.child.status != "ok" or "running" in run.arrays:
        running = str(run.arrays.get("running", "")).split(" ")[0]
        output = "mu" if stage == "encode" else "x_hat"
        for name, _, key in jobs:
            if name in verified.refused or f"{key}.{output}" in run.arrays:
                continue
            verified.refused[name] = (f"running its {stage} function {run.detail}" if name == running or not running
                                      else f"it was not run: running the {stage} function of "
                                           f"{MODEL_TITLES.get(running, running)} {run.detail}")
    return run.arrays
