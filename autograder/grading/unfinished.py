"""Results for a grade the grader does not finish.

While it grades, the grader keeps a provisional results file on disk (``ProvisionalResults``): the
checks it has scored, with their scores, and every other check at zero with a note of the stage the
grade had reached. A grader killed from outside (most often by the container's out-of-memory killer,
which leaves it no chance to write anything) thus still leaves a valid grade and a reason.
``finish``, which ``run_autograder`` and ``grade-all`` call after a grader that did not exit
normally, adds what stopped it: memory, where the container's memory cgroup counted an
out-of-memory kill during the stage the grade had reached, else the signal or exit status.

``finish`` runs in the container where the grader died: this module never imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading.results import Report, TestResult, read_json, write_json, write_results
from autograder.grading.sandbox import MemoryCgroup, memory_cgroup, signal_name
from autograder.scoring.checks import CHECKS

# What the grader was doing at each stage, as the student and the instructor read it ("... stopped while it STAGE").
STAGES = {
    "start": "prepared the grade, before it ran any submitted code",
    "units": "ran the unit checks",
    "vae": "trained the VAE",
    "cvae": "trained the CVAE",
    "scoring": "scored the trained models",
}
# The key of the provisional results' extra data; ``finish`` replaces it by ``INTERRUPTED``.
PROVISIONAL = "provisional"
INTERRUPTED = "interrupted"


def unfinished_feedback(stage: str, cause: str | None = None, note: str = "") -> str:
    """What an unscored check says: the stage the grade stopped at and, once ``finish`` knows it, why."""
    why = cause or ("The grader itself was stopped from outside (on a grading machine this is almost always "
                    "its memory or time limit), so this is not a verdict on your code.")
    return (f"Not scored: the grade did not finish. The grader was stopped while it {STAGES[stage]}, before it "
            f"scored this check. {why} Checks with a score are final; ask the course staff to grade your "
            f"submission again for this one.{' ' + note if note else ''}")


def _unscored(name: str, points: float, stage: str, note: str = "") -> TestResult:
    return TestResult(name, 0.0, points, unfinished_feedback(stage, note=note),
                      extra_data={"unfinished": True, **({"note": note} if note else {})})


@dataclass
class ProvisionalResults:
    """The results file of a grade in progress, rewritten at each stage (atomically, as the final one)."""

    path: Path
    # The container's memory cgroup, whose out-of-memory kills each stage records (None: not counted).
    cgroup: MemoryCgroup | None = None
    # What the grade knows of its machine and isolation, for the instructor.
    extra_data: dict = field(default_factory=dict)

    def write(self, stage: str, scored: dict[str, TestResult] | None = None,
              notes: dict[str, str] | None = None, seconds: float = 0.0) -> None:
        """Record that the grade has reached ``stage``: ``scored`` checks keep their results, the others
        are at zero with the stage (and ``notes[key]``, what is known of their run so far).

        The out-of-memory kills counted now tell ``finish`` whether one happened during this stage.
        """
        scored, notes = scored or {}, notes or {}
        tests = [scored[spec.key] if spec.key in scored else
                 _unscored(spec.name, spec.points, stage, notes.get(spec.key, "")) for spec in CHECKS]
        oom_kills = self.cgroup.oom_kills() if self.cgroup else None
        write_results(Report(tests, f"The grade did not finish: the grader was stopped while it {STAGES[stage]}.",
                             seconds, extra_data={**self.extra_data, PROVISIONAL: {"stage": stage,
                                                                                   "oom_kills": oom_kills}}),
                      self.path)


def stop_cause(returncode: int, oom_kills_before: int | None, cgroup: MemoryCgroup | None) -> dict:
    """Why a grader ended with ``returncode`` (negative: killed by that signal, as ``subprocess`` reports it;
    above 128: a shell's status of a signal): ``{"cause": "memory" | "signal" | "exit", ...}``.

    Memory, where the grader was killed by SIGKILL (all the out-of-memory killer sends) and the
    container's memory cgroup counts more out-of-memory kills than when the stage began.
    """
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    name = signal_name(number) if number else None
    kills = cgroup.oom_kills() if cgroup else None
    if name == "SIGKILL" and kills is not None and oom_kills_before is not None and kills > oom_kills_before:
        limit_mb = cgroup.limit_mb()
        return {"cause": "memory", "signal": name, "memory_limit_mb": None if limit_mb is None else round(limit_mb)}
    if name:
        return {"cause": "signal", "signal": name}
    return {"cause": "exit", "exit_status": returncode}


def stop_summary(cause: dict) -> str:
    """A few words on what stopped the grader, for a gradebook's error column."""
    if cause["cause"] == "memory":
        return "the out-of-memory killer stopped the grader"
    if cause["cause"] == "signal":
        return f"{cause['signal']} stopped the grader"
    return f"the grader ended with exit status {cause['exit_status']} before it wrote its results"


def cause_text(cause: dict, recommended_memory_mb: int) -> tuple[str, str]:
    """What stopped the grader: (the sentences the student reads, the clause the instructor's warning adds)."""
    if cause["cause"] == "memory":
        limit = cause.get("memory_limit_mb")
        size = f" (its limit is {limit} MB for the grader and all it runs)" if limit else ""
        advice = (f"give the autograder more memory (the grader needs {recommended_memory_mb} MB for large "
                  "networks) and grade it again")
        return (f"The machine that grades it ran out of memory{size}, and its out-of-memory killer stopped the "
                "grader. A smaller network needs less memory, and the course staff can raise the limit.",
                "the container's out-of-memory killer stopped it" + (f" at its limit of {limit} MB" if limit else "")
                + f": {advice}")
    if cause["cause"] == "signal":
        return (f"It was stopped from outside by {cause['signal']} (for example by the platform's time limit), so "
                "this is not a verdict on your code.",
                f"{cause['signal']} stopped it from outside: grade it again")
    return (f"It ended with exit status {cause['exit_status']} before it wrote its results, so this is not a "
            "verdict on your code.", f"it ended with exit status {cause['exit_status']}: grade it again")


def finish(results_path: Path, returncode: int, recommended_memory_mb: int,
           cgroup: MemoryCgroup | None = None) -> dict | None:
    """After a grader that exited with ``returncode`` (not 0): complete the provisional results it left
    at ``results_path`` with what stopped it, or write them afresh if it left none; returns the cause.

    Final results (the grader wrote them before it exited, as it does after its own errors) are left
    alone, and None is returned. ``cgroup`` defaults to this process's memory cgroup.
    """
    path = Path(results_path)
    data = _read(path)
    if data is not None and PROVISIONAL not in (data.get("extra_data") or {}):
        return None
    if data is None:
        ProvisionalResults(path).write("start")
        data = _read(path)
    extra = data["extra_data"]
    state = extra.pop(PROVISIONAL)
    cause = stop_cause(returncode, state.get("oom_kills"), memory_cgroup() if cgroup is None else cgroup)
    student, instructor = cause_text(cause, recommended_memory_mb)
    for test in data["tests"]:
        test_extra = test.get("extra_data") or {}
        if test_extra.get("unfinished"):
            test["output"] = unfinished_feedback(state["stage"], student, test_extra.get("note", ""))
    data["output"] = f"{data['output']} {student}"
    extra[INTERRUPTED] = {"stage": state["stage"], **cause}
    extra["warnings"] = [*extra.get("warnings", []),
                         f"the grade did not finish: the grader was stopped while it {STAGES[state['stage']]}; "
                         f"{instructor}"]
    write_json(data, path)
    return cause


def _read(path: Path) -> dict | None:
    """The results file at ``path``, or None when there is none to complete."""
    data = read_json(path)
    return data if data is not None and isinstance(data.get("tests"), list) else None
