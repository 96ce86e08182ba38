"""UAT feedback as evidence and as data: the summary (Wilson CI against statsmodels-free scipy), `ftkit data
from-uat` (provenance, PII, --since, --force), the append-only log under concurrent writers, and the report's
UAT section, on a real engagement."""
from __future__ import annotations

import json
import math
import multiprocessing
import os

import pytest

from ftkit.deployment import uat_data, uat_summary
from ftkit.deployment.uat_log import FEEDBACK_FILE, append_line, read_lines
from ftkit.errors import DataError, FtkitError, UsageError

SYSTEM = {"role": "system", "content": "Triage the ticket."}


def exchange(i: int, text: str = "", tester: str = "dana", output: str = '{"category": "billing"}') -> dict:
    return {"request_id": f"chatcmpl-{i:04d}", "tester": tester, "time": f"2026-03-0{1 + i % 5}T10:00:00+00:00",
            "messages": [SYSTEM, {"role": "user", "content": text or f"ticket number {i}"}], "output": output}


def feedback(i: int, rating: str, correction: str = "", comment: str = "", **kw) -> dict:
    return {"event": "feedback", "feedback_id": f"fb-{i}", "rating": rating, "correction": correction,
            "comment": comment, **exchange(i, **kw)}


# -- summary -----------------------------------------------------------------------------------------------

def test_wilson_interval_matches_the_closed_form():
    # Hand-written check of scipy's result: p +- z sqrt(p(1-p)/n + z^2/4n^2), over 1 + z^2/n (Wilson 1927).
    for k, n in ((0, 5), (7, 10), (19, 20), (50, 80)):
        z, p = 1.959963984540054, k / n
        centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = uat_summary.wilson_interval(k, n)
        assert low == pytest.approx(centre - half, abs=1e-9) and high == pytest.approx(centre + half, abs=1e-9)
    assert all(math.isnan(x) for x in uat_summary.wilson_interval(0, 0))


def test_summary_last_rating_wins_and_groups_by_tester_and_slice():
    events = [feedback(1, "down"), feedback(1, "up"),  # changed their mind: counts as approved
              feedback(2, "down", "Refund it.", tester="lee"), feedback(3, "up", tester="lee"),
              feedback(4, "down", text="x" * 300, comment="too vague")]
    summary = uat_summary.summarise(events, [{"event": "request"}] * 9)
    assert (summary.requests, summary.rated, summary.approved, summary.corrections) == (9, 4, 2, 1)
    assert summary.testers == ["dana", "lee"]
    assert {r["tester"]: (r["rated"], r["approved"]) for r in summary.per_tester} == {"dana": (2, 1), "lee": (2, 1)}
    bands = {r["slice"]: r["rated"] for r in summary.per_slice}
    assert bands == {"short (< 200 chars)": 3, "medium (200-999 chars)": 1}
    assert [w["down"] for w in summary.worst] == [1, 1] and summary.worst[0]["last_comment"] in ("too vague", "")
    assert "2 of 4 rated answers approved (50%" in summary.headline()


def test_summary_slices_by_the_answers_label_for_classification():
    events = [feedback(1, "up"), feedback(2, "down", output='{"category": "shipping"}'), feedback(3, "up")]
    summary = uat_summary.summarise(events, task_type="classification", label_field="category")
    assert {r["slice"]: (r["rated"], r["approved"]) for r in summary.per_slice} == \
        {"label billing": (2, 2), "label shipping": (1, 0)}


def test_worst_inputs_are_pii_masked():
    summary = uat_summary.summarise([feedback(1, "down", text="mail me at jane.doe@example.com now")])
    assert "jane.doe@example.com" not in json.dumps(summary.to_dict()) and "j***@e***.com" in summary.worst[0]["input"]


# -- from-uat ----------------------------------------------------------------------------------------------

def test_examples_from_corrections_and_approvals_with_provenance():
    events = [feedback(1, "up"), feedback(2, "down", "Refund the duplicate charge."), feedback(3, "down")]
    result = uat_data.uat_examples(events)
    assert (result.approved, result.corrected, result.rejected_without_correction) == (1, 1, 1)
    approved, corrected = result.records
    assert approved["source"] == corrected["source"] == "uat"
    assert approved["messages"][-1] == {"role": "assistant", "content": '{"category": "billing"}'}
    assert corrected["messages"][:2] == [SYSTEM, {"role": "user", "content": "ticket number 2"}]
    assert corrected["messages"][-1]["content"] == "Refund the duplicate charge."
    prov = corrected["provenance"]
    assert (prov["tester"], prov["request_id"], prov["kind"], prov["replaced_answer"]) == \
        ("dana", "chatcmpl-0002", "corrected", '{"category": "billing"}')
    assert approved["provenance"]["replaced_answer"] is None and prov["time"]


def test_pii_is_dropped_or_redacted():
    events = [feedback(1, "up", text="card 4111 1111 1111 1111 was charged"), feedback(2, "up")]
    dropped = uat_data.uat_examples(events)
    assert len(dropped.records) == 1 and dropped.pii_dropped == {"card": 1}
    redacted = uat_data.uat_examples(events, pii="redact")
    assert len(redacted.records) == 2 and "4111" not in json.dumps(redacted.records) and redacted.pii_redacted == 1


def test_since_filters_by_feedback_time_and_bad_dates_are_usage_errors():
    events = [feedback(i, "up") for i in range(5)]  # days 1..5 of March
    assert len(uat_data.uat_examples(events, uat_data.parse_since("2026-03-04")).records) == 2
    assert uat_data.uat_examples(events, uat_data.parse_since("2026-03-04")).before_since == 3
    with pytest.raises(UsageError, match="YYYY-MM-DD"):
        uat_data.parse_since("last tuesday")


