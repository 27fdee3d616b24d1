"""Wall time of each experiment command of ``python -m experiments``, quick or full.

Each command runs as a fresh process (TensorFlow's start-up included) with its
own empty ``--outputs_dir``, so nothing is skipped as already finished. With
``--keep DIR`` the outputs (results, figures, reports) stay in
``DIR/<command>-<mode>/``; otherwise they go to a temporary folder.

Usage::

    python bench/bench_experiments.py [--mode quick|full|both] [--only beta-sweep anneal ...]
                                      [--keep DIR] [--json PATH]

Prints one line per command, then a Markdown table for ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]

# The commands of the README's experiments section, with their default flags.
COMMANDS: dict[str, list[str]] = {
    "beta-sweep": ["beta-sweep", "--betas", "0", "0.5", "1", "2", "4", "8"],
    "anneal": ["anneal", "--kl_warmup_epochs", "5"],
    "traverse": ["traverse"],
    "manifold": ["manifold"],
    "compare-ae": ["compare-ae"],
    "evaluate": ["evaluate", "--cvae", "--arch", "conv"],
}


def time_command(flags: list[str], quick: bool, keep: Path | None = None) -> dict:
    """Run one experiment command in a fresh process and time it.

    The outputs go to ``keep`` (which must not exist yet) or to a temporary folder.
    """
    with tempfile.TemporaryDirectory() as scratch:
        outputs = keep if keep is not None else Path(scratch)
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "experiments", *flags, "--outputs_dir", str(outputs.resolve()),
                   *(["--quick"] if quick else [])]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        start = time.perf_counter()
        # The package is found from the repository root, whatever the caller's folder.
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_DIR)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
    return {"flags": flags, "quick": quick, "seconds": seconds, "returncode": result.returncode}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Time each experiment command.")
    parser.add_argument("--mode", choices=["quick", "full", "both"], default="both")
    parser.add_argument("--only", nargs="+", choices=sorted(COMMANDS), default=list(COMMANDS),
                        help="the commands to time (default: all)")
    parser.add_argument("--keep", type=Path, help="keep each command's outputs under this folder")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep} exists; give a new folder so that no run is skipped")

    modes = {"quick": [True], "full": [False], "both": [True, False]}[args.mode]
    results: dict[str, dict[bool, dict]] = {}
    for name in args.only:
        for quick in modes:
            keep = None
            if args.keep is not None:
                keep = args.keep / f"{name.replace(' ', '_')}-{'quick' if quick else 'full'}"
            run = time_command(COMMANDS[name], quick, keep)
            results.setdefault(name, {})[quick] = run
            status = "ok" if run["returncode"] == 0 else f"FAILED (exit {run['returncode']})"
            print(f"{name} {'--quick' if quick else 'full'}: {run['seconds']:.1f} s, {status}", flush=True)

    def cell(run: dict | None) -> str:
        if run is None:
            return "not run"
        return f"{run['seconds']:.1f} s" if run["returncode"] == 0 else "failed"

    print("\n| command | `--quick` | full |\n| --- | --- | --- |")
    for name, runs in results.items():
        print(f"| `{' '.join(COMMANDS[name])}` | {cell(runs.get(True))} | {cell(runs.get(False))} |")
    if args.json:
        args.json.write_text(json.dumps([run for runs in results.values() for run in runs.values()],
                                        indent=1))
    return 0 if all(run["returncode"] == 0 for runs in results.values() for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
