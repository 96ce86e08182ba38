"""Run phase notebooks with papermill and leave audit-ready evidence.

For each phase: check upstream phases succeeded (and did not block), validate parameters against the
notebook's declared types, create a fresh run folder, snapshot engagement.yaml, execute with papermill
(explicit kernel, cwd and per-cell timeout), decide the status from the exception (a timeout or a dead
kernel leaves a notebook that looks complete), scan outputs for secrets, render report.html, write
status.json and manifest.json, append to the audit log, and only then move ``latest``.
"""
from __future__ import annotations

import datetime as _dt
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ftkit import audit_log
from ftkit.config import load_config
from ftkit.engagement import Engagement
from ftkit.errors import FtkitError, PhaseFailed
from ftkit.fsutil import atomic_write_json, read_json, sha256_file
from ftkit.lock import engagement_lock
from ftkit.manifest import MANIFEST_FILE, build_manifest, ftkit_git_commit, write_environment_file
from ftkit.parameters import validate
from ftkit.phase_run import RESULTS_FILE, SNAPSHOT_FILE
from ftkit.phases import Phase, get_phase, ordered
from ftkit.resources import notebooks_dir
from ftkit.secrets_scan import scan_and_redact

STATUSES = ("running", "succeeded", "failed", "timed_out", "kernel_died", "interrupted", "abandoned")
DEFAULT_CELL_TIMEOUT_S = 4 * 3600  # one cell may train for hours on a real engagement
KERNEL_NAME = "python3"  # jupyter_client maps this to the interpreter running ftkit (sys.executable)


