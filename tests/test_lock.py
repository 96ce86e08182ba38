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
