"""A real `ftkit run` killed with SIGKILL at any point leaves earlier runs and `latest` untouched, and the next run
recovers: the orphan is marked abandoned in the audit log, `ftkit verify` passes and the phase succeeds.

Kill points are reached two ways. From outside, by polling (like tests/training/test_resume.py): as soon as the
notebook kernel exists ("kernel_start") or once half the phase's code cells have executed ("mid_execution"); the
CLI and its kernel are SIGKILLed together. From inside, for moments too short to hit by polling: a small wrapper
(``_HOOK``) runs the real CLI but SIGKILLs itself inside the atomic write of report.html or manifest.json (temp file
written, not renamed), or after the manifest but before the run's audit entry ("audit").
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from hardening_helpers import kill_family

from engagement_helpers import fork_notebook

from ftkit.fsutil import read_json, sha256_file
from ftkit.phases import get_phase, ordered
from ftkit.resources import notebooks_dir
from ftkit.runner import run_phases
from ftkit.verify import verify_engagement

_HOOK = r"""
import os, signal, sys
import ftkit.audit_log

point, argv = sys.argv[1], sys.argv[2:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point in ("report", "manifest"):  # die inside fsutil's atomic write: temp file complete, rename not done
    target, real_replace = {"report": "report.html", "manifest": "manifest.json"}[point], os.replace
    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == target:
            die()
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
elif point == "audit":  # manifest written, run not yet in the audit log, `latest` not yet moved
    real_append = ftkit.audit_log.append_event
    def append_event(path, event, **fields):
        if event == "run_finished":
            die()
        return real_append(path, event, **fields)
    ftkit.audit_log.append_event = append_event

from ftkit.cli import main
sys.exit(main(argv))
"""

RUNNER_POINTS = ("kernel_start", "report", "manifest", "audit")


@pytest.fixture
def chain_copy(tiny_chain, tmp_path):
    """A private copy of the tiny engagement with succeeded suitability, data audit and baseline runs."""
    tiny_chain.through("baseline")
    return tiny_chain.copy(tmp_path)


@pytest.mark.parametrize("phase", ["suitability", "data_audit", "baseline"])
def test_a_phase_killed_mid_execution_leaves_evidence_intact_and_the_rerun_succeeds(chain_copy, phase):
    """The real phase notebooks on the tiny model, killed with half their cells executed (partial artefacts)."""
    engagement = chain_copy
    before = _state(engagement)
    orphan = _run_and_kill(engagement, phase, "mid_execution")
    _assert_untouched(engagement, before, {orphan})
    _rerun_recovers(engagement, phase, before, {orphan})


@pytest.fixture
def full_chain_copy(tiny_chain, tmp_path):
    """A private copy of the tiny engagement with every phase succeeded once."""
    tiny_chain.through("suitability")
    tiny_chain.through("deployment_plan")
    return tiny_chain.copy(tmp_path)


@pytest.mark.parametrize("phase", ["training", "evaluation", "deployment_plan"])
def test_a_model_phase_killed_mid_execution_leaves_evidence_intact_and_the_rerun_succeeds(full_chain_copy, phase):
    """The same for the phases that load, train and export models (tiny model): a kill mid-notebook leaves partial
    checkpoints, adapters or exports only inside the orphan's own folder."""
    engagement = full_chain_copy
    before = _state(engagement)
    orphan = _run_and_kill(engagement, phase, "mid_execution")
    _assert_untouched(engagement, before, {orphan})
    _rerun_recovers(engagement, phase, before, {orphan})


def test_runs_killed_around_kernel_start_and_while_recording_leave_evidence_intact(make_engagement):
    """The moments the runner owns (the same for every phase), on a quick forked notebook: at kernel start, inside
    the atomic writes of report.html and manifest.json, and between the manifest and the audit entry. One kill
    after another on the same engagement; then one run recovers every orphan."""
    engagement = make_engagement()
    fork_notebook(engagement, "01_suitability", [
        "from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
        "run.write_json('extra.json', {'a': 1})\nrun.finish(headline={'ok': 1})"])
    [good] = run_phases(engagement, ["suitability"], progress=False)
    assert good.succeeded, good.error
    before, orphans = _state(engagement), set()
    for point in RUNNER_POINTS:
        orphans.add(_run_and_kill(engagement, "suitability", point))
        _assert_untouched(engagement, before, orphans)
    stray = [p for p in engagement.path.rglob("*.tmp") if not orphans & set(p.parts)]
    assert stray == []  # a killed atomic write leaves its temp file only inside the orphan's own folder
    _rerun_recovers(engagement, "suitability", before, orphans)


def _state(engagement) -> dict:
    assert verify_engagement(engagement)[0] == []
    return {"files": _evidence(engagement), "latest": _latest(engagement), "audit": engagement.audit_path.read_bytes()}


def _assert_untouched(engagement, before: dict, orphans: set[str]) -> None:
    assert _evidence(engagement, skip=orphans) == before["files"]  # earlier runs, data, settings: byte-identical
    assert _latest(engagement) == before["latest"]
    log = engagement.audit_path.read_bytes()
    assert log.startswith(before["audit"])  # append-only; a killed run itself is never recorded as finished ...
    added = [json.loads(line) for line in log[len(before["audit"]):].splitlines()]
    assert all(e["event"] == "run_abandoned" and e["run_id"] in orphans for e in added)  # ... only earlier orphans
    problems = verify_engagement(engagement)[0]  # at most an orphan itself is reported, never earlier evidence
    assert all(any(o in p for o in orphans) and "not in the audit log" in p for p in problems), problems


def _rerun_recovers(engagement, phase: str, before: dict, orphans: set[str]) -> None:
    [outcome] = run_phases(engagement, [phase], progress=False)
    assert outcome.succeeded, outcome.error
    for orphan in orphans:
        assert read_json(engagement.runs_dir(phase) / orphan / "status.json")["status"] == "abandoned"
    entries = [json.loads(line) for line in engagement.audit_path.read_text().splitlines()]
    assert engagement.audit_path.read_bytes().startswith(before["audit"])  # append-only
    assert sorted(e["run_id"] for e in entries if e["event"] == "run_abandoned") == sorted(orphans)
    pointer = f"phases/{get_phase(phase).folder}/latest"  # the one file the good re-run changes
    after = _evidence(engagement, skip=orphans | {outcome.run_id})
    assert {k: v for k, v in after.items() if k != pointer} == {k: v for k, v in before["files"].items() if k != pointer}
    assert engagement.latest_run_id(phase) == outcome.run_id
    assert verify_engagement(engagement)[0] == []


def _run_and_kill(engagement, phase: str, point: str) -> str:
    """Start `ftkit run` for ``phase``, SIGKILL it at ``point``; return the id of the run folder it left."""
    earlier = set(engagement.run_ids(phase))
    argv = ["run", engagement.slug, "--phase", phase, "--root", str(engagement.root)]
    hooked = point in ("report", "manifest", "audit")
    cmd = [sys.executable, "-c", _HOOK, point, *argv] if hooked else [sys.executable, "-m", "ftkit.cli", *argv]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if hooked:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == -signal.SIGKILL, f"not killed at '{point}' (exit {proc.returncode}): {err[-2000:]}"
        else:
            _kill_when(proc, _ready(engagement, phase, point, proc))
    finally:
        kill_family(proc)
    [orphan] = set(engagement.run_ids(phase)) - earlier
    return orphan


def _ready(engagement, phase: str, point: str, proc):
    import psutil

    if point == "kernel_start":
        return lambda: any("ipykernel" in " ".join(c.cmdline()) for c in psutil.Process(proc.pid).children())
    notebook = get_phase(phase).notebook
    half = sum(c["cell_type"] == "code" for c in read_json(notebooks_dir() / notebook)["cells"]) // 2
    earlier = set(engagement.run_ids(phase))

    def half_executed() -> bool:
        for run_id in set(engagement.run_ids(phase)) - earlier:
            try:  # papermill rewrites the output notebook after every cell; a half-written read is retried
                cells = read_json(engagement.runs_dir(phase) / run_id / notebook)["cells"]
            except (OSError, ValueError):
                return False
            return sum(c.get("execution_count") is not None for c in cells if c["cell_type"] == "code") >= half
        return False
    return half_executed


def _kill_when(proc, ready, timeout_s: float = 300) -> None:
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ftkit run ended (exit {proc.returncode}) before the kill point: {proc.stderr.read()[-2000:]}")
        try:
            if ready():
                kill_family(proc)
                return
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    pytest.fail("the kill point was not reached in time")


def _evidence(engagement, skip: set[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file of the engagement except the append-only log, the lock and the runs in ``skip``."""
    out = {}
    for path in sorted(engagement.path.rglob("*")):
        rel = path.relative_to(engagement.path)
        if not path.is_file() or rel.name in ("audit.jsonl", ".ftkit.lock"):
            continue
        if rel.parts[0] == "phases" and len(rel.parts) > 3 and rel.parts[3] in skip:
            continue
        out[rel.as_posix()] = sha256_file(path)
    return out


def _latest(engagement) -> dict[str, str | None]:
    return {p.name: engagement.latest_run_id(p) for p in ordered()}
