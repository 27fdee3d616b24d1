"""Benchmark a full grade of the reference solution: wall time and peak memory of all processes.

Each run grades ``hw/code``'s reference (or ``--submission``) with
``python -m autograder grade`` in a fresh process, while this script samples
the memory of the grader and all its descendants every 0.1 s:

- RSS: resident memory summed over the process tree (shared library pages count
  once per process, so this overstates what the kernel must keep);
- anonymous RSS: the part that is not file-backed (heap, tensors), the memory an
  out-of-memory killer reclaims first.

Usage::

    python bench/bench_grade.py [--runs 3] [--cores 0] [--submission DIR] [--small] [--box gradescope]

``--cores 0`` runs the grade under ``taskset -c 0`` (one core); ``--box
gradescope`` inside a cgroup of Gradescope's default size (0.5 vCPU, 768 MB;
needs root), ``--box 1cpu-2gb`` in one of 1 vCPU and 2 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO_DIR))

from box import BOXES, Box, BoxError, BoxSize  # noqa: E402


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) of ``pid`` in kB; zeros when it is gone."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def deploy(root: Path, time_limit_minutes: float) -> Path:
    """Deploy the Gradescope zip as Gradescope does, under ``root`` instead of /autograder.

    Builds the zip (``--time-limit`` recorded in it), unpacks it into ``root/source`` and runs its own
    ``setup.sh`` there (apt, the virtual environment from ``/usr/bin/python3``, the pinned
    requirements, verified MNIST in ``root/cache``; ``MNIST_DATA_DIR`` is passed on). Returns ``root``.
    """
    from autograder.tools.gradescope import build_zip, unpack

    root = root.resolve()
    shutil.rmtree(root / "source", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    unpack(build_zip(root / "autograder.zip", time_limit_minutes), root / "source")
    # The unprivileged user that runs the submission's code must reach the environment (setup.sh makes
    # it world-readable; the folders above it are ours).
    for folder in [root, *root.parents]:
        folder.chmod(folder.stat().st_mode | 0o005)
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=dict(os.environ, AUTOGRADER_ROOT=str(root)),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"setup.sh failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    return root


def deployed_grade(deployment: Path, submission: Path, work: Path, env: dict) -> tuple[list[str], dict, Path]:
    """The command that grades ``submission`` with the deployment's own ``run_autograder``, in an
    /autograder layout of its own under ``work`` (the deployment's source, environment and cache
    linked in), ``env`` made to run it there, and where it writes ``results.json``."""
    work.chmod(0o755)
    root = work / "autograder"
    root.mkdir(mode=0o755)
    for name in ("source", "venv", "cache"):
        (root / name).symlink_to(deployment / name)
    shutil.copytree(submission, root / "submission")
    env = {key: value for key, value in env.items() if key not in ("AUTOGRADER_PYTHON", "VAE_KIT_CACHE_DIR")}
    return ["bash", str(root / "source" / "run_autograder")], dict(env, AUTOGRADER_ROOT=str(root)), \
        root / "results" / "results.json"


@contextlib.contextmanager
def competing_load():
    """A CPU-bound process beside the grades (NumPy matrix products on every core), as another job on the
    same machine would be."""
    burner = subprocess.Popen([sys.executable, "-c", "import numpy as np\na = np.random.rand(800, 800)\n"
                               "while True:\n    a = np.tanh(a @ a)"], stdout=subprocess.DEVNULL)
    try:
        yield burner
    finally:
        burner.kill()
        burner.wait()


def grade_once(submission: Path, small: bool = False, cores: str | None = None, box: BoxSize | None = None,
               seed: int | None = None, deployment: Path | None = None) -> dict:
    """Grade ``submission`` in a fresh ``python -m autograder grade`` and measure it.

    ``deployment``: grade through the deployed zip's ``run_autograder`` instead (see :func:`deploy`).
    Returns the wall time, the peak RSS summed over the process tree (sampled
    every 0.1 s), inside a box also the kernel's peak charge and its
    out-of-memory kills, the results file and the grader's log lines.
    """
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if deployment is None:
            results = Path(work) / "results.json"
            command = [sys.executable, "-m", "autograder", "grade", str(submission), "--results", str(results)]
        else:
            command, env, results = deployed_grade(deployment, submission, Path(work), env)
        if small:
            command.append("--small")
        if seed is not None:
            command += ["--seed", str(seed)]
        if cores is not None:
            command = ["taskset", "-c", cores, *command]
        cgroup = stack.enter_context(Box(box)) if box is not None else None
        if cgroup is not None:
            command = cgroup.wrap(command)
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=env)
        peak_rss = peak_anon = 0
        while process.poll() is None:
            usage = [memory_kb(pid) for pid in descendants(process.pid)]
            peak_rss = max(peak_rss, sum(u[0] for u in usage))
            peak_anon = max(peak_anon, sum(u[1] for u in usage))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        output = process.stdout.read()
        if not results.is_file():
            raise SystemExit(f"grading wrote no results (exit status {process.returncode}):\n{output[-3000:]}")
        data = json.loads(results.read_text())
        run = {"wall_seconds": wall, "peak_rss_mb": peak_rss / 1024, "peak_anon_mb": peak_anon / 1024,
               "score": data["score"], "results": data, "returncode": process.returncode,
               "log": [line for line in output.splitlines() if line.startswith("  ")]}
        if cgroup is not None:
            run.update(box_peak_mb=cgroup.peak_mb(), oom_kills=cgroup.oom_kills())
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark grading the reference solution.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--submission", type=Path, default=None,
                        help="a submission folder (default: the reference solution)")
    parser.add_argument("--small", action="store_true", help="the grader's small budget")
    parser.add_argument("--cores", default=None, help="taskset CPU list, e.g. 0 for one core")
    parser.add_argument("--box", choices=sorted(BOXES), default=None,
                        help="grade inside a cgroup of this size (needs root): gradescope = 0.5 vCPU and "
                             "768 MB, Gradescope's default")
    args = parser.parse_args(argv)
    if args.cores is not None and not shutil.which("taskset"):
        raise SystemExit("taskset is not installed (util-linux)")
    box = BOXES[args.box] if args.box else None
    with tempfile.TemporaryDirectory() as work:
        submission = args.submission
        if submission is None:
            submission = Path(work) / "reference"
            submission.mkdir()
            for name in ("vae.py", "assignment.py"):
                shutil.copyfile(REPO_DIR / "hw" / "code" / name, submission / name)
        runs = []
        for index in range(args.runs):
            try:
                run = grade_once(submission, args.small, args.cores, box)
            except BoxError as error:
                raise SystemExit(f"error: {error}") from None
            runs.append(run)
            inside = (f", box peak {run['box_peak_mb']:.0f} MB, OOM kills {run['oom_kills']}"
                      if box is not None else "")
            print(f"run {index + 1}: score {run['score']}, wall {run['wall_seconds']:.1f} s, "
                  f"peak RSS {run['peak_rss_mb']:.0f} MB (anonymous {run['peak_anon_mb']:.0f} MB){inside}",
                  flush=True)
            for line in run["log"]:
                print(f"  {line.strip()}")
    print(f"median of {len(runs)}: wall {statistics.median(r['wall_seconds'] for r in runs):.1f} s, "
          f"peak RSS {statistics.median(r['peak_rss_mb'] for r in runs):.0f} MB, "
          f"anonymous {statistics.median(r['peak_anon_mb'] for r in runs):.0f} MB"
          + (f", cores {args.cores}" if args.cores is not None else "")
          + (f", box {box}" if box is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
