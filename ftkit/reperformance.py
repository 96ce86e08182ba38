"""`ftkit reproduce CLIENT RUN_ID`: re-perform a recorded run and say whether it gives the same results.

1. The recorded run must be intact (its audit entry, manifest and outputs match their hashes) and succeeded.
2. Its inputs are re-hashed; one that differs or is missing is named and the re-performance refused.
3. The current environment is compared with the recorded one (ftkit.environment.compare, plus ftkit's version and
   commit and the notebook's hash): every difference is listed; ``--strict`` refuses on any. The variables that
   fix thread counts and hashing (``REPLAYED_VARIABLES``) are set to their recorded values for the re-execution.
4. The phase runs again into a new run folder, from the run's own ``engagement.snapshot.yaml``, its recorded
   parameters and the very upstream runs it read (pinned in ``reperformance_of.json``, so today's ``latest`` does
   not matter). ``latest`` is not moved: a re-performance is a check, not new work.
5. ``reperformance.json`` (in the new folder, hashed by its manifest like every output) and a section appended to
   its ``report.html`` compare, file by file and number by number (see ``compare_outputs`` and the constants).

What may legitimately differ, and why:
- wall-clock measurements (latency, throughput, durations, timestamps) and host memory: measured, not computed;
- the executed notebook, report.html and status.json: they carry run ids, paths and times;
- ``training_args.bin``: the pickled TrainingArguments hold the run folder's path;
- the training loss curve: within ``LOSS_RTOL`` (threaded float reductions on CPU and atomics/cuBLAS on GPUs may
  reorder sums; with the recorded thread count on the same machine it was bit-identical in our measurement).
Everything else must be bit-for-bit identical: suitability, the data audit, and baseline/evaluation predictions
with greedy decoding on the same device type.
"""
from __future__ import annotations

import contextlib
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Callable

from ftkit import audit_log, environment
from ftkit.engagement import Engagement
from ftkit.errors import FtkitError, UsageError
from ftkit.fsutil import atomic_write_json, atomic_write_text, read_json, sha256_file
from ftkit.manifest import MANIFEST_FILE, ftkit_git_commit
from ftkit.phase_run import REPERFORMANCE_OF_FILE, RESULTS_FILE, SNAPSHOT_FILE
from ftkit.phases import Phase, get_phase, ordered

