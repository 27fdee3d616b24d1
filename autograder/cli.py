"""The commands behind ``python -m autograder``."""

from __future__ import annotations

import dataclasses
import sys

from autograder.config import GradeConfig
from autograder.grade import GraderError, grade
from autograder.results import format_table


def config_from(args) -> GradeConfig:
    config = GradeConfig()
    if getattr(args, "seed", None) is not None:
        config = dataclasses.replace(config, seed=args.seed)
    return config.small() if args.small else config


def command_grade(args) -> int:
    try:
        report = grade(args.submission, args.results, config_from(args),
                       log=lambda line: print(line, file=sys.stderr, flush=True))
    except GraderError as error:
        print(f"error: the grader could not run: {error}\nresults written to {args.results}", file=sys.stderr)
        return 1
    print(format_table(report))
    print(f"results written to {args.results}")
    return 0


def command_grade_all(args) -> int:
    from autograder.batch import grade_all

    return grade_all(args.submissions, args.out, args.results_dir, args.workers, args.small)


def command_build_zip(args) -> int:
    from autograder.gradescope import build_zip

    path = build_zip(args.out)
    print(f"wrote {path}")
    return 0


def run_command(args) -> int:
    commands = {"grade": command_grade, "grade-all": command_grade_all, "build-zip": command_build_zip}
    return commands[args.command](args)