@dataclass
class RunOutcome:
    phase: str
    run_id: str
    run_dir: Path
    status: str
    error: str = ""
    duration_s: float = 0.0
    headline: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # seconds: execute, report, manifest
    notebook_path: Path | None = None  # the executed notebook (kept as evidence, also when the run failed)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def new_run_id() -> str:
    """Sortable, unique: '20261122T153512Z-3fa2c1' (UTC time + 24 random bits)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def notebook_for(phase: Phase, engagement: Engagement | None = None) -> Path:
    """The notebook to run: the engagement's own fork (``<engagement>/notebooks/NN_phase.ipynb``) if the
    consultant made one for this client, else the one shipped with ftkit. The manifest records which."""
    if engagement is not None and (engagement.path / "notebooks" / phase.notebook).is_file():
        return engagement.path / "notebooks" / phase.notebook
    path = notebooks_dir() / phase.notebook
    if not path.is_file():
        raise FtkitError(f"The notebook for phase '{phase.name}' ({path}) is missing from this ftkit installation.")
    return path


def _ancestors(phase: Phase) -> list[str]:
    """Every phase ``phase`` depends on, directly or through others (data_audit for evaluation)."""
    from ftkit.phases import get_phase

    seen: list[str] = []
    todo = list(phase.upstream)
    while todo:
        name = todo.pop(0)
        if name not in seen:
            seen.append(name)
            todo += list(get_phase(name).upstream)
    return seen


def check_upstream(engagement: Engagement, phase: Phase, planned: set[str] = frozenset()) -> None:
    """Refuse a phase whose upstream phases have no succeeded run, or whose latest run of any phase it depends on
    (directly or not) blocks it (a data audit with verdict blocked), saying why and what to re-run. ``planned``:
    phases that will run before this one in the same invocation (not checked yet: they have not run)."""
    ancestors = [name for name in _ancestors(phase) if name not in planned]
    for name in reversed(ancestors):  # the earliest blocking phase first: its reasons are the root cause
        run_dir = engagement.latest_run_dir(name)
        results = read_json(run_dir / RESULTS_FILE) if run_dir and (run_dir / RESULTS_FILE).is_file() else {}
        if results.get("blocks_downstream"):
            raise PhaseFailed(f"Phase '{phase.name}' cannot start: the latest '{name}' run ({run_dir.name}) "
                              f"blocks it: {results['blocks_downstream']}. Fix that, then re-run: "
                              f"ftkit run {engagement.slug} --phase {name}")
    for name in phase.upstream:
        if name not in planned and engagement.latest_run_dir(name) is None:
            raise PhaseFailed(f"Phase '{phase.name}' needs a succeeded '{name}' run first. Run: "
                              f"ftkit run {engagement.slug} --phase {name}")


def check_prompt_variants(config, engagement) -> None:
    """Read ``baseline.prompt_search.variants_file`` before any phase starts: a bad file is refused now with its
    file, line and field (DataError), not after the earlier phases ran."""
    search = config.baseline.prompt_search
    if search.enabled and search.variants_file:
        from ftkit.baseline.prompt_search import read_variants

        read_variants(engagement.path / search.variants_file)


def check_acceptance_metrics(config, source: Path) -> None:
    """Refuse acceptance criteria naming a metric the evaluation will not produce for this task type, before
    training spends an hour: a ConfigError lists each bad ``evaluation.acceptance[i].metric`` and the valid
    names (the evaluation phase checks the same names again against its measured evidence)."""
    from ftkit.errors import ConfigError
    from ftkit.evaluation.verdict import check_criteria
    from ftkit.metrics import metric_names

    try:
        check_criteria(config.evaluation.acceptance, {"metrics": dict.fromkeys(metric_names(config.task))})
    except ConfigError as err:
        raise ConfigError(err.problems, source=str(source)) from None


def run_phases(engagement: Engagement, names: list[str] | None = None, overrides: dict | None = None,
               cell_timeout_s: int | None = None, progress: bool = True,
               on_event: Callable[[str], None] | None = None) -> list[RunOutcome]:
    """Run the named phases (all by default) in order under the engagement lock; stop at the first failure."""
    phases = ordered(names)
    config = load_config(engagement.config_path)  # a malformed engagement.yaml is reported before any run starts
    planned = {p.name for p in phases}
    from ftkit.hardware_checks import refuse_unrunnable

    refuse_unrunnable(config, [p.name for p in phases], engagement)  # vllm without a GPU, fsdp on CPU, ...
    for phase in phases:  # pre-flight: refuse now rather than after an hour of earlier phases
        check_upstream(engagement, phase, planned=planned)
    if "evaluation" in planned:
        check_acceptance_metrics(config, engagement.config_path)
    if "baseline" in planned:
        check_prompt_variants(config, engagement)
    overrides = dict(overrides or {})
    per_phase = _split_overrides(engagement, phases, overrides)
    outcomes = []
    with engagement_lock(engagement.lock_path, purpose="ftkit run " + " ".join(p.name for p in phases)):
        recover_abandoned_runs(engagement)
        for phase in phases:
            # Phases already run in this invocation are checked like any other: a blocked audit that "succeeded"
            # as a notebook still refuses what follows, with its own reasons.
            check_upstream(engagement, phase, planned=planned - {o.phase for o in outcomes} - {phase.name})
            if on_event:
                on_event(f"{phase.folder}: running")
            outcome = run_phase(engagement, phase, per_phase[phase.name], cell_timeout_s, progress)
            outcomes.append(outcome)
            if on_event:
                on_event(f"{phase.folder}: {outcome.status} in {outcome.duration_s:.1f} s -> {outcome.run_dir}")
            if not outcome.succeeded:
                break
    return outcomes


def recover_abandoned_runs(engagement: Engagement) -> list[str]:
    """Mark runs that a killed process left unrecorded as 'abandoned' and record them in the audit log.

    A run is unrecorded when the audit log has no entry for it: killed while running, or killed in the last
    moment between writing its manifest and appending its ``run_finished`` entry (its status.json may even say
    succeeded). Called under the engagement lock, so no live process owns them. Their folders stay as evidence;
    ``latest`` never pointed at them (it moves only after the audit entry).
    """
    recorded = {(e.get("phase"), e.get("run_id")) for e in audit_log.read_entries(engagement.audit_path)
                if e.get("event") in ("run_finished", "run_abandoned")}
    abandoned = []
    for phase in ordered():
        for run_id in engagement.run_ids(phase):
            if (phase.name, run_id) in recorded:
                continue
            run_dir = engagement.runs_dir(phase) / run_id
            status = _read_json_or_empty(run_dir / "status.json")
            if status.get("status") != "interrupted":  # Ctrl-C already wrote its own status
                stage = ("after writing its manifest, before it was recorded in the audit log"
                         if (run_dir / MANIFEST_FILE).exists() else "before it finished")
                _write_status(run_dir, "abandoned", status.get("started_utc", ""), _now(),
                              f"the process running this phase stopped {stage} (killed or crashed)")
            audit_log.append_event(engagement.audit_path, "run_abandoned", phase=phase.name, run_id=run_id,
                               previous_status=status.get("status") or "none")
            abandoned.append(f"{phase.name}/{run_id}")
    return abandoned


def _read_json_or_empty(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def _split_overrides(engagement: Engagement, phases: list[Phase], overrides: dict) -> dict[str, dict]:
    """Give each phase the -p values its notebook declares; a key no selected phase declares is an error."""
    from ftkit.parameters import declared_parameters

    per_phase, used = {}, set()
    declared_by = {p.name: declared_parameters(notebook_for(p, engagement)) for p in phases}
    for phase in phases:
        mine = {k: v for k, v in overrides.items() if k in declared_by[phase.name]}
        used |= set(mine)
        per_phase[phase.name] = mine
    unknown = [k for k in overrides if k not in used]
    if unknown:
        if len(phases) == 1:  # let validate() produce the precise message listing the valid names
            per_phase[phases[0].name] = overrides
        else:
            from ftkit.errors import UsageError
            raise UsageError(f"No selected phase has parameter(s) {', '.join(map(repr, unknown))}. "
                             f"Use --phase to pick one, and see each notebook's parameters cell.")
    return per_phase


def run_phase(engagement: Engagement, phase: Phase | str, overrides: dict | None = None,
              cell_timeout_s: int | None = None, progress: bool = True, *,
              prepare: Callable[[Path], None] | None = None,
              before_record: Callable[[Path, str], None] | None = None, move_latest: bool = True) -> RunOutcome:
    """Execute one phase notebook into a new run folder. The caller holds the engagement lock.

    Hooks for ``ftkit reproduce`` (ftkit/reperformance.py): ``prepare(run_dir)`` runs after the folder and its
    snapshot exist and before the notebook starts; ``before_record(run_dir, status)`` runs before the
    environment file and manifest are written, so what it writes is hashed like every output; with
    ``move_latest=False`` a succeeded run leaves ``latest`` where it was (a re-performance is a check, not new work).
    """
    phase = get_phase(phase) if isinstance(phase, str) else phase
    notebook = notebook_for(phase, engagement)
    params = validate(notebook, overrides or {}, phase.name)
    run_id = new_run_id()
    started = _now()
    run_dir = _start_run_dir(engagement, phase, run_id, started)
    output_nb = run_dir / phase.notebook
    t0 = time.perf_counter()
    try:
        if prepare:
            prepare(run_dir)
        outcome = _run_and_record(engagement, phase, notebook, params, run_id, run_dir, output_nb, started, t0,
                                  cell_timeout_s, progress, before_record)
    except FtkitError as err:  # e.g. the disk filled up while the evidence was being written
        raise FtkitError(f"{err} The run folder {run_dir} keeps what was written; the next `ftkit run` "
                         f"marks it abandoned, and `latest` still points at the previous good run.") from err
    if outcome.succeeded and move_latest:
        engagement.set_latest(phase, run_id)  # only now, after the audit entry: a failed run never moves `latest`
    return outcome


def _start_run_dir(engagement: Engagement, phase: Phase, run_id: str, started: str) -> Path:
    """Create the run folder with its settings snapshot and a 'running' status.

    A full disk or a read-only folder fails here, before anything runs: the half-made folder holds no evidence,
    so it is removed (no truncated snapshot is left behind) and the error says what to do.
    """
    run_dir = engagement.runs_dir(phase) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)  # a run folder is never reused
    except OSError as err:
        raise FtkitError(f"Cannot create the run folder {run_dir}: {err.strerror or err}. Free disk space or make "
                         f"{engagement.path} writable, then run again; nothing was recorded.") from None
    try:
        shutil.copyfile(engagement.config_path, run_dir / SNAPSHOT_FILE)
        _write_status(run_dir, "running", started, "", "")
    except (OSError, FtkitError) as err:
        shutil.rmtree(run_dir, ignore_errors=True)
        reason = err.strerror if isinstance(err, OSError) else str(err)
        raise FtkitError(f"Cannot start the {phase.name} run in {run_dir}: {reason}. Free disk space or make "
                         f"{engagement.path} writable, then run again; nothing was recorded.") from None
    return run_dir


def _run_and_record(engagement, phase, notebook, params, run_id, run_dir, output_nb, started, t0,
                    cell_timeout_s, progress, before_record=None) -> RunOutcome:
    """Execute, decide the status, scan for secrets, then write the report, status, manifest and audit entry:
    everything but moving `latest`, which the caller does last."""
    status, error = _execute(notebook, output_nb, run_dir, engagement, params, cell_timeout_s, progress)
    t_exec = time.perf_counter() - t0
    if status == "succeeded" and not (run_dir / RESULTS_FILE).is_file():
        status, error = "failed", "the notebook finished without writing results.json (did it call run.finish?)"
    leaks = scan_and_redact(run_dir)
    if leaks:
        status, error = "failed", ("secret values found and redacted: " + "; ".join(leaks) +
                                   ". Do not print secrets or pass them as parameters.")
    finished = _now()
    results = _read_results(run_dir)
    t1 = time.perf_counter()
    _render_report(output_nb, run_dir, engagement, phase, run_id, status, started, finished, error, results)
    t_report = time.perf_counter() - t1
    _write_status(run_dir, status, started, finished, error)
    t2 = time.perf_counter()
    write_environment_file(run_dir, run_id, phase.name)  # before the manifest: hashed like every output
    _record_cost(run_dir, engagement, phase.name, status, time.perf_counter() - t0)  # cost.json, hashed too
    if before_record:
        before_record(run_dir, status)
    manifest = build_manifest(
        run_id=run_id, phase=phase.name, client=engagement.slug, status=status, started_utc=started,
        finished_utc=finished, duration_s=time.perf_counter() - t0, parameters=params,
        inputs=results.get("inputs", {}), run_dir=run_dir, notebook_source=notebook, kernel_name=KERNEL_NAME,
        provenance=results.get("provenance", {}), error=error)
    atomic_write_json(run_dir / MANIFEST_FILE, manifest)
    audit_log.append_event(engagement.audit_path, "run_finished", phase=phase.name, run_id=run_id, status=status,
                       manifest_sha256=sha256_file(run_dir / MANIFEST_FILE), error=error[:500])
    t_manifest = time.perf_counter() - t2
    return RunOutcome(phase.name, run_id, run_dir, status, error, time.perf_counter() - t0,
                      results.get("headline", {}), {"execute_s": t_exec, "report_s": t_report, "manifest_s": t_manifest},
                      notebook_path=output_nb)


def _record_cost(run_dir: Path, engagement: Engagement, phase: str, status: str, seconds: float) -> None:
    """The run's entry in the cost ledger (ftkit.cost_ledger); a broken price table is recorded, never fatal."""
    from ftkit import cost_ledger

    try:
        cost_ledger.record_run_cost(run_dir, engagement.path, phase, status, seconds,
                                    cost_ledger.devices_held(run_dir, phase))
    except FtkitError as err:
        atomic_write_json(run_dir / cost_ledger.COST_FILE, {"phase": phase, "run_id": run_dir.name, "status": status,
                                                            "wall_seconds": round(seconds, 2), "cost_usd": None,
                                                            "error": str(err)})


