"""The client's corrections (data.corrections): review sheets applied to the audit's splits with provenance;
every bad sheet names the sheet, the row and what to do, before anything is written."""
from __future__ import annotations

import csv
import json

import pytest

from ftkit.data import corrections
from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.record_checks import TaskContext
from ftkit.errors import ConfigError, DataError
from ftkit.fsutil import sha256_file

from data_helpers import distinct_tickets

TASK = TaskContext("structured_output", "category", (), {"type": "object", "required": ["category", "priority"],
                                                          "properties": {"category": {"enum": ["billing", "shipping", "account"]},
                                                                         "priority": {"enum": ["low", "high"]}}})
SUSPECT_COLUMNS = ["rank", "file", "line", "split", "input", "given_answer", "model_answer", "score", "score_kind",
                   "decision", "new_answer", "reviewer", "comment"]


def _sheet(path, rows, header=SUSPECT_COLUMNS):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _audited(tmp_path, n=40):
    data = tmp_path / "data" / "tickets.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in distinct_tickets(n)), encoding="utf-8")
    return data, audit_files([data], AuditOptions(task=TASK))


def _split_of(result, line):
    index = next(i for i, m in enumerate(result.metas) if m["line"] == line)
    return result.splits.get(index)


def _line_in(result, split):
    return next(m["line"] for i, m in enumerate(result.metas) if result.splits.get(i) == split)


def _records(out):
    return {r["origin"]["line"]: (name, r) for name in ("train", "validation", "test")
            for r in map(json.loads, out[f"{name}.jsonl"].read_text().splitlines())}


def test_fix_and_drop_round_trip_into_the_splits_with_provenance(tmp_path):
    data, result = _audited(tmp_path)
    before = data.read_bytes()
    train_line, test_line = _line_in(result, "train"), _line_in(result, "test")
    dropped = next(m["line"] for i, m in enumerate(result.metas) if result.splits.get(i) == "train" and m["line"] != train_line)
    new = json.dumps({"category": "account", "priority": "high"})
    sheet = _sheet(tmp_path / "reviews" / "suspect_labels.csv", [
        {"rank": 1, "file": "tickets.jsonl", "line": train_line, "decision": "fix", "new_answer": new, "reviewer": "Dana"},
        {"rank": 2, "file": "tickets.jsonl", "line": dropped, "decision": "DROP"},
        {"rank": 3, "file": "tickets.jsonl", "line": test_line, "decision": "keep"},
        {"rank": 4, "file": "tickets.jsonl", "line": 5, "decision": ""},  # not reviewed: ignored
    ])
    rows, sheets = corrections.load_corrections(tmp_path, ["reviews/suspect_labels.csv"])
    plan = corrections.plan(result, rows, sheets, TASK)
    corrections.apply(result, plan)
    out = result.write_outputs(tmp_path / "run")
    log = corrections.write_log(tmp_path / "run", plan)
    records = _records(out)
    result.close()

    split, fixed = records[train_line]
    assert split == "train" and json.loads(fixed["messages"][-1]["content"]) == {"category": "account", "priority": "high"}
    assert fixed["label"] == "account"  # re-derived from the new answer
    prov = fixed["provenance"]["correction"]
    assert prov["sheet"] == "reviews/suspect_labels.csv" and prov["sheet_sha256"] == sha256_file(sheet)
    assert prov["row"] == 2 and prov["reviewer"] == "Dana" and '"priority": "low"' in prov["old_answer"]
    assert dropped not in records and test_line in records and "provenance" not in records[test_line][1]
    assert data.read_bytes() == before  # the delivered file is never modified
    changes = [json.loads(x) for x in log.read_text().splitlines()]
    assert {(c["line"], c["decision"]) for c in changes} == {(train_line, "fix"), (dropped, "drop")}
    s = plan.summary()
    assert (s["fixed"], s["dropped"], s["kept"], s["test_changed"]) == (1, 1, 1, 0)
    assert s["sheets"][0]["sha256"] == sha256_file(sheet)


def test_a_fixed_test_record_is_listed_separately(tmp_path):
    _, result = _audited(tmp_path)
    test_line = _line_in(result, "test")
    _sheet(tmp_path / "fix.csv", [{"file": "tickets.jsonl", "line": test_line, "decision": "fix",
                                   "new_answer": json.dumps({"category": "billing", "priority": "high"})}],
           header=["file", "line", "decision", "new_answer"])  # the minimal columns are enough
    rows, sheets = corrections.load_corrections(tmp_path, ["fix.csv"])
    s = corrections.plan(result, rows, sheets, TASK).summary()
    result.close()
    assert s["test_changed"] == 1 and s["test_changes"] == [{"file": "tickets.jsonl", "line": test_line, "decision": "fix"}]


@pytest.mark.parametrize("row, expected", [
    ({"file": "tickets.jsonl", "line": 3, "decision": "fixx"}, "row 2: decision 'fixx' is not one of keep, fix, drop"),
    ({"file": "tickets.jsonl", "line": 3, "decision": "fix", "new_answer": " "}, "row 2: decision fix needs the corrected answer"),
    ({"file": "tickets.jsonl", "line": "three", "decision": "drop"}, "row 2: line 'three' is not a line number"),
    ({"file": "", "line": 3, "decision": "drop"}, "row 2: the file cell is empty"),
])
def test_bad_rows_name_the_sheet_and_row(tmp_path, row, expected):
    _sheet(tmp_path / "reviews" / "s.csv", [{"file": "tickets.jsonl", "line": 2, "decision": "keep"}, row])
    with pytest.raises(DataError) as err:
        corrections.load_corrections(tmp_path, ["reviews/s.csv"])
    assert f"reviews/s.csv {expected.replace('row 2', 'row 3')}" in str(err.value) and "nothing was written" in str(err.value)


