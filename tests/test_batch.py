"""grade-all: one results file and one gradebook row per submission, whatever each one does."""

import csv
import shutil
import subprocess
import sys

import pytest

from autograder.checks import CHECKS
from helpers import CODE_DIR, REPO_DIR, require_mnist_dir


@pytest.mark.slow
def test_grade_all_writes_a_row_per_submission_even_for_broken_ones(tmp_path):
    require_mnist_dir()
    folder = tmp_path / "submissions"
    broken = folder / "alice"
    broken.mkdir(parents=True)
    shutil.copyfile(CODE_DIR / "vae.py", broken / "vae.py")
    (broken / "assignment.py").write_text("import os\nos._exit(3)\n")
    (folder / "bob").mkdir()
    (folder / "bob" / "assignment.py").write_text("x = 1\n")
    (folder / "carol.zip").write_bytes(b"not a zip at all")
    out = tmp_path / "grades.csv"
    done = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(folder), "--out", str(out),
                           "--small", "--workers", "2"], cwd=REPO_DIR, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"alice", "bob", "carol.zip"}
    assert all(float(row["total"]) >= 0 for row in rows.values())
    assert list(next(csv.reader(out.open()))) == ["submission", "total", *[s.name for s in CHECKS], "unverified",
                                                   "error"]
    # alice's vae.py is right; her assignment.py exits at import, so only the vae.py checks score.
    assert float(rows["alice"]["total"]) == sum(
        s.points for s in CHECKS if s.key in ("reparametrize", "reparametrize_gradient", "loss_function",
                                              "vae_forward", "cvae_forward"))
    assert float(rows["bob"]["total"]) == 0
    for name in ("alice", "bob", "carol"):
        assert (tmp_path / "results" / f"{name}.json").is_file()


def test_grade_all_on_an_empty_folder_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "autograder", "grade-all", str(tmp_path)], cwd=REPO_DIR,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no submissions" in done.stderr and "Traceback" not in done.stderr
