"""``similarity``: pairwise code similarity of the submissions, the released stencil excluded as boilerplate.

Only the student's own files (``vae.py`` and ``assignment.py``) are compared,
with copydetect's fingerprints: each file is tokenised and its names
replaced by placeholders (so renaming variables or functions does not hide a
copy), every run of ``NOISE_T`` filtered characters is hashed, and the hashes
that also occur in the stencil are dropped. Files are compared with the file
of the same name in the other submission only.

A pair's similarity is the share of both submissions' code, over both files,
that lies in passages matching the other submission:

    sum over f of (overlap(A, f) + overlap(B, f)) / sum over f of (tokens(A, f) + tokens(B, f))

where ``tokens(X, f)`` counts the filtered characters of file ``f`` of ``X``
that its fingerprints cover once the stencil's are removed, and
``overlap(X, f)`` those of them in passages matching the other submission's
file ``f``. It lies in [0, 1], is symmetric, and weighs each file and each
direction by its size, so a short copied file does not dominate a long
independent one; two untouched stencils, with no code of their own, score 0.
"""

from __future__ import annotations

import csv
import html
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from autograder.grading.submission import REQUIRED_FILES, SubmissionError, _find_root, _folder_names, _zip_names
from autograder.tools.batch import find_submissions

# The shortest matching run of filtered code (names replaced by one letter, no spaces or comments)
# that counts, in characters: about three to five lines of code. copydetect's default, 25, is too short
# for this assignment, whose correct solutions share many short idioms: over the 12 independent members
# of tests/population, the most similar pair scores 0.65 at 25, 0.47 at 60 and 0.35 at 80, while a
# renamed and reordered copy of any of them scores 0.88 to 0.98 at 80. Every run is fingerprinted
# (no winnowing gaps): a class's submissions are small, so the exact comparison costs little.
NOISE_T = 80
# How many of the most similar pairs report.html shows side by side.
REPORT_PAIRS = 25


class SimilarityError(Exception):
    """The similarity report cannot be made (a missing folder, too few submissions); the message says why."""


@dataclass(frozen=True)
class Pair:
    """Two submissions' names and their similarity in [0, 1]."""

    a: str
    b: str
    similarity: float


@dataclass(frozen=True)
class _Extracted:
    """One submission's student files, copied into ``folder`` under the display name ``name``."""

    name: str
    folder: Path


def _student_files(source: Path) -> dict[str, bytes]:
    """The bytes of ``vae.py`` and ``assignment.py`` of a submission folder or zip (SubmissionError if absent)."""
    if source.is_dir():
        root = _find_root(_folder_names(source))
        return {name: (source / f"{root}{name}").read_bytes() for name in REQUIRED_FILES}
    if not zipfile.is_zipfile(source):
        raise SubmissionError("not a readable zip file")
    try:
        with zipfile.ZipFile(source) as archive:
            root = _find_root(_zip_names(archive))
            return {name: archive.read(f"{root}{name}") for name in REQUIRED_FILES}
    except (zipfile.BadZipFile, OSError, RuntimeError) as error:
        raise SubmissionError(f"the zip could not be read ({error})")


def _extract_folder(folder: Path, target: Path, prefix: str, log: Callable[[str], None]) -> list[_Extracted]:
    """Copy the student files of every submission in ``folder`` into a sub-folder of ``target`` each."""
    extracted = []
    for index, source in enumerate(find_submissions(folder)):
        name = f"{prefix}{source.name}"
        try:
            files = _student_files(source)
        except (SubmissionError, OSError) as error:
            log(f"skipped {name}: {error}")
            continue
        destination = target / f"{index:05d}"
        destination.mkdir(parents=True)
        for file_name, data in files.items():
            # Written back as UTF-8: copydetect skips a file it cannot decode, which would hide it silently.
            (destination / file_name).write_text(data.decode("utf-8", errors="replace"), encoding="utf-8")
        extracted.append(_Extracted(name, destination))
    return extracted


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so no reader sees half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        # mkstemp makes the file private; the report is meant to be read like any other output.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_text(pairs: list[Pair]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["a", "b", "similarity"])
    writer.writerows([pair.a, pair.b, f"{pair.similarity:.4f}"] for pair in pairs)
    return buffer.getvalue()


