"""``python -m autograder COMMAND``: grade one submission, grade a folder of them, build the Gradescope zip."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser("grade", help="grade one submission (a folder or a .zip)")
    grade.add_argument("submission", type=Path)
    grade.add_argument("--results", type=Path, default=Path("results.json"),
                       help="where to write the Gradescope results (default results.json)")
    grade.add_argument("--small", action="store_true",
                       help="small training budget, for tests and quick checks (not for real grades)")
    grade.add_argument("--seed", type=int, default=None, help="the grader's seed (default 1234)")

    grade_all = commands.add_parser("grade-all", help="grade every submission in a folder")
    grade_all.add_argument("submissions", type=Path)
    grade_all.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV gradebook")
    grade_all.add_argument("--results_dir", type=Path, default=None,
                           help="where the results files go (default: next to the gradebook)")
    grade_all.add_argument("--workers", type=int, default=1, help="submissions graded at once")
    grade_all.add_argument("--small", action="store_true", help="small training budget")

    build_zip = commands.add_parser("build-zip", help="build the Gradescope autograder zip")
    build_zip.add_argument("out", type=Path)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from autograder.cli import run_command

    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
