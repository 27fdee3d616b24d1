"""The self-check's own pieces (``python check.py`` runs them end to end in ``test_release.py``)."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from autograder import selfcheck
from autograder.config import GradeConfig
from autograder.scoring import checks

# A stand-in for the harness: it saves one more epoch to its result file every 0.2 s, as the real
# harness does after each epoch, and never ends.
ENDLESS_TRAINING = textwrap.dedent("""
    import os, sys, time
    import numpy as np

    result = sys.argv[3]
    for epoch in range(1, 1000):
        time.sleep(0.2)
        arrays = {"vae.epoch_seconds": np.full(epoch, 0.2), "vae.metric": np.arange(epoch, dtype=float)}
        with open(result + ".partial", "wb") as file:
            np.savez(file, **arrays)
        os.replace(result + ".partial", result)
        print("epoch", epoch, flush=True)
""")


def test_each_finished_epoch_is_printed_once_with_the_vae_loss(capsys):
    show = selfcheck.epoch_printer("vae", 3)
    show({})
    show({"vae.epoch_seconds": np.array([4.25]), "vae.metric": np.array([130.44])})
    show({"vae.epoch_seconds": np.array([4.25]), "vae.metric": np.array([130.44])})
    show({"vae.epoch_seconds": np.array([4.25, 3.0]), "vae.metric": np.array([130.44, 118.06])})
    assert capsys.readouterr().out.splitlines() == ["  epoch 1/3: test loss 130.4 per image  [4.2 s]",
                                                    "  epoch 2/3: test loss 118.1 per image  [3.0 s]"]
    show = selfcheck.epoch_printer("cvae", 1)
    show({"cvae.epoch_seconds": np.array([5.5]), "cvae.metric": np.array([np.nan])})
    assert capsys.readouterr().out == "  epoch 1/1  [5.5 s]\n"


def test_a_training_child_reports_its_epochs_as_they_end_and_is_stopped_at_its_limit(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "harness.py").write_text(ENDLESS_TRAINING)
    (work / "training.npz").write_bytes(b"")
    seen = []
    arrays, detail, output = selfcheck.run_harness(tmp_path, "train_vae", work, 4.0, "training.npz",
                                                   on_progress=lambda a: seen.append(len(a["vae.epoch_seconds"])))
    assert detail == "was stopped after 4 s, the time limit"
    assert len(arrays["vae.epoch_seconds"]) >= 3 and "epoch 3" in output
    # Reported while it ran, in order, and once more with the last arrays.
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] == len(arrays["vae.epoch_seconds"])


def test_the_release_reads_what_the_checks_compare_with_from_its_stored_data(tmp_path, monkeypatch):
    stored = {"seed": 7, "values": {"one_hot.expected": [[0, 1], [1, 0]]},
              "training": {"full": {"budget": {"batch_size": 128}}, "small": {"budget": {"batch_size": 64}}}}
    path = tmp_path / "expected.json"
    path.write_text(json.dumps(stored))
    monkeypatch.setattr(selfcheck, "EXPECTED_FILE", path)
    expected, training_config = selfcheck.stored_values()
    np.testing.assert_array_equal(expected({"seed": np.int64(7)})["one_hot.expected"], [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="for seed 7, not 8"):
        expected({"seed": 8})
    assert training_config(False).budget.batch_size == 128
    assert training_config(True).budget.batch_size == 64


def test_the_course_repository_computes_what_the_checks_compare_with(tmp_path, monkeypatch):
    monkeypatch.setattr(selfcheck, "EXPECTED_FILE", tmp_path / "none.json")
    expected, training_config = selfcheck.stored_values()
    assert expected is checks.expected_values
    assert training_config(False) == GradeConfig() and training_config(True) == GradeConfig().small()


def test_the_releases_copy_says_what_to_do_when_its_stored_data_is_missing(tmp_path):
    from autograder.tools.release import strip_grader_only

    namespace = {"__name__": "copy", "__file__": str(tmp_path / "selfcheck.py")}
    source = strip_grader_only(Path(selfcheck.__file__).read_text(), "selfcheck.py")
    assert "from .scoring import checks, requests" in source
    code = source.replace("from .scoring import checks, requests", "checks = requests = None")
    exec(compile(code, "selfcheck.py", "exec"), namespace)
    with pytest.raises(FileNotFoundError, match="copy the _selfcheck folder back"):
        namespace["stored_values"]()


def unit_request():
    from autograder.scoring import requests

    request = requests.unit_request(requests.SELF_CHECK_SEED, np.zeros((512, 28, 28), np.uint8),
                                    np.zeros(512, np.int64))
    request.update(checks.expected_values(request))
    return request


def test_an_error_that_stops_every_probe_is_shown_in_full_once(capsys):
    # vae.py does not compile, so assignment.py, which imports it, fails too: two messages, each once.
    error = "SyntaxError: invalid syntax (at vae.py:1)"
    arrays = {"import_vae.error": error, "import_assignment.error": error}
    runs = {probe: (arrays, "exited with status 1") for probe in checks.UNIT_CHECKS}
    passes, outcomes = selfcheck.print_report(runs, unit_request(), [], skip_train_vae=False)
    out = capsys.readouterr().out
    assert not passes and set(outcomes) == set(checks.UNIT_CHECKS)
    assert out.count("importing vae.py failed") == 1 and out.count("importing assignment.py failed") == 1
    assert out.count("Your code raised the same error as above.") == len(checks.UNIT_CHECKS) - 2


def test_train_vae_is_not_judged_with_a_loss_function_that_fails_its_check(capsys):
    request = unit_request()
    values = np.asarray(request["loss.expected"]) * 2
    runs = {probe: ({}, "exited with status 1") for probe in checks.UNIT_CHECKS}
    runs["loss_function"] = ({"loss_function.values": values, "done.loss_function": np.array(1.0)}, "")
    runs["train_vae"] = ({"train_vae.returned": np.array([-4000.0])}, "")
    _, outcomes = selfcheck.print_report(runs, request, [], skip_train_vae=False)
    out = capsys.readouterr().out
    assert outcomes["loss_function"].fraction < 1 and selfcheck.own_loss_caveat(outcomes)
    assert "[SKIP] train_vae (-/10 points)" in out and "Not judged here" in out
    assert "train_vae not judged" in out
    assert selfcheck.own_loss_caveat({"loss_function": checks.passed("right")}) is None
