"""Grade the calibration population with the grader's real defaults and check every verdict.

Every correct member (``tests/population/members``) must earn full marks on
every seed; every single-bug mutant must lose points on each check its bug
belongs to. Prints one row per grade (score, the checks that lost points,
epochs the grader trained, wall time, peak memory) and exits 1 when any
verdict is wrong. A full run grades 17 members on 3 seeds and 17 mutants on
one: hours on 2 cores, so run it in the background (or with ``--seeds 1234``)::

    python bench/bench_population.py [--seeds 1234 1 2] [--box gradescope] [--only NAME ...]
        [--members-only | --mutants-only] [--small] [--jobs N | --cores 1] [--json OUT.json]
        [--zip ROOT [--time-limit MINUTES]] [--load]

``--zip ROOT`` grades as an instructor deploys: the Gradescope zip built with
``--time-limit``, unpacked into ``ROOT/source`` and set up by its own
``setup.sh`` (as root: it runs apt), then every grade by the zip's
``run_autograder`` (in the box, with ``--box``). ``--load`` runs a CPU-bound
process on every core beside the grades, as a busy machine would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_DIR / "tests"))
sys.path.insert(0, str(REPO_DIR))

from autograder.scoring.checks import CHECKS, UNIT_CHECKS  # noqa: E402
from bench_grade import competing_load, deploy, grade_once  # noqa: E402
from box import BOXES, BoxError  # noqa: E402
from population import members, mutants, write_submission  # noqa: E402

EPOCHS = re.compile(r"The grader trained (\d+) epoch")
NAME_TO_KEY = {spec.name: spec.key for spec in CHECKS}
TRAINING_CHECKS = ("VAE training", "CVAE generation")


def epochs_trained(results: dict, check_name: str) -> str:
    for test in results["tests"]:
        if test["name"] == check_name:
            found = EPOCHS.search(test["output"])
            return found.group(1) if found else "-"
    return "-"


def verdict(expected_checks: tuple[str, ...] | None, results: dict) -> tuple[bool, list[str]]:
    """(right, lost check keys).

    A member must lose nothing. A mutant must lose points on each of its
    checks and keep every other unit check; the two training checks run the
    whole submission, so a bug anywhere may also cost them.
    """
    lost = [NAME_TO_KEY[t["name"]] for t in results["tests"] if t["score"] < t["max_score"]]
    if expected_checks is None:
        return not lost, lost
    stray = [key for key in lost if key not in expected_checks and key in UNIT_CHECKS]
    return all(key in lost for key in expected_checks) and not stray, lost


CHILD_PEAK = re.compile(r"peak (\d+) MB")


def markdown_table(rows: list[dict], box) -> str:
    """The rows as a Markdown table, in plan order, for BENCHMARKS.md."""
    memory = "box peak (MB)" if box else "peak RSS, all processes (MB)"
    lines = [f"| submission | seed | score | lost points on | VAE epochs | CVAE epochs | wall (s) | {memory} | "
             "largest child's peak RSS (MB) |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        child = max((int(m) for line in row["log"] for m in CHILD_PEAK.findall(line)), default=0)
        lines.append(f"| {row['name']} | {row['seed']} | {row['score']:g} | {', '.join(row['lost']) or '-'} | "
                     f"{row['vae_epochs']} | {row['cvae_epochs']} | {row['wall_seconds']:.0f} | {row['peak_mb']} | "
                     f"{child} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2],
                        help="the grader's seeds for the correct members (mutants: the first)")
    parser.add_argument("--box", choices=sorted(BOXES), default=None,
                        help="grade inside a cgroup of this size (needs root)")
    parser.add_argument("--only", nargs="+", default=None, help="grade only these members or mutants")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--members-only", action="store_true")
    group.add_argument("--mutants-only", action="store_true")
    parser.add_argument("--small", action="store_true", help="the grader's small budget (a quick smoke run)")
    parser.add_argument("--json", type=Path, default=None, help="write every grade's measurements here")
    parser.add_argument("--jobs", type=int, default=1,
                        help="grades at once; on the machine's cores each is pinned to one core")
    parser.add_argument("--cores", default=None, help="pin every grade to these cores (a taskset list, e.g. 1)")
    parser.add_argument("--markdown", action="store_true", help="also print the rows as a Markdown table")
    parser.add_argument("--zip", type=Path, default=None, metavar="ROOT",
                        help="deploy the Gradescope zip under ROOT with its setup.sh and grade with its run_autograder")
    parser.add_argument("--time-limit", type=float, default=10, metavar="MINUTES",
                        help="with --zip: the Gradescope timeout the zip is built for (default 10)")
    parser.add_argument("--load", action="store_true", help="a CPU-bound process on every core beside the grades")
    args = parser.parse_args(argv)

    found_members, found_mutants = members(), mutants()
    plan = []
    if not args.mutants_only:
        plan += [(name, None, seed) for name in found_members for seed in args.seeds]
    if not args.members_only:
        plan += [(name, mutant.checks, args.seeds[0]) for name, mutant in found_mutants.items()]
    if args.only:
        plan = [row for row in plan if row[0] in args.only]
    box = BOXES[args.box] if args.box else None
    deployment = None
    if args.zip is not None:
        print(f"deploying the zip ({args.time_limit:g} minutes) under {args.zip} with its setup.sh", flush=True)
        deployment = deploy(args.zip, args.time_limit)
    print(f"{len(found_members)} members, {len(found_mutants)} mutants; {len(plan)} grades"
          + (" through the zip's run_autograder" if deployment else "")
          + (f" inside a box of {box}" if box else " on this machine's cores")
          + (", a CPU-bound process beside them" if args.load else ""), flush=True)
    print(f"{'submission':34s} {'seed':>5s} {'score':>6s} {'VAE ep':>6s} {'CVAE ep':>7s} {'wall s':>7s} "
          f"{'peak MB':>8s}  verdict  lost points on", flush=True)
    rows, wrong = [], []
    lock = threading.Lock()

    def grade_row(index: int, name: str, expected, seed: int) -> None:
        # With several jobs, each grade is pinned to one core (in a box, each gets its own box).
        cores = args.cores
        if cores is None and args.jobs > 1 and box is None:
            cores = str(index % len(os.sched_getaffinity(0)))
        with tempfile.TemporaryDirectory() as work:
            submission = write_submission(name, Path(work) / name)
            run = grade_once(submission, small=args.small, box=box, seed=seed, cores=cores, deployment=deployment)
        right, lost = verdict(expected, run["results"])
        peak = run.get("box_peak_mb", run["peak_rss_mb"])
        row = {"name": name, "kind": "member" if expected is None else "mutant", "seed": seed,
               "score": run["score"], "lost": lost, "expected": list(expected or ()), "right": right,
               "vae_epochs": epochs_trained(run["results"], "VAE training"),
               "cvae_epochs": epochs_trained(run["results"], "CVAE generation"),
               "wall_seconds": round(run["wall_seconds"], 1), "peak_mb": round(peak), "cores": cores,
               "oom_kills": run.get("oom_kills"), "log": run["log"],
               "isolation": run["results"].get("extra_data", {}).get("isolation"),
               "warnings": run["results"].get("extra_data", {}).get("warnings", []),
               "feedback": {t["name"]: t["output"] for t in run["results"]["tests"]
                            if t["score"] < t["max_score"] or t["name"] in TRAINING_CHECKS}}
        with lock:
            rows.append(row)
            if not right:
                wrong.append(row)
            print(f"{name:34s} {seed:>5d} {run['score']:>6.1f} {row['vae_epochs']:>6s} {row['cvae_epochs']:>7s} "
                  f"{run['wall_seconds']:>7.0f} {peak:>8.0f}  {'ok' if right else 'WRONG':7s}  "
                  f"{', '.join(lost) or '-'}" + (f" (expected {', '.join(expected)})" if expected else ""),
                  flush=True)
            isolation = row["isolation"] or {}
            if isolation.get("user") != "unprivileged":
                print(f"  children ran as {isolation.get('user', 'an unknown')} user", flush=True)
            for warning in row["warnings"]:
                print(f"  warning: {warning}", flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool, \
                (competing_load() if args.load else contextlib.nullcontext()):
            for future in [pool.submit(grade_row, i, *row) for i, row in enumerate(plan)]:
                future.result()
    except BoxError as error:
        raise SystemExit(f"error: {error}") from None
    if args.markdown:
        print(markdown_table(rows, box))
    correct = [r for r in rows if r["kind"] == "member"]
    print(f"members: {sum(r['right'] for r in correct)}/{len(correct)} full marks; mutants: "
          f"{sum(r['right'] for r in rows if r['kind'] == 'mutant')}/{len(rows) - len(correct)} lose points "
          "on their checks", flush=True)
    for row in wrong:
        print(f"WRONG {row['name']} (seed {row['seed']}): lost {row['lost']}, expected {row['expected']}")
        for check, feedback in row["feedback"].items():
            print(f"  {check}: {re.sub('<[^>]+>', ' ', feedback)[:400]}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
