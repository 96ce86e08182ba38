"""The iteration ledger's pure parts: findings (comparable or not), the table, the report's comparability line,
what changed between two iterations' data and settings, and the yardstick hash."""
from __future__ import annotations

from types import SimpleNamespace as P

from ftkit.evaluation import iterations
from ftkit.evaluation.phase import ledger_findings, ledger_table
from ftkit.report_ledger import comparability


def _row(i, comparable=True, value=0.6, **extra):
    return {"iteration": i, "training_run": f"t{i}", "data_audit_run": f"a{i}", "data_sha256": "ab" * 32,
            "changes": None if i == 1 else {"added": 0, "removed": 1, "corrected": 2}, "settings_changed": [],
            "val_loss": 1.25, "metric": "field_accuracy", "value": value, "ci": [value - 0.1, value + 0.1],
            "baseline": 0.4, "vs_baseline": value - 0.4, "vs_baseline_ci": [0.1, 0.3], "vs_baseline_p": 0.001,
            "vs_previous": None if i == 1 else 0.05, "vs_previous_ci": None if i == 1 else [-0.02, 0.12],
            "vs_previous_p": None if i == 1 else 0.2, "comparable": comparable, **extra}


def test_findings_warn_only_when_an_iteration_was_measured_on_another_test_set():
    same = [_row(1), _row(2, value=0.65)]
    assert [f.code for f in ledger_findings(same)] == ["evaluation.ledger"]
    assert "1: 0.600; 2: 0.650 (+0.050 vs 1, p = 0.2)" in ledger_findings(same)[0].message
    other = [_row(1, comparable=False), _row(2)]
    found = ledger_findings(other)
    assert [(f.severity, f.code) for f in found] == [("info", "evaluation.ledger"),
                                                    ("warning", "evaluation.ledger_not_comparable")]
    assert "Iteration(s) 1 were evaluated on another test set" in found[1].message
    assert ledger_findings([{"iteration": 1}])[0].message.startswith("1 iteration(s); none evaluated")


def test_the_table_shows_changes_differences_and_the_yardstick():
    rows = ledger_table([_row(1), _row(2, comparable=False, settings_changed=["training.max_steps: 40 -> 120"],
                              test_corrected=3),
                         {"iteration": 3, "training_run": "t3", "data_audit_run": "a3", "data_sha256": "cd" * 32,
                          "changes": {"added": 5, "removed": 0, "corrected": 0}, "settings_changed": [], "val_loss": None}])
    assert rows[0]["records added, removed, corrected"] == "-" and rows[1]["records added, removed, corrected"] == "+0, -1, 2 (3 test answers corrected)"
    assert rows[1]["settings changed"] == "training.max_steps: 40 -> 120"
    assert rows[1]["vs previous"] == "+0.050 [-0.020, +0.120], p = 0.2" and rows[0]["vs previous"] == "-"
    assert rows[0]["vs baseline"] == "+0.200 [+0.100, +0.300], p = 0.001"
    assert rows[0]["field_accuracy"] == "0.600 [0.500, 0.700]" and rows[1]["same test set"] == "no"
    assert rows[2]["test metric"] == "not evaluated" and rows[2]["same test set"] == "-"


def test_the_report_says_which_iterations_are_comparable():
    assert comparability([_row(1), _row(2)]) == "Iterations 1, 2 were measured on the current test set."
    assert "1 on another" in comparability([_row(1, comparable=False), _row(2)])
    assert comparability([{"iteration": 1}]) == "No iteration has been evaluated yet."


def test_a_corrected_reference_changes_the_yardstick_and_is_rescored():
    a = [P(id="1", reference="x"), P(id="2", reference="y")]
    assert iterations.test_set_hash(a) == iterations.test_set_hash(list(reversed(a)))  # order does not matter
    assert iterations.test_set_hash(a) != iterations.test_set_hash([P(id="1", reference="x"), P(id="2", reference="z")])
    assert iterations.data_changes({"a": "1"}, {"a": "1"}) == {"added": 0, "removed": 0, "corrected": 0}
    assert iterations.settings_changes({"training": {"lr": 1}, "client": {"name": "a"}},
                                       {"training": {"lr": 1}, "client": {"name": "b"}}) == []  # only listed sections
    assert iterations.settings_changes({"data": {"corrections": []}}, {"data": {"corrections": ["r.csv"]}}) == []
