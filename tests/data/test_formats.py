"""Formats: detection, normalisation to chat messages, encodings and line endings."""
from __future__ import annotations

import json

import pytest

from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.formats import FORMATS, NormaliseContext, detect_format, guess_csv_columns, normalise

from data_helpers import chat


def _audit(path, **kw):
    result = audit_files([path], AuditOptions(**kw))
    return result


def _split_records(result, tmp_path):
    result.write_outputs(tmp_path / "out")
    rows = []
    for name in ("train", "validation", "test"):
        rows += [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
    return rows


@pytest.mark.parametrize("record, fmt, roles", [
    (chat("q", "a", system="s"), "chat", ["system", "user", "assistant"]),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}, "sharegpt", ["user", "assistant"]),
    ({"instruction": "do", "input": "x", "output": "y"}, "alpaca", ["user", "assistant"]),
    ({"prompt": "q", "completion": "a"}, "prompt_completion", ["user", "assistant"]),
    ({"question": "q", "answer": "a"}, "prompt_completion", ["user", "assistant"]),
    ({"text": "q", "label": "spam"}, "prompt_completion", ["user", "assistant"]),
])
def test_each_format_is_detected_and_normalised(record, fmt, roles):
    assert detect_format([record]) == fmt
    ex = normalise(FORMATS[fmt], record, NormaliseContext())
    assert not ex.problems and [m["role"] for m in ex.messages] == roles


def test_classification_label_comes_from_label_key():
    ex = normalise(FORMATS["prompt_completion"], {"text": "q", "category": " Company "}, NormaliseContext())
    assert ex.label == "Company"


def test_content_parts_joined_and_value_parts_flagged():
    rec = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                        {"role": "assistant", "content": [{"type": "text", "value": "c"}]}]}
    ex = normalise(FORMATS["chat"], rec, NormaliseContext())
    assert [m["content"] for m in ex.messages] == ["a\nb", "c"]
    assert [c for c, _ in ex.problems] == ["message.nonstandard_part"] and not ex.fatal


def test_tool_calls_and_weight_are_kept():
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 3}"}}
    rec = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "c1", "content": "42"},
                        {"role": "assistant", "content": "draft", "weight": 0}, {"role": "user", "content": "and?"},
                        {"role": "assistant", "content": "It is 42.", "weight": 1}], "tools": []}
    ex = normalise(FORMATS["chat"], rec, NormaliseContext())
    assert not ex.fatal, ex.problems
    assert ex.messages[1]["tool_calls"] == [call] and ex.messages[1]["content"] == ""
    assert ex.messages[3]["weight"] == 0 and "weight" not in ex.messages[5]


def test_bom_crlf_and_json_array_give_the_same_records(tmp_path):
    records = [chat(f"question number {i} about tents", f"answer {i}") for i in range(5)]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\r\n" for r in records).encode())
    array = tmp_path / "b.json"
    array.write_text(json.dumps(records, indent=2), encoding="utf-8-sig")
    minified = tmp_path / "c.json"
    minified.write_text(json.dumps(records), encoding="utf-8")
    outs = []
    for path in (jsonl, array, minified):
        result = _audit(path)
        assert result.n_valid == 5 and not result.issues, [i.message for i in result.issues]
        outs.append(sorted(m["content"] for r in _split_records(result, tmp_path) for m in r["messages"]))
    assert outs[0] == outs[1] == outs[2]
    assert _audit(array).files[0].container == "json_array"


def test_csv_columns_guessed_or_configured(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,category\r\n\"Hello, where is my card?\",card_arrival\r\nI lost it,lost_card\r\n", encoding="utf-8")
    result = _audit(path)
    assert result.files[0].format == "csv" and result.n_valid == 2
    assert sorted(m["label"] for m in result.metas) == ["card_arrival", "lost_card"]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("q\ta\nhi\tthere\n", encoding="utf-8")
    assert _audit(tsv, columns={"prompt": "q", "completion": "a"}).n_valid == 1
    bad = _audit(tsv)
    assert [i.code for i in bad.issues] == ["file.csv_columns"] and "data.columns.prompt" in bad.issues[0].message
    assert guess_csv_columns(["instruction", "response"], {}) == {"prompt": "instruction", "completion": "response", "system": ""}


def test_format_override_and_unknown_format(write_jsonl):
    path = write_jsonl([{"foo": 1, "bar": 2}] * 3)
    result = _audit(path)
    assert [i.code for i in result.issues] == ["file.unknown_format"]
    assert "foo" in result.issues[0].message and "--format" in result.issues[0].message
    forced = _audit(write_jsonl([{"prompt": "p", "completion": "c"}], name="f.jsonl"), fmt="chat")
    assert {i.code for i in forced.issues} == {"record.missing_key"}
