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


HOLD = ("import sys, time\nfrom ftkit.lock import engagement_lock\n"
        "with engagement_lock(sys.argv[1], 'ftkit run training'):\n"
        "    print('locked', flush=True)\n    time.sleep(float(sys.argv[2]))\n")


def _holder(lock_path, seconds: float = 30) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_path), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_is_refused_while_one_is_running(make_engagement):
    engagement = make_engagement()
    holder = _holder(engagement.lock_path)
    try:
        with pytest.raises(EngagementLocked, match=f"process {holder.pid}.*ftkit run training.*pid {holder.pid}"):
            run_phases(engagement, ["suitability"], progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert engagement.run_ids("suitability") == []


def test_a_killed_holder_releases_the_lock_by_itself(tmp_path):
    """SIGKILL gives the process no chance to clean up: the OS drops its lock, its note is left behind."""
    lock = tmp_path / ".ftkit.lock"
    holder = _holder(lock)
    from ftkit.lock import is_locked
    assert is_locked(lock)
    holder.kill()
    holder.wait()
    assert lock.exists() and not is_locked(lock)  # a note without a lock means nothing
    with engagement_lock(lock, "after the kill") as info:
        assert json.loads(lock.read_text())["purpose"] == "after the kill" and info["pid"] != holder.pid


RACER = """
import json, sys, time
import ftkit.lock as lk
from ftkit.errors import EngagementLocked
original = lk.read_lock
def slow_read(path):  # widen the window between reading the stale note and acting on it
    info = original(path)
    time.sleep(0.3)
    return info
lk.read_lock = slow_read
lock, log, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
try:
    with lk.engagement_lock(lock, "racer"):
        t0 = time.time()
        time.sleep(0.6)
        with open(log, "a") as f:
            f.write(json.dumps([t0, time.time()]) + "\\n")
except EngagementLocked:
    pass
"""


def test_processes_racing_for_a_stale_lock_never_both_get_it(tmp_path):
    """Before: each racer read the dead holder's file, judged it stale, removed it and created its own, so two
    racers held the lock at once. Now the OS grants it to one at a time."""
    import time

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock, log = tmp_path / ".ftkit.lock", tmp_path / "held.jsonl"
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then", "purpose": "x"}))
    start = time.time() + 3
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(lock), str(log), str(start)]) for _ in range(4)]
    for racer in racers:
        assert racer.wait(timeout=60) == 0
    spans = sorted(json.loads(line) for line in log.read_text().splitlines())
    assert spans, "no racer took the lock"
    for (_, end), (begin, _) in zip(spans, spans[1:]):
        assert begin >= end, f"two processes held the lock at once: {spans}"


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
