"""``python -m autograder COMMAND``: grade submissions, build the Gradescope zip, release the assignment."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


SEED_HELP = "the master seed of every input (default: from autograder/secret and the submission's files)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser("grade", help="grade one submission (a folder or a .zip)")
    grade.add_argument("submission", type=Path)
    grade.add_argument("--results", type=Path, default=Path("results.json"),
                       help="where to write the Gradescope results (default results.json)")
    grade.add_argument("--small", action="store_true",
                       help="small training budget, for tests and quick checks (not for real grades)")
    grade.add_argument("--seed", type=int, default=None, help=SEED_HELP)

    finish = commands.add_parser(
        "finish-grade", help="complete the results of a grader that did not exit normally (run_autograder runs it)")
    finish.add_argument("--results", type=Path, required=True, help="the results file the grader was writing")
    finish.add_argument("--exit-status", type=int, required=True,
                        help="the grader's exit status as a shell reports it (128+N: stopped by signal N)")

    grade_all = commands.add_parser("grade-all", help="grade every submission in a folder")
    grade_all.add_argument("submissions", type=Path)
    grade_all.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV gradebook")
    grade_all.add_argument("--results_dir", type=Path, default=None,
                           help="where the results files go (default: results/ next to the gradebook)")
    grade_all.add_argument("--feedback_dir", type=Path, default=None,
                           help="where the students' feedback files go (default: feedback/ next to the gradebook)")
    grade_all.add_argument("--workers", type=int, default=None,
                           help="submissions graded at once (default: as many as the cores and memory allow)")
    grade_all.add_argument("--small", action="store_true", help="small training budget")
    grade_all.add_argument("--seed", type=int, default=None, help=SEED_HELP)
    grade_all.add_argument("--force", action="store_true",
                           help="grade every submission again, even those already graded")

    similarity = commands.add_parser(
        "similarity", help="pairwise code similarity of the submissions (the stencil excluded as boilerplate)")
    similarity.add_argument("submissions", type=Path, help="a folder of submissions (folders or .zip files)")
    similarity.add_argument("--out", type=Path, required=True, help="where similarity.csv and report.html go")
    similarity.add_argument("--reference", type=Path, action="append", default=[], metavar="FOLDER",
                            help="a folder of past submissions to compare against (repeatable)")

    build_zip = commands.add_parser(
        "build-zip", help="build the Gradescope autograder zip",
        description="Build the Gradescope autograder zip. Give the autograder 2 GB of memory and a 20-minute "
                    "timeout on Gradescope, and pass that timeout here (--time-limit 20). Measured in a box of "
                    "Gradescope's 0.5 vCPU: in the default 768 MB a convolutional network ran out of memory, "
                    "and in 10 minutes the widest eager network stopped one epoch short of the VAE's bar; with "
                    "2 GB every measured member earned full marks, the widest with 20 minutes (its grade took "
                    "9.3). "
                    "Each grade says so when its container is below 2 GB or when time cut its training short.")
    build_zip.add_argument("out", type=Path)
    build_zip.add_argument("--time-limit", type=float, default=10.0, metavar="MINUTES",
                           help="the autograder timeout set on Gradescope (default 10, Gradescope's default; "
                                "1 to 40): each grade plans its training to end 40 s before it")

    release = commands.add_parser("release", help="write the student release (stencil, handout, README)")
    release.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    release.add_argument("--force", action="store_true", help="replace OUT_DIR (and OUT_DIR.zip) if not empty")
    release.add_argument("--zip", action="store_true", help="also write OUT_DIR.zip for distribution")

    check_release = commands.add_parser(
        "check-release", help="grade the reference (full marks expected) and a fresh stencil (zero expected)")
    check_release.add_argument("--small", action="store_true", help="small training budget, for tests and CI")
    check_release.add_argument("--seed", type=int, default=None, help=SEED_HELP)

    handout_table = commands.add_parser("handout-table", help="the points table of handout.md, from CHECKS")
    mode = handout_table.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the table in handout.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when handout.md's table is out of date")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from autograder.cli import run_command

    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