_REPORT_STYLE = """
body { font-family: sans-serif; margin: 2em; }
table.pairs td, table.pairs th { padding: 0.2em 1em; text-align: left; }
table.code { width: 100%; table-layout: fixed; border-collapse: collapse; }
table.code td { vertical-align: top; border: 1px solid #ccc; padding: 0.5em; }
pre { font-size: 0.8em; white-space: pre-wrap; margin: 0; }
.hl { background: #ffd7a8; }
"""


def _report_html(pairs: list[Pair], passages: dict[tuple[str, str], dict[str, tuple[str, str]]]) -> str:
    """The top pairs' table and, for each, both submissions' files side by side, matching passages marked."""
    rows = "".join(f"<tr><td><a href='#pair{i}'>{i + 1}</a></td><td>{html.escape(p.a)}</td>"
                   f"<td>{html.escape(p.b)}</td><td>{p.similarity:.4f}</td></tr>\n" for i, p in enumerate(pairs))
    parts = ["<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Code similarity</title>",
             f"<style>{_REPORT_STYLE}</style></head><body>\n<h1>Code similarity</h1>\n",
             "<p>The most similar pairs of submissions; code shared with the released stencil is not counted. "
             "Marked passages match the other submission (names may differ).</p>\n"]
    if not pairs:
        parts.append("<p>No two submissions share any code beyond the stencil.</p>\n")
    else:
        parts.append("<table class='pairs'><tr><th>#</th><th>a</th><th>b</th><th>similarity</th></tr>\n"
                     f"{rows}</table>\n")
    for i, pair in enumerate(pairs):
        a, b = html.escape(pair.a), html.escape(pair.b)
        parts.append(f"<h2 id='pair{i}'>{i + 1}. {a} &harr; {b}: {pair.similarity:.4f}</h2>\n")
        for file_name, (code_a, code_b) in passages[(pair.a, pair.b)].items():
            parts.append(f"<h3>{file_name}</h3>\n<table class='code'><tr><th>{a}</th><th>{b}</th></tr>\n"
                         f"<tr><td><pre>{code_a}</pre></td><td><pre>{code_b}</pre></td></tr></table>\n")
    parts.append("</body></html>\n")
    return "".join(parts)


def _compare(current: list[_Extracted], references: list[_Extracted], boilerplate: Path,
             work: Path) -> tuple[list[Pair], dict[tuple[str, str], dict[str, tuple[str, str]]]]:
    """Every current submission against every other and every reference one; the pairs, most similar first,
    and the highlighted code of the top ``REPORT_PAIRS`` of them (only pairs that share some code)."""
    from copydetect import CopyDetector
    from copydetect.utils import highlight_overlap

    detector = CopyDetector(
        test_dirs=[str(item.folder) for item in current],
        ref_dirs=[str(item.folder) for item in (*current, *references)],
        boilerplate_dirs=[str(boilerplate)], extensions=["py"], noise_t=NOISE_T, guarantee_t=NOISE_T,
        display_t=0.0, same_name_only=True, autoopen=False, silent=True,
        out_file=str(work / "copydetect.html"))
    detector.run()
    test_index = {path: i for i, path in enumerate(detector.test_files)}
    ref_index = {path: i for i, path in enumerate(detector.ref_files)}

    def score(a: _Extracted, b: _Extracted) -> float:
        shared = total = 0.0
        for file_name in REQUIRED_FILES:
            path_a, path_b = str(a.folder / file_name), str(b.folder / file_name)
            tokens_a = detector.file_data[path_a].token_coverage
            tokens_b = detector.file_data[path_b].token_coverage
            # Each direction's share of that file's fingerprinted code in matching passages.
            share_a, share_b = (max(0.0, s) for s in detector.similarity_matrix[test_index[path_a],
                                                                                ref_index[path_b]])
            shared += share_a * tokens_a + share_b * tokens_b
            total += tokens_a + tokens_b
        return min(1.0, shared / total) if total > 0 else 0.0

    def highlighted(a: _Extracted, b: _Extracted) -> dict[str, tuple[str, str]]:
        code = {}
        for file_name in REQUIRED_FILES:
            path_a, path_b = str(a.folder / file_name), str(b.folder / file_name)
            if (path_a, path_b) in detector.slice_matrix:
                slices_a, slices_b = detector.slice_matrix[(path_a, path_b)]
            elif (path_b, path_a) in detector.slice_matrix:
                slices_b, slices_a = detector.slice_matrix[(path_b, path_a)]
            else:
                code[file_name] = tuple(html.escape(detector.file_data[p].raw_code) for p in (path_a, path_b))
                continue
            code[file_name] = tuple(
                highlight_overlap(detector.file_data[path].raw_code, slices, "<span class='hl'>", "</span>",
                                  escape_html=True)[0]
                for path, slices in ((path_a, slices_a), (path_b, slices_b)))
        return code

    scored = [(a, b, score(a, b)) for i, a in enumerate(current) for b in (*current[i + 1:], *references)]
    scored.sort(key=lambda item: (-round(item[2], 4), item[0].name, item[1].name))
    pairs = [Pair(a.name, b.name, round(float(similarity), 4)) for a, b, similarity in scored]
    passages = {(a.name, b.name): highlighted(a, b) for a, b, similarity in scored[:REPORT_PAIRS] if similarity > 0}
    return pairs, passages


