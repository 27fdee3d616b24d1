"""Gradescope's results format and the printed table."""

import json

from autograder.grading.results import Report, TestResult, format_table, write_results


def test_results_file_has_gradescope_fields_and_is_written_atomically(tmp_path):
    report = Report(tests=[TestResult("one_hot", 5, 5, "ok"), TestResult("loss", 3.5, 15, "<b>x</b>", "html")],
                    output="Graded.", execution_time=12.34)
    path = tmp_path / "results" / "results.json"
    write_results(report, path)
    data = json.loads(path.read_text())
    assert data["score"] == 8.5 and data["execution_time"] == 12.3 and data["output"] == "Graded."
    assert [t["status"] for t in data["tests"]] == ["passed", "failed"]
    assert data["tests"][1]["output_format"] == "html"
    assert all(t["visibility"] == "visible" for t in data["tests"])
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_table_lists_every_check_and_the_total():
    report = Report(tests=[TestResult("one_hot", 5, 5, "All rows right."),
                           TestResult("loss_function", 0, 15, "Expected `12.0`, got <i>3</i>.")])
    table = format_table(report)
    assert "one_hot" in table and "5/5" in table and "0/15" in table and "FAIL" in table
    assert "Expected 12.0, got 3 ." in table
    assert table.splitlines()[-1].startswith("total") and "5/20" in table


def test_an_unverified_check_is_marked_in_the_table_and_the_results():
    report = Report(tests=[TestResult("train_vae", 10, 10, "Unverified: ...", unverified=True),
                           TestResult("one_hot", 5, 5, "ok")])
    table = format_table(report)
    assert "ok*" in table and "* unverified" in table
    assert "*" not in format_table(Report(tests=[TestResult("one_hot", 5, 5, "ok")]))
    assert report.tests[0].as_gradescope()["extra_data"] == {"unverified": True}
