"""The commands behind ``python -m autograder``."""

from __future__ import annotations

import dataclasses
import sys

from autograder.config import GradeConfig
from autograder.grading.grade import GraderError, grade
from autograder.grading.results import format_table


def config_from(args) -> GradeConfig:
    config = GradeConfig.deployed()
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


def command_finish_grade(args) -> int:
    from autograder.grading.unfinished import finish

    cause = finish(args.results, args.exit_status, GradeConfig().recommended_memory_mb)
    if cause is None:
        print(f"the grader wrote its results before it exited ({args.results})", file=sys.stderr)
    else:
        print(f"the grade did not finish ({cause['cause']}); results completed in {args.results}", file=sys.stderr)
    return 0


def command_grade_all(args) -> int:
    from autograder.tools.batch import config_from as batch_config, grade_all

    if args.workers is not None and args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    return grade_all(batch_config(args))


def command_similarity(args) -> int:
    from autograder.tools.similarity import SimilarityError, similarity_report

    try:
        pairs = similarity_report(args.submissions, args.out, references=args.reference,
                                  log=lambda line: print(line, file=sys.stderr, flush=True))
    except SimilarityError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"compared {len(pairs)} pairs; wrote {args.out / 'similarity.csv'} and {args.out / 'report.html'}")
    return 0


def command_build_zip(args) -> int:
    from autograder.tools.gradescope import build_zip

    if not 1 <= args.time_limit <= 40:
        print(f"error: --time-limit must be between 1 and 40 minutes (Gradescope's range), got {args.time_limit:g}",
              file=sys.stderr)
        return 2
    path = build_zip(args.out, time_limit_minutes=args.time_limit)
    print(f"wrote {path}")
    return 0


def command_release(args) -> int:
    from autograder.tools.release import ReleaseError, write_release

    try:
        path = write_release(args.out_dir, force=args.force, make_zip=args.zip)
    except ReleaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote the student release to {path}" + (f" and {path}.zip" if args.zip else ""))
    return 0


def command_check_release(args) -> int:
    from autograder.tools.release import ReleaseError, check_release

    try:
        result = check_release(config_from(args), log=lambda line: print(line, file=sys.stderr, flush=True))
    except (GraderError, ReleaseError) as error:
        print(f"error: check-release could not run: {error}", file=sys.stderr)
        return 2
    print(f"Reference solution (hw/code/vae.py and assignment.py):\n{format_table(result.reference)}\n")
    print(f"Stencil (hw/code of a fresh release):\n{format_table(result.stencil)}\n")
    if result.problems:
        print(f"check-release: {len(result.problems)} surprise(s):", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"check-release: ok: the reference earns {result.reference.score:g}/{result.reference.max_score:g}, "
          f"the stencil {result.stencil.score:g}, and nothing of the solution leaks into the release")
    return 0


def command_handout_table(args) -> int:
    from autograder.tools.release import HANDOUT, ReleaseError, points_table, update_handout

    if not (args.write or args.check):
        print(points_table())
        return 0
    try:
        current = update_handout(HANDOUT, write=args.write)
    except ReleaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if current:
        print(f"{HANDOUT.name}: the points table matches CHECKS")
    elif args.write:
        print(f"{HANDOUT.name}: rewrote the points table from CHECKS")
    else:
        print(f"error: the points table of {HANDOUT.name} differs from CHECKS; "
              "run python -m autograder handout-table --write", file=sys.stderr)
        return 1
    return 0


def run_command(args) -> int:
    commands = {"grade": command_grade, "finish-grade": command_finish_grade, "grade-all": command_grade_all,
                "similarity": command_similarity, "build-zip": command_build_zip,
                "release": command_release, "check-release": command_check_release,
                "handout-table": command_handout_table}
    return commands[args.command](args)
