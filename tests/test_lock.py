"""One run per engagement: a live lock refuses, a stale lock (dead process) is recovered."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from ftkit.errors import EngagementLocked
from ftkit.lock import engagement_lock
from ftkit.runner import run_phases


def test_second_run_is_refused_while_one_is_running(make_engagement):
    engagement = make_engagement()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        engagement.lock_path.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                    "since": "now", "purpose": "ftkit run training"}))
        with pytest.raises(EngagementLocked, match=f"process {holder.pid}.*ftkit run training"):
            run_phases(engagement, ["suitability"], progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert engagement.run_ids("suitability") == []


def test_stale_lock_from_a_killed_process_is_recovered(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".ftkit.lock"
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then", "purpose": "x"}))
    with engagement_lock(lock, "test") as info:
        assert json.loads(lock.read_text())["pid"] == info["pid"]
    assert not lock.exists()


def test_nested_use_in_the_same_process_is_refused(tmp_path):
    lock = tmp_path / ".ftkit.lock"
    with engagement_lock(lock, "outer"):
        with pytest.raises(EngagementLocked):
            with engagement_lock(lock, "inner"):
                pass
    assert not lock.exists()


def test_two_real_runs_at_once_the_second_is_refused_naming_the_first(make_engagement, capsys):
    """Two `ftkit run` on one engagement: the second (started while the first holds the lock) exits 1 with a
    one-paragraph message naming the first's pid, creates no run folder, and the first finishes normally."""
    import time

    from engagement_helpers import fork_notebook
    from ftkit.cli import main
    from ftkit.lock import read_lock
    from ftkit.verify import verify_engagement
    from hardening_helpers import assert_one_paragraph

    engagement = make_engagement()
    fork_notebook(engagement, "01_suitability", [
        "from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
        "run.finish(headline={'ok': 1})"])
    argv = ["run", engagement.slug, "--phase", "suitability", "--root", str(engagement.root)]
    first = subprocess.Popen([sys.executable, "-m", "ftkit.cli", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (read_lock(engagement.lock_path) or {}).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.01)
        assert main(argv) == 1
        assert_one_paragraph(capsys.readouterr().err, f"ftkit process {first.pid}", "busy", "Wait for it")
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert len(engagement.run_ids("suitability")) == 1  # the refused run left nothing behind
    assert not engagement.lock_path.exists()
    assert verify_engagement(engagement)[0] == []
