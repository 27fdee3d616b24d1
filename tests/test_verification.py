"""Copying exported models out of the submission's folder: plain files of known names only."""

import os

import pytest

from autograder.grading import verification


def saved_model(folder):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "fingerprint.pb").write_bytes(b"fingerprint")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    return folder


def test_a_saved_model_is_copied_file_by_file(tmp_path):
    source = saved_model(tmp_path / "result.models" / "vae")
    (source / "variables" / "notes.py").write_text("import os")
    (source / "extra.txt").write_text("not part of a SavedModel")
    assert verification.collect_model(source, tmp_path / "copy") is None
    copied = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert copied == ["fingerprint.pb", "saved_model.pb", "variables/variables.data-00000-of-00001",
                      "variables/variables.index"]


@pytest.mark.parametrize("attack, reason", [
    ("model_link", "(vae is a link)"),
    ("models_link", "(result.models is a link)"),
    ("graph_link", "(saved_model.pb is a link)"),
    ("shard_link", "(variables.data-00000-of-00001 is a link)"),
    ("fifo", "(variables.index is not a plain file)"),
    ("too_large", "(the exported files are larger than"),
    ("no_graph", "the exported folder has no saved_model.pb"),
    ("a_file", "(vae is not a folder)"),
])
def test_what_is_not_a_plain_saved_model_is_refused(tmp_path, attack, reason, monkeypatch):
    secret = tmp_path / "secret"
    secret.mkdir()
    saved_model(secret / "vae")
    models = tmp_path / "result.models"
    models.mkdir()
    source = models / "vae"
    if attack == "model_link":
        source.symlink_to(secret / "vae")
    elif attack == "models_link":
        models.rmdir()
        models.symlink_to(secret)
    else:
        saved_model(source)
    if attack == "graph_link":
        (source / "saved_model.pb").unlink()
        (source / "saved_model.pb").symlink_to(secret / "vae" / "saved_model.pb")
    elif attack == "shard_link":
        shard = source / "variables" / "variables.data-00000-of-00001"
        shard.unlink()
        shard.symlink_to("/etc/hostname")
    elif attack == "fifo":
        (source / "variables" / "variables.index").unlink()
        os.mkfifo(source / "variables" / "variables.index")
    elif attack == "too_large":
        monkeypatch.setattr(verification, "MAX_MODEL_BYTES", 10)
    elif attack == "no_graph":
        (source / "saved_model.pb").unlink()
    elif attack == "a_file":
        import shutil

        shutil.rmtree(source)
        source.write_text("not a folder")
    problem = verification.collect_model(source, tmp_path / "copy")
    assert problem is not None and reason in problem, problem
    assert not (tmp_path / "copy").exists() or attack == "no_graph"
