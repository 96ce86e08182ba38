"""A full disk or an unwritable folder gives a one-paragraph ftkit error naming the path and what to do, never a
traceback, and leaves no half-written file: earlier evidence is unchanged and the next run recovers.

Real conditions where this machine allows them (a tiny tmpfs that really fills up; a read-only bind mount, since
root ignores permissions), skipped elsewhere; plus ENOSPC injected in-process, which runs everywhere.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from engagement_helpers import fork_notebook, sample_records
from hardening_helpers import PAGE, assert_one_paragraph, fill, read_only, tiny_disk, tree
from ftkit import audit_log
from ftkit.cli import main
from ftkit.engagement import Engagement
from ftkit.errors import FtkitError
from ftkit.runner import run_phases
from ftkit.verify import verify_engagement

QUICK = ("from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
         "run.write_json('extra.json', {'a': 1})\nrun.finish(headline={'ok': 1})")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Engagement:
    """An engagement with one good (quick, forked) suitability run; tests work on copies of it."""
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement

    folder = tmp_path_factory.mktemp("disk-errors")
    data = folder / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_records(60)), encoding="utf-8")
    engagement = create_engagement("acme", [data], folder / "engagements", settings=DEMO_SETTINGS)
    fork_notebook(engagement, "01_suitability", [QUICK])
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded, outcome.error
    return engagement


def _copy(engagement: Engagement, root: Path) -> Engagement:
    shutil.copytree(engagement.path, root / engagement.slug)
    return Engagement.from_dir(root / engagement.slug)


def _run(engagement: Engagement, capsys) -> tuple[int, str]:
    code = main(["run", engagement.slug, "--phase", "suitability", "--root", str(engagement.root)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("leave,stage", [(0, "engagement lock"), (PAGE, "Cannot start the suitability run")],
                         ids=["full-before-the-lock", "full-before-the-run-folder"])
def test_run_on_a_full_disk_fails_cleanly(recorded, tmp_path, capsys, leave, stage):
    with tiny_disk(tmp_path / "disk") as disk:
        engagement = _copy(recorded, disk / "engagements")
        fill(disk, leave)
        before = tree(engagement.path)
        code, err = _run(engagement, capsys)
        assert code == 1
        assert_one_paragraph(err, stage, str(engagement.path), "No space left on device", "Free disk space")
        assert tree(engagement.path) == before  # no run folder, lock, temp file or truncated snapshot left


def test_new_on_a_full_disk_leaves_no_half_made_engagement(tmp_path, capsys):
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_records(150)), encoding="utf-8")
    with tiny_disk(tmp_path / "disk", 1024) as disk:
        root = disk / "engagements"
        root.mkdir()
        fill(disk, 2 * PAGE)  # room for a folder or two, not for the client's data
        code = main(["new", "acme", "--data", str(data), "--root", str(root)])
        assert code == 1
        assert_one_paragraph(capsys.readouterr().err, "acme", str(root), "No space left on device", "nothing was created")
        assert list(root.iterdir()) == []  # no staging folder, no half engagement


def test_data_check_json_on_a_full_disk_writes_nothing(tmp_path, capsys):
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_records(300)), encoding="utf-8")
    with tiny_disk(tmp_path / "disk", 64) as disk:
        fill(disk)
        code = main(["data", "check", str(data), "--json", str(disk / "check.json")])
        assert code == 1
        assert_one_paragraph(capsys.readouterr().err, str(disk / "check.json"), "No space left on device")
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin"]


def test_run_into_a_read_only_phases_folder_fails_cleanly(recorded, tmp_path, capsys):
    engagement = _copy(recorded, tmp_path / "engagements")
    before = tree(engagement.path)
    with read_only(engagement.path / "phases"):
        code, err = _run(engagement, capsys)
    assert code == 1
    assert_one_paragraph(err, "Cannot create the run folder", str(engagement.runs_dir("suitability")), "writable")
    assert tree(engagement.path) == before
    assert verify_engagement(engagement)[0] == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file an fd is")
def test_disk_full_while_writing_the_manifest_is_reported_and_recovered(recorded, tmp_path, capsys, monkeypatch):
    """ENOSPC injected in-process where a real disk reports it (fsync of the manifest's temp file), after the
    notebook ran: runs everywhere, root or not."""
    engagement = _copy(recorded, tmp_path / "engagements")
    before, latest = tree(engagement.path), engagement.latest_run_id("suitability")
    with _enospc_on_fsync(monkeypatch, ".manifest.json."):
        code, err = _run(engagement, capsys)
    assert code == 1
    assert_one_paragraph(err, "manifest.json", "No space left on device", "marks it abandoned")
    after = tree(engagement.path)
    assert {k: after.get(k) for k in before} == before  # every earlier file unchanged (the audit log too)
    [orphan] = set(engagement.run_ids("suitability")) - {latest}
    new = [k for k in after if k not in before]
    assert all(orphan in k for k in new) and not any(k.endswith((".tmp", "manifest.json")) for k in new), new
    assert engagement.latest_run_id("suitability") == latest

    [again] = run_phases(engagement, ["suitability"], progress=False)  # the disk has room again
    assert again.succeeded, again.error
    assert json.loads((engagement.runs_dir("suitability") / orphan / "status.json").read_text())["status"] == "abandoned"
    assert verify_engagement(engagement)[0] == []


def test_a_full_disk_never_leaves_half_an_audit_line(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    for i in range(2):
        audit_log.append_event(path, "run_finished", phase="suitability", run_id=f"r{i}", status="succeeded")
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # the disk takes half the line, then has no room left
        monkeypatch.setattr(os, "write", _raise_enospc)
        return real_write(fd, bytes(data[:len(data) // 2]))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(FtkitError, match="audit log .*No space left on device"):
        audit_log.append_event(path, "run_finished", phase="suitability", run_id="r2", status="succeeded")
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before  # cut back to the last whole entry
    audit_log.append_event(path, "run_finished", phase="suitability", run_id="r2", status="succeeded")
    assert audit_log.check_chain(audit_log.read_entries(path)) == []


def _raise_enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _enospc_on_fsync:
    """Make fsync fail with ENOSPC for files whose path contains ``marker`` (delayed allocation: a real full
    disk often reports ENOSPC only at fsync/close, after the bytes were 'written')."""

    def __init__(self, monkeypatch, marker: str):
        self.monkeypatch, self.marker, self.real = monkeypatch, marker, os.fsync

    def __enter__(self):
        def fsync(fd):
            if self.marker in os.readlink(f"/proc/self/fd/{fd}"):
                _raise_enospc()
            return self.real(fd)
        self.monkeypatch.setattr(os, "fsync", fsync)

    def __exit__(self, *exc):
        self.monkeypatch.setattr(os, "fsync", self.real)
