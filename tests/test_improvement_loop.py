"""The improvement loop end to end on the tiny chain: a review sheet listed in data.corrections, the next data audit
applies it with provenance, training and evaluation run again, and the ledger (evaluation + report) shows both
iterations. Plus the demo's planted wrong labels and its simulated review sheet."""
from __future__ import annotations

import csv
import json

import pytest

from ftkit.fsutil import read_json, sha256_file
from ftkit.resources import notebooks_dir, sample_data_dir


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_shipped_review_sheet_fixes_exactly_the_planted_wrong_labels(tmp_path):
    from ftkit import demo_data
    from ftkit.data.corrections import load_corrections

    shipped = (sample_data_dir() / "simulated_review.csv").read_text(encoding="utf-8")
    assert demo_data.write_review(tmp_path / "r.csv").read_text(encoding="utf-8") == shipped
    with open(sample_data_dir() / "simulated_review.csv", newline="", encoding="utf-8") as handle:
        sheet = list(csv.DictReader(handle))
    assert list(sheet[0]) == demo_data.REVIEW_COLUMNS
    assert all(r["reviewer"] == demo_data.SIMULATED for r in sheet)  # clearly marked as simulated, every row
    records = _rows(sample_data_dir() / "support_tickets.jsonl")
    fixes = [r for r in sheet if r["decision"] == "fix"]
    assert len(fixes) == demo_data.WRONG_LABELS and sum(r["decision"] == "keep" for r in sheet) == demo_data.REVIEW_KEEPS
    for r in fixes:
        given = records[int(r["line"]) - 1]["messages"][-1]["content"]
        assert given == r["given_answer"]
        old, new = json.loads(given), json.loads(r["new_answer"])
        assert old["category"] != new["category"] and old["priority"] == new["priority"]
    (tmp_path / "reviews").mkdir()
    (tmp_path / "reviews" / "s.csv").write_text(shipped, encoding="utf-8")
    rows, _ = load_corrections(tmp_path, ["reviews/s.csv"])
    assert len(rows) == len(sheet)


@pytest.mark.skipif(not (notebooks_dir() / "05_evaluation.ipynb").is_file(), reason="needs the evaluation notebook")
def test_a_second_iteration_applies_the_review_and_the_ledger_shows_both(tiny_chain, tmp_path):
    from ftkit.demo import next_iteration
    from ftkit.reports import build_engagement_report

    tiny_chain.through("evaluation")
    engagement = tiny_chain.copy(tmp_path)
    delivered = {p.name: sha256_file(p) for p in (engagement.path / "data").iterdir()}
    audit1 = engagement.latest_run_dir("data_audit")
    train = _rows(audit1 / "train.jsonl")
    fix_a, fix_b, drop = train[0], train[1], train[2]
    category = next(c for c in ("returns", "shipping", "billing") if c not in (fix_a.get("label"), fix_b.get("label")))
    answer = json.dumps({"category": category, "priority": "high"})
    sheet = tmp_path / "filled.csv"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["file", "line", "decision", "new_answer", "reviewer", "comment"])
        for r, decision in ((fix_a, "fix"), (fix_b, "fix"), (drop, "drop"), (train[3], "keep")):
            w.writerow([r["origin"]["file"], r["origin"]["line"], decision, answer if decision == "fix" else "", "Kim", ""])

    outcomes = next_iteration(engagement, sheet)
    assert [o.phase for o in outcomes] == ["data_audit", "training", "evaluation"], [o.error for o in outcomes]
    assert all(o.succeeded for o in outcomes), [o.error for o in outcomes]
    assert {p.name: sha256_file(p) for p in (engagement.path / "data").iterdir()} == delivered  # never modified

    audit2 = outcomes[0].run_dir
    res = read_json(audit2 / "results.json")
    c = res["results"]["corrections"]
    assert (c["fixed"], c["dropped"], c["kept"], c["test_changed"]) == (2, 1, 1, 0)
    assert res["inputs"]["reviews/simulated_review.csv"] == sha256_file(sheet) == c["sheets"][0]["sha256"]
    assert "data.corrections" in {f["code"] for f in res["findings"]}
    by_id = {r["id"]: r for r in _rows(audit2 / "train.jsonl") + _rows(audit2 / "validation.jsonl")}
    assert drop["id"] not in by_id
    fixed = by_id[fix_a["id"]]
    assert fixed["messages"][-1]["content"] == answer and fixed["label"] == category
    assert fixed["provenance"]["correction"]["reviewer"] == "Kim"
    assert fixed["provenance"]["correction"]["old_answer"] == fix_a["messages"][-1]["content"]
    assert len(_rows(audit2 / "corrections.jsonl")) == 3
    assert "3 records dropped" not in (audit2 / "data_card.md").read_text() and \
        "2 answers corrected and 1 records dropped" in (audit2 / "data_card.md").read_text()

    ev = read_json(outcomes[2].run_dir / "results.json")
    ledger = ev["results"]["ledger"]
    assert [r["iteration"] for r in ledger] == [1, 2]
    first, second = ledger
    assert first["data_audit_run"] == audit1.name and second["data_audit_run"] == audit2.name
    assert first["data_sha256"] != second["data_sha256"]
    assert second["changes"] == {"added": 0, "removed": 1, "corrected": 2}
    assert second["settings_changed"] == [] and second["review_sheets"] == ["reviews/simulated_review.csv"]
    assert first["comparable"] and second["comparable"] and first["test_set"] == second["test_set"]
    assert second["vs_previous"] is not None and 0 <= second["vs_previous_p"] <= 1
    assert second["value"] == pytest.approx(ev["results"]["metrics"][second["metric"]]["fine_tuned"])
    assert "evaluation.ledger" in {f["code"] for f in ev["findings"]}
    assert (outcomes[2].run_dir / "figures" / "iteration_ledger.png").is_file()

    html = build_engagement_report(engagement).read_text(encoding="utf-8")
    assert "Iteration ledger" in html and audit2.name in html and "+0, -1, 2" in html