def _execute(notebook: Path, output_nb: Path, run_dir: Path, engagement: Engagement, params: dict,
             cell_timeout_s: int | None, progress: bool) -> tuple[str, str]:
    import os

    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    # A fixed hash seed for the kernel (and the processes it starts): set iteration order, and so every list
    # built from a set (peft's target_modules, for one), is the same in every run; the manifest records it.
    os.environ.setdefault("PYTHONHASHSEED", "0")

    try:
        papermill.execute_notebook(
            str(notebook), str(output_nb),
            parameters={**params, "engagement_dir": str(engagement.path), "run_dir": str(run_dir)},
            kernel_name=KERNEL_NAME, cwd=str(run_dir), execution_timeout=cell_timeout_s or DEFAULT_CELL_TIMEOUT_S,
            progress_bar=progress, log_output=False, request_save_on_cell_execute=True,
            # The kernel is local (loopback); its "TCP without encryption" warning only alarms consultants.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as err:
        return "failed", f"cell {err.exec_count}: {err.ename}: {_first_line(err.evalue)}"
    except CellTimeoutError as err:
        return "timed_out", f"a cell ran longer than {cell_timeout_s or DEFAULT_CELL_TIMEOUT_S} s: {_first_line(str(err))}"
    except DeadKernelError as err:
        return "kernel_died", f"the kernel died (out of memory or killed): {_first_line(str(err))}"
    except KeyboardInterrupt:
        _write_status(run_dir, "interrupted", "", _now(), "interrupted by the user (Ctrl-C)")
        raise
    except Exception as err:  # papermill/nbclient internals (e.g. kernel failed to start): keep evidence
        return "failed", f"{type(err).__name__}: {_first_line(str(err))}"
    return "succeeded", ""


def _render_report(output_nb, run_dir, engagement, phase, run_id, status, started, finished, error, results):
    if not output_nb.is_file():
        return
    import ftkit
    from ftkit.config import load_config

    try:
        client_name = load_config(run_dir / SNAPSHOT_FILE).client.name or engagement.slug
    except FtkitError:
        client_name = engagement.slug
    header = {"client": engagement.slug, "client_name": client_name, "phase": phase.name,
              "phase_title": phase.title, "run_id": run_id, "status": status, "started_utc": started,
              "finished_utc": finished, "ftkit_version": ftkit.__version__, "git_commit": ftkit_git_commit(),
              "error": error, "inputs": results.get("inputs", {})}
    from ftkit.reports import render_run_report

    try:
        render_run_report(output_nb, run_dir / "report.html", header)
    except FtkitError:
        raise
    except Exception as err:  # a broken output notebook must not hide the run's status
        print(f"warning: could not render report.html for {run_id}: {err}", file=sys.stderr)


def _read_results(run_dir: Path) -> dict:
    try:
        return read_json(run_dir / RESULTS_FILE)
    except (OSError, ValueError):
        return {}


def _write_status(run_dir: Path, status: str, started: str, finished: str, error: str) -> None:
    atomic_write_json(run_dir / "status.json", {"status": status, "started_utc": started,
                                                "finished_utc": finished, "error": error})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _first_line(text: str, limit: int = 300) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text or "")).strip()  # drop ANSI colours from tracebacks
    line = text.splitlines()[0] if text else ""
    return line[:limit]
