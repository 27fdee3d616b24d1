"""The calibration population: independently written submissions and single-bug mutants of them.

``members/<name>/`` holds each correct submission (``vae.py`` and
``assignment.py``), written from the student API alone in a style of its own.
``specs_*.py`` describe them (``MEMBERS``: name -> style) and their mutants
(``MUTANTS``: name -> one exact text substitution in one file of a member, the
bug it writes in, and the checks that must lose points for it). Mutants are
written out on demand, never stored as copies.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

POPULATION_DIR = Path(__file__).resolve().parent
MEMBERS_DIR = POPULATION_DIR / "members"
SUBMISSION_FILES = ("vae.py", "assignment.py")


@dataclass(frozen=True)
class Member:
    name: str
    style: str

    @property
    def folder(self) -> Path:
        return MEMBERS_DIR / self.name


@dataclass(frozen=True)
class Mutant:
    name: str
    base: str
    file: str
    old: str
    new: str
    bug: str
    checks: tuple[str, ...]
    # How many times ``old`` occurs in the file; every occurrence is replaced.
    count: int = 1


def _specs():
    for path in sorted(POPULATION_DIR.glob("specs_*.py")):
        spec = importlib.util.spec_from_file_location(f"population_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def members() -> dict[str, Member]:
    """Every correct member, by name."""
    return {name: Member(name, style) for module in _specs() for name, style in module.MEMBERS.items()}


def mutants() -> dict[str, Mutant]:
    """Every single-bug mutant, by name."""
    return {name: Mutant(name=name, base=spec["base"], file=spec["file"], old=spec["old"], new=spec["new"],
                         bug=spec["bug"], checks=tuple(spec["checks"]), count=spec.get("count", 1))
            for module in _specs() for name, spec in module.MUTANTS.items()}


def submission_files(name: str) -> dict[str, str]:
    """The files of the member or mutant ``name``: file name -> text."""
    found_members, found_mutants = members(), mutants()
    mutant = found_mutants.get(name)
    base = found_members[mutant.base if mutant else name]
    files = {file: (base.folder / file).read_text() for file in SUBMISSION_FILES}
    if mutant:
        text = files[mutant.file]
        if text.count(mutant.old) != mutant.count:
            raise ValueError(f"mutant {name}: its text occurs {text.count(mutant.old)} times in {mutant.file}, "
                             f"not {mutant.count}")
        files[mutant.file] = text.replace(mutant.old, mutant.new)
    return files


def write_submission(name: str, destination: Path) -> Path:
    """Write the member or mutant ``name`` into ``destination`` (created); returns it."""
    destination.mkdir(parents=True, exist_ok=True)
    for file, text in submission_files(name).items():
        (destination / file).write_text(text)
    return destination