@pytest.mark.parametrize("row, expected", [
    ({"file": "other.jsonl", "line": 3, "decision": "drop"}, "file 'other.jsonl' is not a data file of this engagement"),
    ({"file": "tickets.jsonl", "line": 999, "decision": "drop"}, "tickets.jsonl has no record at line 999"),
    ({"file": "tickets.jsonl", "line": 3, "decision": "fix", "new_answer": "not json"}, "fails the task's checks"),
    ({"file": "tickets.jsonl", "line": 3, "decision": "fix", "new_answer": '{"category": "weather", "priority": "low"}'},
     "fails the task's checks"),
])
def test_rows_that_do_not_match_the_data_are_refused(tmp_path, row, expected):
    _, result = _audited(tmp_path)
    _sheet(tmp_path / "s.csv", [row])
    rows, sheets = corrections.load_corrections(tmp_path, ["s.csv"])
    with pytest.raises(DataError, match="s.csv row 2: ") as err:
        corrections.plan(result, rows, sheets, TASK)
    result.close()
    assert expected in str(err.value)


def test_a_record_left_out_by_the_audit_cannot_be_fixed_but_can_be_dropped(tmp_path):
    rows = distinct_tickets(30)
    rows[4]["messages"][-1]["content"] = " "  # an empty answer: an error, not in the splits
    data = tmp_path / "t.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = audit_files([data], AuditOptions(task=TASK))
    _sheet(tmp_path / "s.csv", [{"file": "t.jsonl", "line": 5, "decision": "fix", "new_answer": rows[0]["messages"][-1]["content"]}])
    with pytest.raises(DataError, match="s.csv row 2: t.jsonl line 5 is not in the splits"):
        corrections.plan(result, *corrections.load_corrections(tmp_path, ["s.csv"]), TASK)
    _sheet(tmp_path / "s.csv", [{"file": "t.jsonl", "line": 5, "decision": "drop"}])
    plan = corrections.plan(result, *corrections.load_corrections(tmp_path, ["s.csv"]), TASK)
    result.close()
    assert plan.already_excluded == 1 and not plan.changes


def test_conflicting_decisions_across_sheets_name_both_rows(tmp_path):
    _sheet(tmp_path / "a.csv", [{"file": "t.jsonl", "line": 7, "decision": "drop"}])
    _sheet(tmp_path / "b.csv", [{"file": "t.jsonl", "line": 9, "decision": "keep"},
                                {"file": "t.jsonl", "line": 7, "decision": "fix", "new_answer": "x"}])
    with pytest.raises(DataError) as err:
        corrections.load_corrections(tmp_path, ["a.csv", "b.csv"])
    assert "b.csv row 3: t.jsonl line 7 is decided fix -> 'x' here but drop in a.csv row 2" in str(err.value)
    _sheet(tmp_path / "b.csv", [{"file": "t.jsonl", "line": 7, "decision": "drop"}])  # the same decision twice is fine
    rows, _ = corrections.load_corrections(tmp_path, ["a.csv", "b.csv"])
    assert [(r.sheet, r.line) for r in rows] == [("a.csv", 7)]


def test_missing_columns_and_missing_sheets(tmp_path):
    _sheet(tmp_path / "s.csv", [{"file": "t.jsonl", "line": 1}], header=["file", "line", "verdict"])
    with pytest.raises(DataError, match=r"s.csv lacks the column\(s\) decision, new_answer"):
        corrections.load_corrections(tmp_path, ["s.csv"])
    with pytest.raises(ConfigError, match=r"data.corrections\[0\]: 'nope.csv' does not exist"):
        corrections.load_corrections(tmp_path, ["nope.csv"])


def test_spreadsheet_quirks_are_read_back(tmp_path):
    """Semicolon-separated (a European Excel), a BOM, 12.0 for 12, and csv_cell's formula quoting undone."""
    text = "\ufefffile;line;decision;new_answer;reviewer\nt.jsonl;12.0; Fix ;'=1+1;'@ana\n"
    (tmp_path / "s.csv").write_text(text, encoding="utf-8")
    [row], _ = corrections.load_corrections(tmp_path, ["s.csv"])
    assert (row.file, row.line, row.decision, row.new_answer, row.reviewer) == ("t.jsonl", 12, "fix", "=1+1", "@ana")


def test_the_setting_refuses_paths_outside_the_engagement():
    from ftkit.config import parse_config

    with pytest.raises(ConfigError, match=r"corrections\[0\] must be a .csv file inside the engagement folder"):
        parse_config({"data": {"corrections": ["../elsewhere.csv"]}})
    assert parse_config({"data": {"corrections": ["reviews/c.csv"]}}).data.corrections == ["reviews/c.csv"]


def test_corrections_findings_warn_only_when_the_test_split_changed():
    from ftkit.data.phase import corrections_findings

    base = {"sheets": [{"path": "s.csv"}], "fixed": 2, "dropped": 1, "kept": 3, "test_changed": 0}
    assert [f[:2] for f in corrections_findings(base)] == [("info", "data.corrections")]
    assert [f[:2] for f in corrections_findings({**base, "test_changed": 1})] == [
        ("info", "data.corrections"), ("warning", "data.corrections_test")]
    assert corrections_findings({})[0][1] == "data.no_corrections"


def test_max_iterations_must_be_at_least_one():
    from ftkit.config import parse_config

    with pytest.raises(ConfigError, match="max_iterations must be 1 or more"):
        parse_config({"evaluation": {"max_iterations": 0}})
    assert parse_config({"evaluation": {"max_iterations": 1}}).evaluation.max_iterations == 1
