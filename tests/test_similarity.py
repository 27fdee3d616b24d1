"""similarity: a disguised copy ranks first, independent work and the bare stencil stay low, past terms count."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.tools.release import build_release
from autograder.tools.similarity import Pair, SimilarityError, similarity_report
from helpers import REPO_DIR
from population import members as population_members

MEMBERS = Path(__file__).resolve().parent / "population" / "members"
MEMBER_NAMES = sorted(population_members())
# The member that the disguised copy is made from.
SOURCE = "c_flatten_call"
COPY = "copycat"
# Measured with NOISE_T = 80: the 66 pairs of independent members score at most 0.3478
# (c_bottleneck, c_subclass_layers; median 0.13), the disguised copy of SOURCE 0.9749, and two
# untouched stencils 0.0. Disguised copies of each of the 12 members score 0.88 to 0.98.
FLAG_THRESHOLD = 0.5


def _move_after(text: str, name: str, after: str) -> str:
    """``text`` with the top-level function ``name`` moved to just after the top-level function ``after``."""
    # Top-level definitions are separated by two blank lines in every member (PEP 8).
    blocks = text.rstrip("\n").split("\n\n\n")
    block = next(block for block in blocks if block.startswith(f"def {name}("))
    blocks.remove(block)
    blocks.insert(next(i for i, other in enumerate(blocks) if other.startswith(f"def {after}(")) + 1, block)
    return "\n\n\n".join(blocks) + "\n"


def _replace_all(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


def disguise(source: Path, target: Path) -> None:
    """Copy a submission with its local names renamed and two top-level functions moved."""
    target.mkdir(parents=True)
    vae = _replace_all((source / "vae.py").read_text(), [
        ("enc = ", "features = "), ("(enc)", "(features)"), ("std", "sigma"), ("eps", "tolerance"),
        ("per_pixel", "log_likelihood"), ("batch_size", "count"), ("bce = ", "recon = "), ("(bce + ", "(recon + "),
    ])
    (target / "vae.py").write_text(_move_after(vae, "reparametrize", "loss_function"))
    assignment = _replace_all((source / "assignment.py").read_text(), [
        ("total_loss", "running_sum"), ("train_x", "pixels"), ("train_y", "digits"), ("targets", "rows"),
        ("grads", "gradients"), ("_train_steps", "_compiled_steps"), ("parser", "cli"),
    ])
    (target / "assignment.py").write_text(_move_after(assignment, "one_hot", "train_vae"))


def copy_stencil(target: Path, release: Path) -> None:
    target.mkdir(parents=True)
    for name in ("vae.py", "assignment.py"):
        shutil.copyfile(release / "hw" / "code" / name, target / name)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    header, *rows = csv.reader(path.open())
    return header, rows


@pytest.fixture(scope="module")
def population(tmp_path_factory) -> tuple[list[Pair], Path]:
    """The population's members and a disguised copy of one of them, compared; the pairs and the output folder."""
    folder = tmp_path_factory.mktemp("population") / "submissions"
    for member in MEMBER_NAMES:
        shutil.copytree(MEMBERS / member, folder / member)
    disguise(MEMBERS / SOURCE, folder / COPY)
    out = tmp_path_factory.mktemp("report")
    return similarity_report(folder, out, log=lambda line: None), out


def test_the_disguise_really_changes_the_text(tmp_path):
    disguise(MEMBERS / SOURCE, tmp_path / COPY)
    for name in ("vae.py", "assignment.py"):
        original, copy = (MEMBERS / SOURCE / name).read_text(), (tmp_path / COPY / name).read_text()
        assert copy != original and sorted(copy.splitlines()) != sorted(original.splitlines())
    text = (tmp_path / COPY / "vae.py").read_text()
    assert text.index("def loss_function(") < text.index("def reparametrize(")


def test_a_renamed_reordered_copy_ranks_first_far_above_independent_work(population):
    pairs, _ = population
    top = pairs[0]
    assert {top.a, top.b} == {SOURCE, COPY}
    independent = [pair for pair in pairs if COPY not in (pair.a, pair.b)]
    assert len(independent) == len(MEMBER_NAMES) * (len(MEMBER_NAMES) - 1) // 2
    assert top.similarity > 0.85
    assert top.similarity > max(pair.similarity for pair in independent) + 0.4


def test_independent_correct_submissions_stay_below_the_threshold(population):
    pairs, _ = population
    independent = [pair for pair in pairs if COPY not in (pair.a, pair.b)]
    assert max(pair.similarity for pair in independent) < FLAG_THRESHOLD


