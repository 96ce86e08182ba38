"""`ftkit augment` through the CLI: ftkit's own server hosting the tiny model as teacher (its gibberish exercises
the filters), a real kill mid-generation and the re-run that continues, and clear errors instead of tracebacks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from augment_helpers import set_settings
from ftkit.cli import main


def _settings(url: str, model: str, **extra) -> dict:
    return {"augmentation.teacher.base_url": url, "augmentation.teacher.model": model,
            "augmentation.min_per_target": 1000, **extra}


def test_served_tiny_model_as_teacher_gibberish_is_filtered_not_a_traceback(audited, served_tiny_teacher, capsys):
    set_settings(audited, _settings(served_tiny_teacher.base_url, "tiny-teacher", **{
        "augmentation.candidates_per_target": 2, "augmentation.per_call": 2, "augmentation.max_calls": 2,
        "augmentation.max_tokens": 24, "augmentation.shots": 1}))
    code = main(["augment", audited.slug, "--root", str(audited.root)])
    out = capsys.readouterr().out
    [run] = (audited.path / "augmentation").iterdir()
    summary = json.loads((run / "augment.json").read_text())
    assert summary["calls"]["calls"] == 2 and summary["calls"]["completion_tokens"] > 0
    assert summary["teacher"]["model"] == "tiny-teacher" and summary["plan"]["schedule_cut"] > 0
    assert sum(summary["calls"]["problems"].values()) + sum(summary["filtered"]["rejected"].values()) >= 2
    assert code == (0 if summary["filtered"]["kept"] else 1)
    assert "Teacher tiny-teacher: 2 request(s)" in out and "augmentation.max_calls" in out
    assert not list(audited.data_dir.glob("synthetic-*"))


def test_no_data_audit_and_an_unreachable_teacher_are_clear_errors(make_engagement, audited, capsys):
    fresh = make_engagement("fresh", n=20)
    assert main(["augment", "fresh", "--root", str(fresh.root)]) == 1
    assert "--phase data_audit" in capsys.readouterr().err
    set_settings(audited, _settings("http://127.0.0.1:9/v1", "m"))  # port 9 (discard): nothing listens
    import ftkit.augmentation.teacher as teacher

    teacher.BACKOFF_S, saved = 0.0, teacher.BACKOFF_S
    try:
        code = main(["augment", audited.slug, "--root", str(audited.root)])
    finally:
        teacher.BACKOFF_S = saved
    out = capsys.readouterr().out
    assert code == 1 and "[warning] Request 1 of" in out and "failed 4 times" in out
    assert "continues with request 1" in out


def _good(i: int) -> dict:
    return {"input": f"Case {i}: my order {1000 + i * 17} of a {['tarp', 'mug', 'cap', 'belt', 'lamp', 'sock'][i % 6]} "
                     f"arrived {['late', 'wet', 'open', 'bent', 'torn', 'dirty'][i // 6 % 6]} on day {i * 3}",
            "answer": '{"category": "shipping", "priority": "low"}'}


def test_a_kill_mid_generation_leaves_no_data_or_sheet_and_the_rerun_continues(audited, fixed_teacher):
    replies = [{"content": json.dumps([_good(2 * k), _good(2 * k + 1)])} for k in range(6)]
    server = fixed_teacher(replies, delay_s=0.4)
    set_settings(audited, _settings(server.base_url, "fixed", **{
        "augmentation.candidates_per_target": 2, "augmentation.per_call": 2, "augmentation.max_calls": 6}))
    command = [sys.executable, "-m", "ftkit", "augment", audited.slug, "--root", str(audited.root)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = list((audited.path / "augmentation").glob("*/candidates.jsonl"))
        if logs and logs[0].read_text().count('"kind": "call"') >= 2:
            log = logs[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert log is not None, proc.stdout.read().decode()
    run = log.parent
    assert '"kind": "complete"' not in log.read_text()
    assert not (run / "review.csv").exists() and not (run / "augment.json").exists()
    assert not list(audited.data_dir.glob("synthetic-*"))
    done = log.read_text().count('"kind": "call"')

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Continuing {run.name}: {done} of" in again.stdout
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [r["call"] for r in rows if r["kind"] == "call"]
    assert sorted(calls) == list(range(len(calls))) and rows[-1]["kind"] == "complete"
    assert [p.name for p in (audited.path / "augmentation").iterdir()] == [run.name]
    assert (run / "review.csv").is_file()
    requests = len(server.requests)
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)  # same plan, done: reused
    assert third.returncode == 0 and "already ran with these settings" in third.stdout
    assert len(server.requests) == requests and len(list((audited.path / "augmentation").iterdir())) == 1
