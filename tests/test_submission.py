"""Finding and copying a submission: folders, zips one folder down, unsafe archives, symlinks."""

import os
import zipfile

import pytest

from autograder.grading.submission import HARNESS_NAME, PROVIDED_MODULES, SubmissionError, copy_submission


def make_folder(path, names=("vae.py", "assignment.py")):
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_text(f"# {name}\n")
    return path


def test_folder_submission_is_copied_with_provided_modules_and_harness(tmp_path):
    source = make_folder(tmp_path / "sub")
    (source / "helper.py").write_text("X = 1\n")
    copied = copy_submission(source, tmp_path / "box")
    assert copied == ["assignment.py", "helper.py", "vae.py"]
    for name in (*PROVIDED_MODULES, HARNESS_NAME):
        assert (tmp_path / "box" / name).is_file()


def test_zip_with_files_one_folder_down(tmp_path):
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hw/vae.py", "V = 1\n")
        zf.writestr("hw/assignment.py", "A = 1\n")
        zf.writestr("__MACOSX/hw/._vae.py", "junk")
    assert copy_submission(archive, tmp_path / "box") == ["assignment.py", "vae.py"]
    assert (tmp_path / "box" / "vae.py").read_text() == "V = 1\n"


def test_missing_file_and_unsafe_zip_are_clear_errors(tmp_path):
    with pytest.raises(SubmissionError, match="no vae.py"):
        copy_submission(make_folder(tmp_path / "a", ("assignment.py",)), tmp_path / "box1")
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("vae.py", "")
        zf.writestr("assignment.py", "")
        zf.writestr("../../etc/evil.py", "")
    with pytest.raises(SubmissionError, match="unsafe path"):
        copy_submission(archive, tmp_path / "box2")
    not_a_zip = tmp_path / "x.zip"
    not_a_zip.write_text("hello")
    with pytest.raises(SubmissionError, match="neither a folder nor a zip"):
        copy_submission(not_a_zip, tmp_path / "box3")


def test_symlinks_in_a_folder_are_not_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("grader secret")
    source = make_folder(tmp_path / "sub")
    os.symlink(secret, source / "leak.txt")
    copied = copy_submission(source, tmp_path / "box")
    assert "leak.txt" not in copied and not (tmp_path / "box" / "leak.txt").exists()


def test_files_behind_a_linked_folder_are_not_copied(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("SECRET = 1\n")
    source = make_folder(tmp_path / "sub")
    os.symlink(outside, source / "linked")
    copied = copy_submission(source, tmp_path / "box")
    assert copied == ["assignment.py", "vae.py"]
