"""Pathological files: each gets a clear file-level issue, no traceback, bounded memory."""
from __future__ import annotations

import json
import tracemalloc

import pytest

from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.reader import MAX_RECORD_BYTES

from data_helpers import chat


def _file_issues(path):
    result = audit_files([path], AuditOptions())
    return result, [(i.code, i.message) for i in result.issues if i.line == 0]


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    result, issues = _file_issues(path)
    assert issues[0][0] == "file.empty" and "0 bytes" in issues[0][1] and not result.files[0].readable


@pytest.mark.parametrize("head, words", [
    (b"PK\x03\x04" + b"\x00" * 100, "ZIP"),
    (bytes(range(256)) * 8, "binary"),
])
def test_binary_files(tmp_path, head, words):
    path = tmp_path / "data.jsonl"
    path.write_bytes(head)
    _, issues = _file_issues(path)
    assert issues[0][0] == "file.binary" and words in issues[0][1]


def test_damaged_gzip_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    _, issues = _file_issues(path)
    assert issues[0][0] == "file.compressed" and "gzip" in issues[0][1] and "damaged" in issues[0][1]


def test_utf16_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(chat("q", "a")) + "\n", encoding="utf-16")
    _, issues = _file_issues(path)
    assert issues[0][0] == "file.encoding" and "UTF-8" in issues[0][1]


def test_ten_megabyte_single_line_bounded_memory(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "w") as handle:
        handle.write('{"messages": [{"role": "user", "content": "' + "x" * (10 * 1024 * 1024) + '"}]}')
        handle.write("\n" + json.dumps(chat("q", "a")) + "\n")
    tracemalloc.start()
    result = audit_files([path], AuditOptions())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    too_large = [i for i in result.issues if i.code == "record.too_large"]
    assert len(too_large) == 1 and too_large[0].line == 1 and "10.5 MB" in too_large[0].message
    assert result.n_valid == 1  # the next line is still read
    assert peak < 3 * MAX_RECORD_BYTES  # never the whole 10 MB line (plus a copy) in memory


def test_minified_json_array_on_one_line_streams(tmp_path):
    path = tmp_path / "one_line.json"
    path.write_text(json.dumps([chat(f"question {i} " + "pad " * 400, f"answer {i}") for i in range(2000)]))
    assert path.stat().st_size > MAX_RECORD_BYTES / 2
    result = audit_files([path], AuditOptions())
    assert result.n_records == 2000 and result.files[0].container == "json_array"


@pytest.mark.parametrize("obj, hint", [
    ({"data": [chat("q", "a")], "version": 2}, "under 'data'"),
    ({"name": "x", "rows": 3}, "JSON array"),
])
def test_json_object_instead_of_a_list(tmp_path, obj, hint):
    for name, text in (("pretty.json", json.dumps(obj, indent=2)), ("oneline.jsonl", json.dumps(obj))):
        path = tmp_path / name
        path.write_text(text)
        result, issues = _file_issues(path)
        codes = [c for c, _ in issues]
        assert "file.not_a_list" in codes, (name, issues)
        message = dict(issues)["file.not_a_list"]
        assert "one JSON object" in message and hint in message


def test_truncated_json_array(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps([chat("q1", "a1"), chat("q2", "a2")])[:-30])
    result, issues = _file_issues(path)
    assert issues[0][0] == "file.invalid_json"
    assert result.n_records == 1  # what came before the damage is kept


def test_pretty_printed_records_explained(write_jsonl):
    lines = json.dumps([chat("q", "a")], indent=2).splitlines()[1:-1]  # objects spread over lines, no brackets
    result, issues = _file_issues(write_jsonl(raw_lines=["{", '"x": 1,', '"y": 2', "}", "{", '"x": 3', "}"]))
    assert "file.mostly_invalid" in [c for c, _ in issues] and lines


def test_missing_file(tmp_path):
    _, issues = _file_issues(tmp_path / "nope.jsonl")
    assert issues[0][0] == "file.not_found"


@pytest.mark.parametrize("container", ["jsonl", "json_array"])
def test_unpaired_surrogate_escape_is_a_record_error_not_a_crash(tmp_path, container):
    bad = chat("broken \ud800 text", "ok")  # json.dumps writes it as the escape \ud800
    good = chat("an emoji \U0001F600 is a surrogate pair", "fine")  # escaped as \ud83d\ude00: valid
    records = [bad, good]
    path = tmp_path / ("data.jsonl" if container == "jsonl" else "data.json")
    path.write_text("\n".join(json.dumps(r) for r in records) if container == "jsonl" else json.dumps(records))
    result = audit_files([path])
    [issue] = [i for i in result.issues if i.code == "encoding.invalid_utf8"]
    assert issue.line == 1 and "surrogate" in issue.message
    assert result.n_records == 2 and result.n_valid == 1
    result.write_outputs(tmp_path / "out")  # the valid record is written as UTF-8 without error
    assert "emoji" in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8") + \
        (tmp_path / "out" / "validation.jsonl").read_text(encoding="utf-8") + \
        (tmp_path / "out" / "test.jsonl").read_text(encoding="utf-8")
