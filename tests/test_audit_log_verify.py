"""The audit log is hash-chained and `ftkit verify` finds every edit, deletion and reordering."""
from __future__ import annotations

import json

import pytest

from engagement_helpers import fork_notebook
from ftkit import audit_log
from ftkit.runner import run_phases
from ftkit.verify import verify_engagement


def _chain(tmp_path, n=4):
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        audit_log.append_event(path, "run_finished", phase="suitability", run_id=f"r{i}", status="succeeded")
    return path


def test_intact_chain_has_no_problems(tmp_path):
    entries = audit_log.read_entries(_chain(tmp_path))
    assert [e["seq"] for e in entries] == [0, 1, 2, 3]
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert audit_log.check_chain(entries) == []


def test_edited_entry_is_detected(tmp_path):
    path = _chain(tmp_path)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"succeeded"', '"failed"')
    path.write_text("\n".join(lines) + "\n")
    problems = audit_log.check_chain(audit_log.read_entries(path))
    assert any("line 2" in p and "edited" in p for p in problems)


def test_deleted_entry_is_detected(tmp_path):
    path = _chain(tmp_path)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    problems = audit_log.check_chain(audit_log.read_entries(path))
    assert any("line 2" in p and ("seq" in p or "chain" in p) for p in problems)


def test_reordered_entries_are_detected(tmp_path):
    path = _chain(tmp_path)
    lines = path.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert audit_log.check_chain(audit_log.read_entries(path))


def test_truncated_line_is_detected(tmp_path):
    path = _chain(tmp_path)
    path.write_text(path.read_text()[:-20] + "\n")
    assert any("not valid JSON" in p for p in audit_log.check_chain(audit_log.read_entries(path)))


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


# -- `ftkit verify` on a real engagement: every kind of tampering with the log exits 1 and says where ----------

def _rehash(line: str, **changes) -> str:
    """The line edited by someone who knows the scheme and recomputes its own hash."""
    entry = {**json.loads(line), **changes}
    entry["hash"] = audit_log.entry_hash(entry)
    return json.dumps(entry, sort_keys=True)


TAMPERING = {  # name -> (change to the list of lines, a fragment verify must print)
    "edited": (lambda ls: ls[:1] + [ls[1].replace('"succeeded"', '"failed"')] + ls[2:], "line 2 (run_finished) was edited"),
    "edited_and_rehashed": (lambda ls: ls[:1] + [_rehash(ls[1], status="failed")] + ls[2:], "line 3 does not chain"),
    "last_edited_and_rehashed": (lambda ls: ls[:-1] + [_rehash(ls[-1], status="failed")],
                                 "audit.jsonl says run"),  # no next line to break: caught against the manifest
    "deleted_middle": (lambda ls: ls[:1] + ls[2:], "line 2 has seq 2, expected 1"),
    "deleted_last": (lambda ls: ls[:-1], "not in the audit log"),
    "deleted_first": (lambda ls: ls[1:], "line 1 has seq 1, expected 0"),
    "reordered": (lambda ls: [ls[0], ls[2], ls[1]], "line 2 has seq 2, expected 1"),
    "truncated": (lambda ls: ls[:-1] + [ls[-1][:40]], "line 3 is not valid JSON"),
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """An engagement whose audit log has three lines: engagement_created and two run_finished."""
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement
    from engagement_helpers import sample_records

    folder = tmp_path_factory.mktemp("verify-cli")
    data = folder / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_records(40)), encoding="utf-8")
    engagement = create_engagement("acme", [data], folder / "engagements", settings=DEMO_SETTINGS)
    fork_notebook(engagement, "01_suitability", [
        "from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
        "run.finish(headline={'ok': 1})"])
    for _ in range(2):
        assert run_phases(engagement, ["suitability"], progress=False)[0].succeeded
    assert len(engagement.audit_path.read_text().splitlines()) == 3
    return engagement


@pytest.mark.parametrize("name", [None, *TAMPERING])
def test_ftkit_verify_detects_each_kind_of_audit_tampering(two_runs, tmp_path, capsys, name):
    import shutil

    from ftkit.cli import main

    root = tmp_path / "engagements"
    shutil.copytree(two_runs.path, root / two_runs.slug)
    log = root / two_runs.slug / "audit.jsonl"
    if name:
        change, fragment = TAMPERING[name]
        log.write_text("\n".join(change(log.read_text().splitlines())) + "\n")
    code = main(["verify", two_runs.slug, "--root", str(root)])
    captured = capsys.readouterr()
    if name is None:  # control: the untouched copy verifies
        assert code == 0 and "OK" in captured.out
        return
    assert code == 1 and fragment in captured.err, captured.err
    assert "Traceback" not in captured.err
