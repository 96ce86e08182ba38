"""Every registered check: a small bad record triggers it, a good record does not."""
from __future__ import annotations

import json

import pytest

from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.checks import CHECKS, make_issue
from ftkit.data.record_checks import TaskContext

from data_helpers import chat

GOOD = chat("Where is my parcel?", '{"category": "shipping", "priority": "low"}', system="Classify.")
STRUCTURED = TaskContext("structured_output", "category", ("shipping", "billing"),
                         {"type": "object", "required": ["category", "priority"],
                          "properties": {"priority": {"enum": ["low", "high"]}}})

# check code -> a raw JSONL line that must trigger it (and nothing on GOOD)
BAD_LINES = {
    "json.invalid": '{"messages": [',
    "record.not_object": '["a", "b"]',
    "record.missing_key": json.dumps({"messages_x": []}),
    "record.unknown_key": json.dumps({**GOOD, "extra": 1}),
    "record.bad_type": json.dumps({"messages": "hello"}),
    "message.not_object": json.dumps({"messages": ["hi"]}),
    "message.missing_key": json.dumps({"messages": [{"content": "hi"}]}),
    "message.unknown_role": json.dumps({"messages": [{"role": "robot", "content": "hi"}]}),
    "message.missing_content": json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}),
    "message.unknown_key": json.dumps({"messages": [{"role": "user", "content": "q", "mood": "x"}, {"role": "assistant", "content": '{"category": "shipping", "priority": "low"}'}]}),
    "message.non_text_part": json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image_url", "image_url": {}}]}, GOOD["messages"][2]]}),
    "message.bad_weight": json.dumps({"messages": [{"role": "user", "content": "q"}, {**GOOD["messages"][2], "weight": 0.5}]}),
    "tool.bad_call": json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]}),
    "conversation.no_assistant": json.dumps({"messages": [{"role": "user", "content": "q"}]}),
    "conversation.assistant_not_last": json.dumps({"messages": GOOD["messages"] + [{"role": "user", "content": "thanks"}]}),
    "roles.system_not_first": json.dumps({"messages": [GOOD["messages"][1], {"role": "system", "content": "s"}, GOOD["messages"][2]]}),
    "roles.repeated": json.dumps({"messages": [GOOD["messages"][1], GOOD["messages"][1], GOOD["messages"][2]]}),
    "roles.first_not_user": json.dumps({"messages": [GOOD["messages"][2], GOOD["messages"][1], GOOD["messages"][2]]}),
    "content.empty_assistant": json.dumps(chat("q", "   ")),
    "content.empty": json.dumps(chat("", '{"category": "shipping", "priority": "low"}')),
    "content.placeholder": json.dumps(chat("Hi {{name}}", '{"category": "shipping", "priority": "low"}')),
    "content.html": json.dumps(chat("Hi<br>there&nbsp;you", '{"category": "shipping", "priority": "low"}')),
    "content.whitespace": json.dumps(chat("  padded", '{"category": "shipping", "priority": "low"}')),
    "content.mojibake": json.dumps(chat("caf\ufffd", '{"category": "shipping", "priority": "low"}')),
    "content.control_chars": json.dumps(chat("bell\x07", '{"category": "shipping", "priority": "low"}')),
    "answer.invalid_json": json.dumps(chat("q", "shipping")),
    "answer.missing_field": json.dumps(chat("q", '{"priority": "low"}')),
    "answer.schema": json.dumps(chat("q", '{"category": "shipping", "priority": "urgent"}')),
    "label.unknown": json.dumps(chat("q", '{"category": "returns", "priority": "low"}')),
    "pii.email": json.dumps(chat("mail me at jane.doe@example.com", '{"category": "shipping", "priority": "low"}')),
    "pii.phone": json.dumps(chat("call +44 20 7946 0958", '{"category": "shipping", "priority": "low"}')),
    "pii.card": json.dumps(chat("card 4111 1111 1111 1111", '{"category": "shipping", "priority": "low"}')),
    "pii.iban": json.dumps(chat("IBAN GB82 WEST 1234 5698 7654 32", '{"category": "shipping", "priority": "low"}')),
    "pii.national_id": json.dumps(chat("SSN 123-45-6789", '{"category": "shipping", "priority": "low"}')),
    "pii.ip": json.dumps(chat("from 84.12.201.7 today", '{"category": "shipping", "priority": "low"}')),
    "pii.api_key": json.dumps(chat("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", '{"category": "shipping", "priority": "low"}')),
    "pii.credential": json.dumps(chat("password: Tr0ub4dor&3x", '{"category": "shipping", "priority": "low"}')),
}


def _codes(path, task=STRUCTURED, **kw):
    return {i.code for i in audit_files([path], AuditOptions(task=task, **kw)).issues}


@pytest.mark.parametrize("code", sorted(BAD_LINES))
def test_bad_record_triggers_its_check(code, write_jsonl):
    good = [json.dumps(GOOD)]
    codes = _codes(write_jsonl(raw_lines=good + [BAD_LINES[code]]))
    assert code in codes


def test_good_records_trigger_nothing(write_jsonl):
    records = [chat(f"Where is parcel {i} of order {i * 31}?", '{"category": "shipping", "priority": "low"}',
                    system="Classify.") for i in range(3)]
    assert _codes(write_jsonl(records)) == set()


def test_errors_exclude_records_warnings_do_not(write_jsonl):
    path = write_jsonl(raw_lines=[json.dumps(GOOD), BAD_LINES["content.empty_assistant"], BAD_LINES["content.html"]])
    result = audit_files([path], AuditOptions(task=STRUCTURED))
    assert [m["valid"] for m in result.metas] == [True, False, True]
    issue = next(i for i in result.issues if i.code == "content.empty_assistant")
    assert issue.line == 2 and issue.file == str(path)


def test_every_check_has_severity_title_and_fix():
    for check in CHECKS.values():
        assert check.severity in ("error", "warning", "info") and check.title and check.fix.endswith(".")
    with pytest.raises(Exception, match="Valid codes"):
        make_issue("no.such.check", 1, "x")


def test_invalid_utf8_line_is_one_error_not_a_crash(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"messages": "caf\xe9"}\n' + json.dumps(GOOD).encode() + b"\n")
    result = audit_files([path], AuditOptions(task=STRUCTURED))
    bad = [i for i in result.issues if i.code == "encoding.invalid_utf8"]
    assert len(bad) == 1 and bad[0].line == 2 and "0xe9" in bad[0].message
    assert result.n_valid == 2
