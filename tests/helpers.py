"""Small shared pieces for the tests: a subset of MNIST and running the CLI as a child."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
CODE_DIR = REPO_DIR / "hw" / "code"


def _test_seed() -> int:
    from autograder.config import TEST_SEED

    return int(os.environ.get("GRADER_TEST_SEED", TEST_SEED))


# The master seed of every grade in the tests; pytest's header prints it, and GRADER_TEST_SEED=N replays another.
TEST_SEED = _test_seed()


def tiny_config(**changes):
    """``GradeConfig.for_tests`` with the session's seed (and ``changes``)."""
    from autograder.config import GradeConfig

    return dataclasses.replace(GradeConfig.for_tests(TEST_SEED), **changes)


def idx_bytes(array) -> bytes:
    """The IDX file of a uint8 array, for fixtures: magic 0x000008<ndim>, big-endian uint32 sizes, the bytes."""
    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes((0, 0, 0x08, array.ndim)) + b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + array.tobytes()


def assert_valid_gradescope(data: dict) -> None:
    """``data`` (a ``results.json``) has Gradescope's fields, one test per check, and consistent scores."""
    from autograder.scoring.checks import CHECKS

    assert set(data) >= {"score", "execution_time", "output", "tests"}
    assert len(data["tests"]) == len(CHECKS)
    for test in data["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "visibility"}
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] == ("passed" if test["score"] >= test["max_score"] else "failed")


def require_mnist_dir() -> str:
    """The folder of the real MNIST files (``MNIST_DATA_DIR``); skips the test when unset."""
    data_dir = os.environ.get("MNIST_DATA_DIR")
    if not data_dir:
        pytest.skip("set MNIST_DATA_DIR to the folder with the MNIST IDX files")
    return data_dir


@lru_cache(maxsize=1)
def _real_arrays(data_dir: str):
    from mnist_data import load_arrays

    return load_arrays(data_dir)


def mnist_subset(num_train: int = 1024, num_test: int = 256):
    """The first images of real MNIST: a small, fast training set for smoke runs."""
    arrays = _real_arrays(require_mnist_dir())
    return dataclasses.replace(
        arrays,
        train_images=arrays.train_images[:num_train],
        train_labels=arrays.train_labels[:num_train],
        test_images=arrays.test_images[:num_test],
        test_labels=arrays.test_labels[:num_test],
    )


def run_cli(*args: str, cwd: Path = REPO_DIR, env: dict | None = None, timeout: float = 300):
    """Run ``python hw/code/assignment.py ARGS`` in a child process; returns the CompletedProcess."""
    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    script = CODE_DIR / "assignment.py"
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd, env=child_env, capture_output=True, text=True, timeout=timeout,
    )


def live_processes_with(marker: str) -> list[int]:
    """Pids of live processes (zombies and this one excluded) whose command line contains ``marker``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != b"Z":
            found.append(int(name))
    return found