def similarity_report(submissions_dir: Path, out_dir: Path, references: Sequence[Path] = (),
                      log: Callable[[str], None] = print) -> list[Pair]:
    """Compare the submissions in ``submissions_dir`` pairwise (and with those of each ``references`` folder);
    write ``out_dir/similarity.csv`` (``a,b,similarity``, most similar first) and ``out_dir/report.html``.

    Reference submissions are named ``reference/<folder name>/<submission>`` and compared with the current
    ones only. Returns every pair, most similar first.
    """
    from autograder.tools.release import build_release

    submissions_dir, out_dir = Path(submissions_dir), Path(out_dir)
    references = [Path(folder) for folder in references]
    for folder in (submissions_dir, *references):
        if not folder.is_dir():
            raise SimilarityError(f"{folder} is not a folder of submissions")
    prefixes = [f"reference/{folder.resolve().name}/" for folder in references]
    if len(set(prefixes)) < len(prefixes):
        raise SimilarityError("two --reference folders have the same name; their submissions could not be told "
                              "apart in the report")
    with tempfile.TemporaryDirectory(prefix="similarity-") as tmp:
        work = Path(tmp)
        current = _extract_folder(submissions_dir, work / "current", "", log)
        past = [item for k, (folder, prefix) in enumerate(zip(references, prefixes))
                for item in _extract_folder(folder, work / f"reference{k}", prefix, log)]
        if not current or len(current) + len(past) < 2:
            raise SimilarityError(f"fewer than two submissions with {' and '.join(REQUIRED_FILES)} to compare "
                                  f"({len(current)} in {submissions_dir}, {len(past)} in the reference folders)")
        release = work / "release"
        build_release(release)
        # Only the two stencil files are boilerplate; the provided modules are not among the compared files.
        stencil = work / "stencil"
        stencil.mkdir()
        for file_name in REQUIRED_FILES:
            (stencil / file_name).write_bytes((release / "hw" / "code" / file_name).read_bytes())
        log(f"comparing {len(current)} submissions" + (f" and {len(past)} past ones" if past else ""))
        pairs, passages = _compare(current, past, stencil, work)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(out_dir / "similarity.csv", _csv_text(pairs))
        _write_atomically(out_dir / "report.html",
                          _report_html([pair for pair in pairs if (pair.a, pair.b) in passages], passages))
    except OSError as error:
        raise SimilarityError(f"could not write the report into {out_dir}: {error.strerror or error}")
    return pairs
