"""The audit log is hash-chained and `ftkit verify` finds every edit, deletion and reordering."""
from __future__ import annotations

import json

import pytest

from engagement_helpers import fork_notebook
from ftkit import audit
from ftkit.runner import run_phases
from ftkit.verify import verify_engagement


def _chain(tmp_path, n=4):
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        audit.append_event(path, "run_finished", phase="suitability", run_id=f"r{i}", status="succeeded")
    return path


def test_intact_chain_has_no_problems(tmp_path):
    entries = audit.read_entries(_chain(tmp_path))
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert audit.check_chain(entries) == []


def test_edited_entry_is_detected(tmp_path):
    path = _chain(tmp_path)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"succeeded"', '"failed"')
    path.write_text("\n".join(lines) + "\n")
    problems = audit.check_chain(audit.read_entries(path))
    assert any("line 2" in p and "edited" in p for p in problems)


def test_deleted_entry_is_detected(tmp_path):
    path = _chain(tmp_path)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    problems = audit.check_chain(audit.read_entries(path))
    assert any("line 2" in p and ("seq" in p or "chain" in p) for p in problems)


def test_reordered_entries_are_detected(tmp_path):
    path = _chain(tmp_path)
    lines = path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert audit.check_chain(audit.read_entries(path))


def test_truncated_line_is_detected(tmp_path):
    path = _chain(tmp_path)
    path.write_text(path.read_text()[:-20] + "\n")
    assert any("not valid JSON" in p for p in audit.check_chain(audit.read_entries(path)))


@pytest.fixture
def recorded(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, "01_suitability", [
        "from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
        "run.data_files()\nrun.write_json('extra.json', {'a': 1})\nrun.finish(headline={'ok': 1})"])
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded
    return engagement, outcome.run_dir


def test_verify_ok_then_names_each_changed_file(recorded):
    engagement, run_dir = recorded
    assert verify_engagement(engagement)[0] == []
    (run_dir / "extra.json").write_text('{"a": 2}')
    (run_dir / "report.html").unlink()
    data_file = next(engagement.data_dir.iterdir())
    data_file.write_text(data_file.read_text() + "\n")
    problems = "\n".join(verify_engagement(engagement)[0])
    assert "extra.json: run output has changed" in problems
    assert "report.html: run output is missing" in problems
    assert f"data/{data_file.name}: client data file (hashed at intake) has changed" in problems


def test_verify_detects_a_tampered_manifest(recorded):
    engagement, run_dir = recorded
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "succeeded-ish"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    assert any("manifest has changed" in p for p in verify_engagement(engagement)[0])


def test_verify_detects_an_unrecorded_run_folder(recorded):
    engagement, run_dir = recorded
    (run_dir.parent / "20990101T000000Z-abcdef").mkdir()
    assert any("not in the audit log" in p for p in verify_engagement(engagement)[0])


def test_verify_detects_a_deleted_audit_entry(recorded):
    engagement, _ = recorded
    lines = engagement.audit_path.read_text().splitlines()
    engagement.audit_path.write_text(lines[0] + "\n")
    assert any("not in the audit log" in p for p in verify_engagement(engagement)[0])
