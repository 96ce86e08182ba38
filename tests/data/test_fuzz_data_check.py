"""Bad-input fuzzing of the data audit's entry points with hypothesis.

Whatever a client delivers (random bytes, broken JSON lines, records of every supported shape with wrong types,
odd CSV), ``ftkit data check FILE --json OUT`` exits 0 or 1 with ftkit's own messages, writes well-formed JSON,
and writes nothing but OUT; the library underneath (format detection, normalisation) never raises.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftkit.cli import main
from ftkit.data.checks import CHECKS
from ftkit.data.formats import FORMATS, NormaliseContext, detect_format, normalise
from ftkit.errors import FtkitError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
REPORT_KEYS = {"file", "format", "readable", "n_records", "n_valid", "n_errors", "issues", "duplicates", "pii"}

# -- strategies: what clients deliver ------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["", " ", "\n", "\u202e", "\x00", "jane.doe@example.com", "4111 1111 1111 1111", "{", "\ufeff", "null"])
_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _text,
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                            max_leaves=12)
_roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "function", "human", "gpt", "", "bot"])
_content = _text | _json_values | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": _text}), max_size=3)


def _message(role_key: str = "role", content_key: str = "content"):
    return st.fixed_dictionaries({role_key: _roles, content_key: _content},
                                 optional={"weight": _json_values, "tool_calls": _json_values, "name": _text})


_records = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(_message(), max_size=5) | _json_values},
                          optional={"id": _json_values, "label": _json_values}),
    st.fixed_dictionaries({"prompt": _content, "completion": _content}),
    st.fixed_dictionaries({"instruction": _content, "output": _content}, optional={"input": _content}),
    st.fixed_dictionaries({"conversations": st.lists(_message("from", "value"), max_size=5) | _json_values}),
    st.dictionaries(_text, _json_values, max_size=5),
    _json_values,
)


@st.composite
def jsonl_files(draw) -> bytes:
    """Records as JSON lines, some lines damaged or replaced by noise, optional BOM and CRLF."""
    lines = []
    for record in draw(st.lists(_records, min_size=1, max_size=12)):
        line = json.dumps(record, ensure_ascii=draw(st.booleans()))
        damage = draw(st.sampled_from(["none", "none", "truncate", "noise", "blank"]))
        if damage == "truncate":
            line = line[:draw(st.integers(0, len(line)))]
        elif damage == "noise":
            line = draw(_text)
        elif damage == "blank":
            line = ""
        lines.append(line)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from([b"", codecs.BOM_UTF8]))
    return bom + newline.join(lines).encode("utf-8", "surrogatepass")


@st.composite
def json_array_files(draw) -> bytes:
    text = json.dumps(draw(st.lists(_records, max_size=10)), indent=draw(st.sampled_from([None, 2])))
    if draw(st.booleans()):  # a truncated export
        text = text[:draw(st.integers(1, len(text)))]
    return text.encode("utf-8", "surrogatepass")


@st.composite
def csv_files(draw) -> bytes:
    columns = draw(st.lists(st.sampled_from(["prompt", "completion", "input", "output", "label", "system", "text"])
                            | st.text(string.printable, max_size=8), min_size=1, max_size=5))
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=draw(st.sampled_from([",", "\t", ";"])))
    writer.writerow(columns)
    for _ in range(draw(st.integers(0, 8))):
        writer.writerow(draw(st.lists(_text, max_size=len(columns) + 2)))
    return buffer.getvalue().encode("utf-8", "surrogatepass")


_files = st.one_of(
    st.tuples(st.sampled_from(["data.jsonl", "data.json", "data.csv", "data.txt"]), st.binary(max_size=600)),
    st.tuples(st.sampled_from(["data.jsonl", "data.json"]), jsonl_files()),
    st.tuples(st.just("data.json"), json_array_files()),
    st.tuples(st.sampled_from(["data.csv", "data.tsv"]), csv_files()),
)
_formats = st.sampled_from(["auto", "auto", "chat", "alpaca", "sharegpt", "prompt_completion", "csv"])

# -- tests ---------------------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current folder: anything written to a relative path would show up here."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@FUZZ
@given(file=_files, fmt=_formats)
@example(file=("data.jsonl", b"\r!"), fmt="csv")  # found by this test: csv.Error escaped from the header row
@example(file=("data.jsonl", b'{"prompt": "", "completion": "\\u00000"}'), fmt="auto")  # found: a NUL in a text
def test_data_check_survives_any_file(tmp_path, workdir, capsys, file, fmt):
    name, content = file
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    for old in inbox.iterdir():
        old.unlink()
    data, out = inbox / name, inbox / "report.json"
    data.write_bytes(content)

    code = main(["data", "check", str(data), "--format", fmt, "--json", str(out)])  # anything else raised fails

    captured = capsys.readouterr()
    assert code in (0, 1), captured
    assert "Traceback" not in captured.out + captured.err
    report = json.loads(out.read_text(encoding="utf-8"))
    assert REPORT_KEYS <= set(report)
    assert {i["code"] for i in report["issues"]} <= set(CHECKS)  # every problem is a registered, documented check
    assert code == (1 if report["n_errors"] or not report["readable"] else 0)
    assert sorted(p.name for p in inbox.iterdir()) == sorted([name, "report.json"])
    assert list(workdir.iterdir()) == []
    assert data.read_bytes() == content  # the client's file is never modified


@FUZZ
@given(records=st.lists(_records, min_size=1, max_size=6), fmt=st.sampled_from(sorted(FORMATS)))
def test_format_detection_and_normalisation_never_raise(records, fmt):
    """The library under the audit: unknown shapes become problems on the example, never exceptions."""
    detected = detect_format(records)
    assert detected is None or detected in FORMATS
    ctx = NormaliseContext(columns={"prompt": "prompt", "completion": "completion"}, system_prompt="Be brief.")
    if fmt == "csv":  # the CSV reader only ever hands over rows of strings
        records = [{str(k): str(v) for k, v in r.items()} if isinstance(r, dict) else r for r in records]
    for record in records:
        try:
            example = normalise(FORMATS[fmt], record, ctx)
        except FtkitError:
            continue
        assert all(code in CHECKS for code, _ in example.problems)
        assert example.fatal or all(isinstance(m.get("content"), str) for m in example.messages)
