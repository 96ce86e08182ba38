"""`ftkit data check`: exit codes, the --json document, the human summary, and a fast start without torch."""
from __future__ import annotations

import json
import subprocess
import sys

from ftkit.cli import main
from ftkit.data.check_command import run_data_check

from data_helpers import chat, distinct_tickets


def test_clean_file_exits_0_and_json_has_the_keys(write_jsonl, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert run_data_check(str(write_jsonl(distinct_tickets(5))), json_out=str(out)) == 0
    doc = json.loads(out.read_text())
    assert {"format", "n_records", "n_valid", "issues", "duplicates", "pii"} <= set(doc)
    assert (doc["format"], doc["n_records"], doc["n_valid"]) == ("chat", 5, 5)
    assert "verdict: OK" in capsys.readouterr().out


def test_warnings_allowed_errors_exit_1(write_jsonl, tmp_path, capsys):
    records = distinct_tickets(4) + [distinct_tickets(1)[0], chat("mail jane.doe@example.com", "ok")]
    out = tmp_path / "r.json"
    assert run_data_check(str(write_jsonl(records)), json_out=str(out)) == 0
    doc = json.loads(out.read_text())
    assert doc["duplicates"] == [[1, 5]] and doc["pii"] == [{"line": 6, "kind": "email"}]
    assert all(set(i) >= {"line", "severity", "code", "message"} for i in doc["issues"])
    bad = write_jsonl(raw_lines=[json.dumps(chat("q", "a")), "{not json"], name="bad.jsonl")
    assert run_data_check(str(bad), json_out=str(out)) == 1
    doc = json.loads(out.read_text())
    assert [(i["line"], i["code"]) for i in doc["issues"]] == [(2, "json.invalid")]
    text = capsys.readouterr().out
    assert "json.invalid" in text and "FAILED" in text and "jane.doe" not in text


def test_unreadable_file_exit_1_clear_message(tmp_path, capsys):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"")
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "cannot read this file" in out and "empty" in out and "Traceback" not in out


def test_cli_usage_error_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ftkit.cli", "data", "check", "f.jsonl", "--format", "xml"],
                          capture_output=True, text=True)
    assert proc.returncode == 2


def test_data_check_does_not_import_torch_or_transformers():
    code = ("import sys, ftkit.data.check_command, ftkit.data.audit_files; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