def test_two_untouched_stencils_are_not_flagged(tmp_path):
    release = tmp_path / "release"
    build_release(release)
    copy_stencil(tmp_path / "submissions" / "alice", release)
    copy_stencil(tmp_path / "submissions" / "bob", release)
    pairs = similarity_report(tmp_path / "submissions", tmp_path / "out", log=lambda line: None)
    assert len(pairs) == 1
    assert pairs[0].similarity < 0.05 < FLAG_THRESHOLD


def test_a_copy_of_a_past_submission_is_reported_against_the_reference(tmp_path):
    past = tmp_path / "fall2024"
    for name in ("a_newadam", "b_keras2"):
        shutil.copytree(MEMBERS / name, past / name)
    current = tmp_path / "submissions"
    # dan hands in last year's a_newadam as a zip, inside a folder of its own.
    current.mkdir()
    with zipfile.ZipFile(current / "dan.zip", "w") as archive:
        for name in ("vae.py", "assignment.py"):
            archive.write(MEMBERS / "a_newadam" / name, f"dan_hw/{name}")
    shutil.copytree(MEMBERS / "c_functional", current / "eve")
    (current / "frank").mkdir()
    (current / "frank" / "vae.py").write_text("x = 1\n")
    lines: list[str] = []
    pairs = similarity_report(current, tmp_path / "out", references=[past], log=lines.append)
    assert pairs[0].a == "dan.zip" and pairs[0].b == "reference/fall2024/a_newadam"
    assert pairs[0].similarity > 0.95
    names = {(pair.a, pair.b) for pair in pairs}
    # Two current submissions with each other and with two past ones; never past with past.
    assert len(pairs) == 1 + 2 * 2
    assert not any(a.startswith("reference/") for a, _ in names)
    assert any(line.startswith("skipped frank:") and "assignment.py" in line for line in lines)


def test_fewer_than_two_submissions_is_an_error(tmp_path):
    shutil.copytree(MEMBERS / "a_newadam", tmp_path / "submissions" / "alice")
    (tmp_path / "submissions" / "bob").mkdir()
    with pytest.raises(SimilarityError, match="fewer than two submissions"):
        similarity_report(tmp_path / "submissions", tmp_path / "out", log=lambda line: None)
    with pytest.raises(SimilarityError, match="not a folder"):
        similarity_report(tmp_path / "nowhere", tmp_path / "out", log=lambda line: None)


def test_the_csv_has_the_header_and_every_pair_once_most_similar_first(population):
    pairs, out = population
    header, rows = read_csv(out / "similarity.csv")
    assert header == ["a", "b", "similarity"]
    assert len(rows) == len(pairs) == (len(MEMBER_NAMES) + 1) * len(MEMBER_NAMES) // 2
    assert len({frozenset(row[:2]) for row in rows}) == len(rows)
    values = [float(row[2]) for row in rows]
    assert values == sorted(values, reverse=True)
    assert all(0 <= value <= 1 and len(row[2].split(".")[1]) == 4 for value, row in zip(values, rows))
    assert [(row[0], row[1]) for row in rows] == [(pair.a, pair.b) for pair in pairs]
    assert not list(out.glob(".*"))


def test_the_report_shows_the_top_pair_and_its_matching_code(population):
    pairs, out = population
    text = (out / "report.html").read_text()
    section = text[text.index("id='pair0'"):text.index("id='pair1'")]
    assert pairs[0].a in section and pairs[0].b in section
    # Code that the disguise left alone is marked as matching, on both sides.
    marked = re.findall(r"<span class='hl'>(.*?)</span>", section, flags=re.DOTALL)
    assert sum("tf.GradientTape() as tape" in passage for passage in marked) == 2


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "similarity", *args], cwd=REPO_DIR,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_the_command_runs_end_to_end(tmp_path):
    folder = tmp_path / "submissions"
    for name in ("a_elu4", "b_numpyloss", SOURCE):
        shutil.copytree(MEMBERS / name, folder / name)
    disguise(MEMBERS / SOURCE, folder / COPY)
    out = tmp_path / "new" / "out"
    done = _run_cli(str(folder), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "compared 6 pairs" in done.stdout
    header, rows = read_csv(out / "similarity.csv")
    assert header == ["a", "b", "similarity"] and {rows[0][0], rows[0][1]} == {SOURCE, COPY}
    assert SOURCE in (out / "report.html").read_text()


@pytest.mark.slow
def test_the_command_reports_a_missing_folder_in_one_line(tmp_path):
    done = _run_cli(str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