def test_duplicate_examples_are_kept_once():
    events = [feedback(1, "up"), {**feedback(1, "up"), "request_id": "chatcmpl-other"}]
    result = uat_data.uat_examples(events)
    assert len(result.records) == 1 and result.duplicates == 1


@pytest.fixture
def uat_engagement(make_engagement):
    engagement = make_engagement(n=20)
    for event in [feedback(1, "up"), feedback(2, "down", "Refund it.", tester="lee"), feedback(3, "down")]:
        append_line(engagement.path / FEEDBACK_FILE, event)
    for i in range(5):
        append_line(engagement.path / "serving" / "uat_requests.jsonl", {"event": "request", **exchange(i)})
    return engagement


def test_from_uat_command_writes_refuses_overwrite_and_records_a_receipt(uat_engagement, tmp_path, capsys):
    from ftkit.cli import main

    out = tmp_path / "uat.jsonl"
    root = str(uat_engagement.root)
    assert main(["data", "from-uat", "acme", "--out", str(out), "--root", root]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["provenance"]["kind"] for r in records] == ["approved", "corrected"]
    assert "Wrote 2 UAT examples" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(["data", "from-uat", "acme", "--out", str(out), "--root", root]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["data", "from-uat", "acme", "--out", str(out), "--root", root, "--force", "--since", "2026-03-03"]) == 0
    assert len(out.read_text().splitlines()) == 1
    receipts, _ = read_lines(uat_engagement.path / uat_data.EXPORTS_FILE)
    assert [r["written"] for r in receipts] == [2, 1] and receipts[0]["request_ids"] == ["chatcmpl-0001", "chatcmpl-0002"]
    assert main(["data", "from-uat", "acme", "--out", str(tmp_path / "x.jsonl"), "--root", root, "--since", "soon"]) == 2


def test_from_uat_output_is_valid_chat_data(uat_engagement, tmp_path):
    """The examples pass `ftkit data check` as chat-format records (ready for data.files)."""
    from ftkit.cli import main

    out = tmp_path / "uat.jsonl"
    uat_data.from_uat(uat_engagement, out)
    report = tmp_path / "check.json"
    main(["data", "check", str(out), "--format", "chat", "--json", str(report)])
    checked = json.loads(report.read_text())
    assert checked["format"] == "chat" and checked["n_records"] == checked["n_valid"] == 2
    assert checked["n_errors"] == 0


def test_from_uat_without_feedback_is_a_clear_error(make_engagement, tmp_path):
    with pytest.raises(FtkitError, match="no UAT feedback yet"):
        uat_data.from_uat(make_engagement(n=5), tmp_path / "x.jsonl")


def test_monitor_prints_the_feedback_summary_without_a_log(uat_engagement, capsys):
    from ftkit.cli import main

    assert main(["monitor", "acme", "--root", str(uat_engagement.root)]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 rated answers approved" in out and "Wilson" in out and "lee" in out
    saved = list((uat_engagement.path / "monitoring").glob("uat-feedback-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["ci_method"] == "wilson"


def test_report_has_a_uat_section(uat_engagement, tmp_path):
    from ftkit.reports import build_engagement_report

    uat_data.from_uat(uat_engagement, tmp_path / "uat.jsonl")
    html = build_engagement_report(uat_engagement).read_text()
    section = html[html.index('id="uat"'):html.index('id="documentation-index"')]
    assert "User acceptance testing" in section and "1 of 3 rated answers approved" in section
    assert "<td>2</td>" in section  # testers; exported 2


def test_report_counts_uat_records_that_entered_the_data_audit(tmp_path):
    from ftkit.report_uat import uat_records_in_splits

    (tmp_path / "train.jsonl").write_text(json.dumps({"messages": [], "source": "uat"}) + "\n" +
                                          json.dumps({"messages": [], "source": "client"}) + "\n" +
                                          json.dumps({"messages": [{"content": "uat"}]}) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"messages": [], "source": "uat"}) + "\n")
    assert uat_records_in_splits(tmp_path) == {"train": 1, "test": 1}


def test_report_without_uat_activity_has_no_section(make_engagement):
    from ftkit.reports import build_engagement_report

    assert 'id="uat"' not in build_engagement_report(make_engagement(n=5)).read_text()


# -- the log under concurrent writers and crashes -------------------------------------------------------

def _writer(path: str, who: int, n: int) -> None:
    from pathlib import Path

    for i in range(n):
        append_line(Path(path), {"event": "feedback", "who": who, "i": i, "pad": "x" * (1000 + 37 * who)})


def test_concurrent_processes_append_whole_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    events, notes = read_lines(path)
    assert not notes and sorted((e["who"], e["i"]) for e in events) == [(w, i) for w in range(4) for i in range(40)]


def test_a_torn_last_line_is_skipped_and_noted_but_earlier_damage_is_an_error(tmp_path):
    path = tmp_path / "log.jsonl"
    append_line(path, {"event": "request", "n": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"event": "requ')  # a write cut short by kill -9
    events, notes = read_lines(path)
    assert events == [{"event": "request", "n": 1}] and "incomplete" in notes[0]
    path.write_bytes(b'{"oops\n{"event": "request"}\n')
    with pytest.raises(DataError, match="line 1"):
        read_lines(path)
    assert os.path.getsize(path) > 0