REPORT_FILE = "reperformance.json"
# Relative tolerance on each logged training/eval loss. Measured on a 2-core Xeon (tiny-random LoRA, 6 steps, 9
# logged losses): 0 (bit-identical) when re-performed with the recorded thread count; 1.9e-7 between 1 and 2
# threads (threaded float32 reductions sum in another order). 1e-4 leaves room for that drift to grow with steps.
LOSS_RTOL = 1e-4
# Variables that fix how results are computed; a re-performance sets them to the recorded values (or unsets them).
REPLAYED_VARIABLES = ("PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                      "TOKENIZERS_PARALLELISM", "CUBLAS_WORKSPACE_CONFIG")
# Keys whose values are measurements of time, speed or memory (compared as "measured", never as results).
MEASURED_KEY = re.compile(r"(^|_)(time|times|seconds|secs|runtime|latency|duration|minutes|elapsed|utc|timestamp)"
                          r"(_|$)|_s$|_ms$|per_s(econd)?$|per_second|throughput|tokens_per|samples_per|steps_per|"
                          r"memory_gb|memory_mb|peak_memory|available_memory|_gb$", re.IGNORECASE)
MEASURE_WORDS = re.compile(r"\b(GB|MB|KB|tokens/s|min|s|ms|seconds|minutes|latency|memory|available|throughput)\b")
# A number with a unit of time, memory or speed inside a text ("in 0.1 min", "0.61 GB", "2,781 tokens/s").
MEASURED_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?\s*(?:min|minutes|s|sec|seconds|ms|h|hours|GB|MB|KB|GiB|MiB|"
                             r"tokens/s|tok/s|it/s|samples/s)\b")
EXPECTED_TO_DIFFER = {
    "report.html": "rendered with the run id, times and paths of its own run",
    "status.json": "start and finish times of its own run",
    "run.log": "the kernel's stderr and progress lines (reports.RUN_LOG): timings and library warnings",
    "training_args.bin": "pickled TrainingArguments, which hold the run folder's path",
    "cost.json": "the run's own wall time, device-hours and their price (ftkit.cost_ledger)",
    "search.db": "Optuna's study store: trial start and end times of its own run",
}
NOTEBOOK_REASON = "the executed notebook carries its own run id, paths and execution times"


# -- checks before running --------------------------------------------------------------------------------------
def find_run(engagement: Engagement, run_id: str) -> tuple[Phase, Path]:
    for phase in ordered():
        run_dir = engagement.runs_dir(phase) / run_id
        if run_dir.is_dir():
            return phase, run_dir
    raise UsageError(f"Engagement '{engagement.slug}' has no run {run_id!r}; `ftkit status {engagement.slug}` "
                     f"lists the latest run of each phase, phases/*/runs/ holds all of them.")


def check_recorded_run(engagement: Engagement, phase: Phase, run_dir: Path) -> dict:
    """The recorded run's manifest, after checking it and its outputs against the audit log."""
    entry = next((e for e in audit_log.read_entries(engagement.audit_path) if e.get("event") == "run_finished"
                  and e.get("run_id") == run_dir.name and e.get("phase") == phase.name), None)
    if entry is None:
        raise FtkitError(f"Run {run_dir.name} is not recorded in audit.jsonl (abandoned or added by hand); only "
                         f"recorded runs can be re-performed.")
    if entry.get("status") != "succeeded":
        raise FtkitError(f"Run {run_dir.name} {entry.get('status')}; only succeeded runs can be re-performed.")
    manifest_path = run_dir / MANIFEST_FILE
    if not manifest_path.is_file() or sha256_file(manifest_path) != entry.get("manifest_sha256"):
        raise FtkitError(f"{engagement.relative(manifest_path)} is missing or changed since it was recorded; run "
                         f"`ftkit verify {engagement.slug}`. A changed run cannot be re-performed.")
    manifest = read_json(manifest_path)
    for rel, digest in manifest.get("outputs", {}).items():
        path = run_dir / rel
        if not path.is_file() or sha256_file(path) != digest:
            raise FtkitError(f"{engagement.relative(run_dir)}/{rel}: output of the recorded run is missing or "
                             f"changed since it was recorded; run `ftkit verify {engagement.slug}`.")
    if "environment" not in manifest:
        raise FtkitError(f"Run {run_dir.name} was recorded by an ftkit without environment records (manifest "
                         f"version {manifest.get('manifest_version')}); it cannot be re-performed.")
    return manifest


def input_problems(engagement: Engagement, manifest: dict) -> list[str]:
    """Each recorded input that is missing or differs, named ([] = all match)."""
    problems = []
    for rel, digest in sorted(manifest.get("inputs", {}).items()):
        if rel == "engagement.yaml":
            continue  # the live file; the run's own snapshot is used instead
        path = Path(rel) if Path(rel).is_absolute() else engagement.path / rel
        if not path.is_file():
            problems.append(f"{rel}: recorded input is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{rel}: recorded input has changed (sha256 {sha256_file(path)[:12]}..., recorded "
                            f"{digest[:12]}...)")
    return problems


def upstream_runs(manifest: dict) -> dict[str, str]:
    """{phase: run_id} of the upstream runs whose files the run read (from its recorded inputs)."""
    found = {}
    for rel in manifest.get("inputs", {}):
        parts = Path(rel).parts
        if len(parts) > 3 and parts[0] == "phases" and parts[2] == "runs":
            found[get_phase(parts[1]).name] = parts[3]
    return found


def environment_differences(manifest: dict, notebook: Path) -> list[str]:
    diffs = environment.compare(manifest["environment"], environment.collect())
    recorded = manifest.get("ftkit", {})
    if recorded.get("version") != _ftkit_version() or recorded.get("git_commit") != ftkit_git_commit():
        diffs.append(f"ftkit: {recorded.get('version')} {recorded.get('git_commit')} then, {_ftkit_version()} "
                     f"{ftkit_git_commit()} now")
    if sha256_file(notebook) != manifest.get("notebook", {}).get("sha256"):
        diffs.append(f"notebook {notebook.name}: changed since the run (sha256 differs)")
    return diffs


def _ftkit_version() -> str:
    import ftkit
    return ftkit.__version__


@contextlib.contextmanager
def replayed_variables(recorded: dict):
    """Set REPLAYED_VARIABLES as recorded (unset those that were not set) for the ``with`` body."""
    saved = {name: os.environ.get(name) for name in REPLAYED_VARIABLES}
    try:
        for name in REPLAYED_VARIABLES:
            if name in recorded:
                os.environ[name] = recorded[name]
            else:
                os.environ.pop(name, None)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- comparison ------------------------------------------------------------------------------------------------
def _strip_measured(obj, ids: tuple[str, ...]):
    """``obj`` without measured values (by key, or a metric dict whose "name" is a measurement), run ids masked."""
    if isinstance(obj, dict):
        if isinstance(obj.get("name"), str) and MEASURED_KEY.search(obj["name"]):
            return "<measured>"
        if {"severity", "code", "message"} <= set(obj) and MEASURE_WORDS.search(str(obj["message"])):
            obj = {**obj, "message": _numbers_masked(str(obj["message"]))}  # a finding quoting measured numbers
        return {_mask(k, ids): ("<measured>" if MEASURED_KEY.search(str(k)) else _strip_measured(v, ids))
                for k, v in obj.items() if k not in ("run_id",)}
    if isinstance(obj, list):
        return [_strip_measured(v, ids) for v in obj]
    if isinstance(obj, str):
        return MEASURED_NUMBER.sub("# measured", _mask(obj, ids))
    return obj


def _mask(text: str, ids: tuple[str, ...]) -> str:
    for value in ids:  # longest first: an engagement path contains no run id, a run folder path contains both
        text = text.replace(value, "<masked>")
    return text


def _load_json_like(path: Path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def _first_difference(a, b, where: str = "$") -> str:
    if type(a) is not type(b):
        return where
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return where


def compare_file(rel: str, old: Path, new: Path, ids: tuple[str, ...]) -> dict:
    """One output file: identical | equal_except_measured | expected_to_differ | different | missing."""
    row = {"file": rel}
    if not new.is_file():
        return {**row, "verdict": "missing", "reason": "the re-performance did not write it"}
    if sha256_file(old) == sha256_file(new):
        return {**row, "verdict": "identical"}
    name = Path(rel).name
    if name in EXPECTED_TO_DIFFER or rel.endswith(".ipynb") and "/" not in rel:
        return {**row, "verdict": "expected_to_differ", "reason": EXPECTED_TO_DIFFER.get(name, NOTEBOOK_REASON)}
    if name == environment.ENVIRONMENT_FILE:
        same = environment.parse_requirements(old.read_text()) == environment.parse_requirements(new.read_text())
        if same:
            return {**row, "verdict": "equal_except_measured", "reason": "same pins; the header names its own run"}
        return {**row, "verdict": "expected_to_differ",
                "reason": "it records the environment, which differs (listed under environment differences)"}
    if new.suffix in (".json", ".jsonl"):
        try:
            a, b = _strip_measured(_load_json_like(old), ids), _strip_measured(_load_json_like(new), ids)
        except ValueError:
            return {**row, "verdict": "different", "reason": "not valid JSON in one of the runs"}
        if a == b:
            return {**row, "verdict": "equal_except_measured",
                    "reason": "equal once wall-clock/memory measurements and run ids are set aside"}
        return {**row, "verdict": "different", "reason": f"first difference at {_first_difference(a, b)}"}
    return {**row, "verdict": "different", "reason": "contents differ"}


def compare_outputs(old_dir: Path, old_outputs: dict, new_dir: Path, ids: tuple[str, ...]) -> list[dict]:
    skip = {REPORT_FILE, REPERFORMANCE_OF_FILE}
    rows = [compare_file(rel, old_dir / rel, new_dir / _mask_rel(rel, ids, new_dir.name), ids)
            for rel in sorted(old_outputs) if rel not in skip]
    new_files = {p.relative_to(new_dir).as_posix() for p in new_dir.rglob("*") if p.is_file()}
    for rel in sorted(new_files - {_mask_rel(r, ids, new_dir.name) for r in old_outputs} - skip - {MANIFEST_FILE}):
        if not rel.endswith(".tmp"):
            rows.append({"file": rel, "verdict": "new", "reason": "written by the re-performance only"})
    return rows


def _mask_rel(rel: str, ids: tuple[str, ...], new_id: str) -> str:
    for run_id in ids:
        rel = rel.replace(run_id, new_id)
    return rel


def compare_headline(old: dict, new: dict, phase: str) -> list[dict]:
    rows = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        row = {"key": key, "then": a, "now": b}
        if MEASURED_KEY.search(key):
            rows.append({**row, "verdict": "measured", "reason": "wall-clock/memory measurement, not a result"})
        elif a == b:
            rows.append({**row, "verdict": "equal"})
        elif phase == "training" and _close(a, b, LOSS_RTOL) and "loss" in key:
            rows.append({**row, "verdict": "within_tolerance", "tolerance": f"relative {LOSS_RTOL:g}",
                         "reason": "float reductions in training may run in a different order"})
        else:
            rows.append({**row, "verdict": "different"})
    return rows


def _close(a, b, rtol: float) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def compare_findings(old: list[dict], new: list[dict]) -> list[dict]:
    rows = []
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else {}
        b = new[i] if i < len(new) else {}
        row = {"code": a.get("code") or b.get("code"), "severity": a.get("severity") or b.get("severity")}
        if a == b:
            rows.append({**row, "verdict": "equal"})
        elif (a.get("code"), a.get("severity")) == (b.get("code"), b.get("severity")) and \
                _numbers_masked(a.get("message", "")) == _numbers_masked(b.get("message", "")) and \
                MEASURE_WORDS.search(a.get("message", "")):
            rows.append({**row, "verdict": "measured", "then": a.get("message"), "now": b.get("message"),
                         "reason": "same finding; only measured numbers (time, speed, memory) differ"})
        else:
            rows.append({**row, "verdict": "different", "then": a.get("message"), "now": b.get("message")})
    return rows


def _numbers_masked(text: str) -> str:
    return re.sub(r"\d[\d,]*(\.\d+)?", "#", text)


def loss_curve(old_dir: Path, new_dir: Path) -> dict | None:
    """Training: each logged loss (train and eval) of the two runs, compared within LOSS_RTOL."""
    old, new = old_dir / "metrics.jsonl", new_dir / "metrics.jsonl"
    if not old.is_file():
        return None
    points = lambda path: [(r.get("step"), k, r[k]) for r in _load_json_like(path) if isinstance(r, dict)
                           for k in ("loss", "eval_loss") if isinstance(r.get(k), (int, float))]
    a, b = points(old), points(new) if new.is_file() else []
    if [(s, k) for s, k, _ in a] != [(s, k) for s, k, _ in b]:
        return {"verdict": "different", "points": len(a), "reason": "the logged steps differ"}
    worst = max((abs(x - y) / max(abs(x), 1e-12) for (_, _, x), (_, _, y) in zip(a, b)), default=0.0)
    verdict = "identical" if worst == 0 else "within_tolerance" if worst <= LOSS_RTOL else "different"
    return {"verdict": verdict, "points": len(a), "max_relative_difference": worst, "tolerance": LOSS_RTOL,
            "reason": "threaded float reductions may sum in a different order; with the recorded thread count "
                      "on the same machine the curve is expected bit-identical"}


def overall(report: dict) -> str:
    verdicts = [r["verdict"] for r in report["outputs"]] + [r["verdict"] for r in report["headline"]] + \
               [r["verdict"] for r in report["findings"]] + \
               ([report["loss_curve"]["verdict"]] if report.get("loss_curve") else [])
    if report["status"] != "succeeded" or any(v in ("different", "missing") for v in verdicts):
        return "not_reproduced"
    return "reproduced_within_tolerance" if "within_tolerance" in verdicts else "reproduced"


# -- the command -----------------------------------------------------------------------------------------------
def reproduce(engagement: Engagement, run_id: str, strict: bool = False,
              on_event: Callable[[str], None] | None = None) -> dict:
    """Re-perform ``run_id``; returns the reperformance.json content (with "run_dir" of the new run)."""
    from ftkit.lock import engagement_lock
    from ftkit.runner import notebook_for, recover_abandoned_runs, run_phase

    say = on_event or (lambda message: None)
    phase, old_dir = find_run(engagement, run_id)
    manifest = check_recorded_run(engagement, phase, old_dir)
    problems = input_problems(engagement, manifest)
    if problems:
        raise FtkitError(f"Cannot re-perform run {run_id}: its inputs are not what it read:\n" +
                         "\n".join(f"  - {p}" for p in problems) + "\nRestore them (from the client's delivery or "
                         "a backup) and run again; nothing was run.")
    notebook = notebook_for(phase, engagement)
    differences = environment_differences(manifest, notebook)
    replayable = [d for d in differences if d.startswith("environment variable ") and
                  d.split()[2].rstrip(":") in REPLAYED_VARIABLES]
    if strict and len(differences) > len(replayable):
        raise FtkitError(f"--strict: the environment differs from run {run_id}'s:\n" +
                         "\n".join(f"  - {d}" for d in differences if d not in replayable) +
                         f"\nRecreate it with `ftkit env --from-run {old_dir}` (pip install --no-deps -r) or drop "
                         f"--strict to re-perform anyway and see the differences in the report.")
    for difference in differences:
        say(f"environment: {difference}" + (" (set to the recorded value for the re-performance)"
                                            if difference in replayable else ""))
    pinned = upstream_runs(manifest)
    parameters = {k: v for k, v in manifest.get("parameters", {}).items() if k not in ("engagement_dir", "run_dir")}
    report: dict = {}

    def prepare(new_dir: Path) -> None:
        (new_dir / SNAPSHOT_FILE).write_bytes((old_dir / SNAPSHOT_FILE).read_bytes())
        atomic_write_json(new_dir / REPERFORMANCE_OF_FILE, {"of": run_id, "phase": phase.name, "upstream": pinned})

    def before_record(new_dir: Path, status: str) -> None:
        # Masked in texts: the two run ids and the engagement's folder then and now (a copy moved elsewhere).
        ids = tuple(dict.fromkeys(x for x in (_engagement_dir_then(old_dir, phase), str(engagement.path), run_id,
                                              new_dir.name) if x))
        old_results, new_results = _results(old_dir), _results(new_dir)
        report.update({
            "reperformance_of": run_id, "phase": phase.name, "run_id": new_dir.name, "status": status,
            "inputs": {"checked": len(manifest.get("inputs", {})), "problems": []},
            "upstream_runs": pinned, "parameters": parameters,
            "environment": {"differences": differences,
                            "replayed_variables": {k: v for k, v in manifest["environment"]["variables"].items()
                                                   if k in REPLAYED_VARIABLES}},
            "outputs": compare_outputs(old_dir, manifest.get("outputs", {}), new_dir, ids),
            "headline": compare_headline(old_results.get("headline", {}), new_results.get("headline", {}),
                                         phase.name),
            "findings": compare_findings(old_results.get("findings", []), new_results.get("findings", [])),
            "loss_curve": loss_curve(old_dir, new_dir) if phase.name == "training" else None,
            "tolerances": {"training_loss_rtol": LOSS_RTOL},
        })
        report["verdict"] = overall(report)
        atomic_write_json(new_dir / REPORT_FILE, report)
        _append_report_section(new_dir / "report.html", report)

    with engagement_lock(engagement.lock_path, purpose=f"ftkit reproduce {run_id}"):
        recover_abandoned_runs(engagement)
        with replayed_variables(manifest["environment"].get("variables", {})):
            say(f"{phase.folder}: re-performing run {run_id}")
            outcome = run_phase(engagement, phase, parameters, progress=False, prepare=prepare,
                                before_record=before_record, move_latest=False)
        audit_log.append_event(engagement.audit_path, "run_reperformed", phase=phase.name, run_id=outcome.run_id,
                           reperformance_of=run_id, verdict=report.get("verdict", "not_reproduced"))
    report["run_dir"] = str(outcome.run_dir)
    if not report.get("verdict"):
        report.update({"status": outcome.status, "verdict": "not_reproduced", "error": outcome.error})
    return report


def _engagement_dir_then(run_dir: Path, phase: Phase) -> str:
    """The engagement folder the original run was executed in (papermill recorded it in the notebook)."""
    try:
        nb = json.loads((run_dir / phase.notebook).read_text(encoding="utf-8"))
        return str(nb["metadata"]["papermill"]["parameters"]["engagement_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _results(run_dir: Path) -> dict:
    try:
        return read_json(run_dir / RESULTS_FILE)
    except (OSError, ValueError):
        return {}


def _append_report_section(report_html: Path, report: dict) -> None:
    """The re-performance section, appended to the new run's report.html (before it is hashed)."""
    counts: dict[str, int] = {}
    for row in report["outputs"]:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    rows = "".join(f"<tr><td>{html.escape(r['file'])}</td><td>{html.escape(r['verdict'])}</td>"
                   f"<td>{html.escape(r.get('reason', ''))}</td></tr>" for r in report["outputs"])
    numbers = "".join(f"<tr><td>{html.escape(str(r['key']))}</td><td>{html.escape(str(r['then']))}</td>"
                      f"<td>{html.escape(str(r['now']))}</td><td>{html.escape(r['verdict'])}</td></tr>"
                      for r in report["headline"])
    curve = report.get("loss_curve")
    curve_text = (f"<p>Training loss curve: <b>{html.escape(curve['verdict'])}</b> over {curve['points']} points "
                  f"(largest relative difference {curve.get('max_relative_difference', 'n/a')}, tolerance "
                  f"{LOSS_RTOL:g}: {html.escape(curve['reason'])}).</p>") if curve else ""
    diffs = "".join(f"<li>{html.escape(d)}</li>" for d in report["environment"]["differences"]) or \
        "<li>none</li>"
    section = (f'<section id="reperformance"><h2>Re-performance of run {html.escape(report["reperformance_of"])}'
               f'</h2><p>Verdict: <b>{html.escape(report["verdict"])}</b>. Outputs: '
               f'{html.escape(", ".join(f"{n} {v}" for v, n in sorted(counts.items())))}.</p>'
               f"<h3>Environment differences</h3><ul>{diffs}</ul>{curve_text}"
               f"<h3>Headline</h3><table><tr><th>key</th><th>then</th><th>now</th><th>verdict</th></tr>{numbers}"
               f"</table><h3>Output files</h3><table><tr><th>file</th><th>verdict</th><th>why</th></tr>{rows}"
               f"</table></section>")
    text = report_html.read_text(encoding="utf-8") if report_html.is_file() else "<html><body></body></html>"
    text = text.replace("</body>", section + "</body>", 1) if "</body>" in text else text + section
    atomic_write_text(report_html, text)
