"""Resume after a really killed run: SIGKILL the `ftkit run` process and its kernel mid-training, run again."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from ftkit.fsutil import read_json
from ftkit.runner import run_phases
from ftkit.training.resume import MARKER


def _marked_steps(run_dir):
    return sorted(read_json(p)["step"] for p in run_dir.glob(f"checkpoints/checkpoint-*/{MARKER}"))


def _start_and_kill_after_first_checkpoint(engagement, timeout_s: float = 300):
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "ftkit.cli", "run", engagement.slug, "--phase", "training",
                             "--root", str(engagement.root)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = engagement.runs_dir("training")
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.is_dir() and any(_marked_steps(d) for d in runs.iterdir()):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the training run finished or hung before writing a checkpoint")
    finally:
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        for pid in family:  # the CLI and the notebook kernel it started, no chance to clean up
            try:
                psutil.Process(pid).send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=30)
    [killed] = [d for d in runs.iterdir()]
    return killed


def test_a_killed_training_run_resumes_from_its_last_checkpoint(audited, set_training):
    set_training(audited, max_steps=32, eval_steps=4, batch_size=2, eval_max_examples=8, early_stopping_patience=0)
    killed = _start_and_kill_after_first_checkpoint(audited)
    assert read_json(killed / "status.json")["status"] == "running"  # killed: nobody wrote a final status
    step = _marked_steps(killed)[-1]
    assert 4 <= step < 32

    [outcome] = run_phases(audited, ["training"], progress=False)
    assert outcome.succeeded, outcome.error
    assert read_json(killed / "status.json")["status"] == "abandoned"  # recovered by the next run
    results = read_json(outcome.run_dir / "results.json")
    assert results["results"]["resumed_from"]["run_id"] == killed.name
    assert results["headline"]["resumed_from_step"] == results["results"]["resumed_from"]["step"] >= step
    resumed = next(f for f in results["findings"] if f["code"] == "training.resumed")
    step_resumed = results["headline"]["resumed_from_step"]
    assert f"Resumed from step {step_resumed} of interrupted run {killed.name}" in resumed["message"]
    summary = read_json(outcome.run_dir / "training_summary.json")
    assert summary["steps"] == 32 and summary["resumed_from"]["run_id"] == killed.name
    # this run trained only the remaining steps; the loss history still covers the whole run
    this_run = [e["step"] for e in map(__import__("json").loads,
                                       (outcome.run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in e]
    assert min(this_run) > summary["resumed_from"]["step"]
    history = read_json(outcome.run_dir / "loss_history.json")
    assert history["validation"][0]["step"] == 0 and history["validation"][-1]["step"] == 32
    assert history["resumed_from"]["step"] == summary["resumed_from"]["step"]
    assert (outcome.run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_changed_settings_do_not_resume(audited, set_training, tmp_path):
    from ftkit.training.resume import find_resume_point, write_marker

    fake = audited.runs_dir("training") / "20990101T000000Z-abcdef"
    (fake / "checkpoints" / "checkpoint-8").mkdir(parents=True)
    (fake / "checkpoints" / "checkpoint-8" / "trainer_state.json").write_text("{}")
    (fake / "status.json").write_text('{"status": "failed"}')
    write_marker(fake / "checkpoints" / "checkpoint-8", "fingerprint-a", 8, fake.name)
    assert find_resume_point(audited, "fingerprint-a").step == 8
    assert find_resume_point(audited, "fingerprint-b") is None
    (fake / "status.json").write_text('{"status": "succeeded"}')  # a finished run is never resumed
    assert find_resume_point(audited, "fingerprint-a") is None
