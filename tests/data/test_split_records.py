"""What a split record carries beside its content: ``origin`` (file, line in the delivered data), ``fields``
(extra scalar values the evaluation slices by), ``source`` and ``provenance`` (synthetic / UAT examples).
The contract is in docs/internals.md, "Split records"."""
from __future__ import annotations

import csv
import json

from ftkit.data.audit_files import AuditOptions, audit_files

from data_helpers import distinct_tickets


def _split_records(result, tmp_path) -> list[dict]:
    out = result.write_outputs(tmp_path / "out")
    records = [r for name in ("train", "validation", "test") for r in map(json.loads, out[f"{name}.jsonl"].read_text().splitlines())]
    result.close()
    return records


def test_jsonl_extras_metadata_and_provenance_are_carried(tmp_path):
    rows = distinct_tickets(30)
    for i, row in enumerate(rows):
        row["channel"] = ("email", "chat")[i % 2]
        row["metadata"] = {"language": "de", "score": i, "notes": "x" * 200}
        if i % 3 == 0:
            row["source"], row["provenance"] = "synthetic", {"teacher": "t", "i": i}
    rows[4]["channel"] = "alice@example.com"  # PII in a slice value: never carried
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = audit_files([path], AuditOptions())
    assert not [i for i in result.issues if i.code == "record.unknown_key" and "source" in i.message]
    records = {r["origin"]["line"]: r for r in _split_records(result, tmp_path)}
    assert sorted(records) == list(range(1, 31))
    assert all(r["origin"]["file"] == "tickets.jsonl" for r in records.values())
    assert records[2]["fields"] == {"language": "de", "score": 1, "channel": "chat"}  # long text not a field
    assert "channel" not in records[5]["fields"]
    assert records[1]["source"] == "synthetic" and records[1]["provenance"] == {"teacher": "t", "i": 0}
    assert "source" not in records[2] and "provenance" not in records[2]
    assert all("channel" not in json.dumps(r["messages"]) for r in records.values())


def test_csv_extra_columns_become_fields(tmp_path):
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "region"])
        for i, row in enumerate(distinct_tickets(20)):
            writer.writerow([row["messages"][1]["content"], ("a", "b")[i % 2], ("north", "south")[i % 2]])
    result = audit_files([path], AuditOptions())
    records = _split_records(result, tmp_path)
    assert len(records) == 20
    assert {r["fields"]["region"] for r in records} == {"north", "south"}
    assert all(set(r["fields"]) == {"region"} for r in records)  # prompt and label columns are content
    by_line = {r["origin"]["line"]: r for r in records}
    assert by_line[2]["fields"]["region"] == "north"  # line 1 is the header row


def test_a_bad_source_is_reported_not_carried(tmp_path):
    rows = distinct_tickets(10)
    rows[0]["source"] = {"not": "a name"}
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = audit_files([path], AuditOptions())
    assert any(i.code == "record.bad_type" and i.line == 1 and "'source'" in i.message for i in result.issues)
    assert not any("source" in r for r in _split_records(result, tmp_path))
