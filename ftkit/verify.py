"""`ftkit verify`: re-hash everything recorded and report what changed, vanished or broke the chain."""
from __future__ import annotations

from pathlib import Path

from ftkit.audit_log import check_chain, read_entries
from ftkit.engagement import Engagement
from ftkit.fsutil import read_json, sha256_file
from ftkit.lock import is_locked
from ftkit.manifest import MANIFEST_FILE
from ftkit.phases import ordered


def verify_engagement(engagement: Engagement) -> tuple[list[str], int]:
    """(problems, number of files checked). No problems = the evidence is intact."""
    problems: list[str] = []
    entries = read_entries(engagement.audit_path)
    if not entries:
        problems.append("audit.jsonl is missing or empty: the engagement has no audit trail")
    problems += check_chain(entries)
    checked = 0

    for entry in entries:
        if entry.get("event") == "engagement_created":
            for rel, digest in (entry.get("data_files") or {}).items():
                checked += 1
                problems += _check_file(engagement.path / rel, digest, rel, "client data file (hashed at intake)")

    recorded_runs = {engagement.runs_dir(e.get("phase", "")) / e.get("run_id", "")
                     for e in entries if e.get("event") == "run_abandoned"}
    for entry in entries:
        if entry.get("event") != "run_finished":
            continue
        run_dir = engagement.runs_dir(entry.get("phase", "")) / entry.get("run_id", "")
        recorded_runs.add(run_dir)
        manifest_path = run_dir / MANIFEST_FILE
        rel_manifest = engagement.relative(manifest_path) if manifest_path.exists() else str(manifest_path)
        checked += 1
        issue = _check_file(manifest_path, entry.get("manifest_sha256", ""), rel_manifest, "manifest")
        problems += issue
        if issue:
            continue
        manifest = read_json(manifest_path)
        if entry.get("status") != manifest.get("status"):  # the last line has no successor to break the chain
            problems.append(f"audit.jsonl says run {entry.get('run_id')} {entry.get('status')}, but its manifest says "
                            f"{manifest.get('status')}: the audit entry was rewritten")
        for rel, digest in manifest.get("outputs", {}).items():
            checked += 1
            problems += _check_file(run_dir / rel, digest, engagement.relative(run_dir) + "/" + rel, "run output")
        for rel, digest in manifest.get("inputs", {}).items():
            path = Path(rel) if Path(rel).is_absolute() else engagement.path / rel
            if rel == "engagement.yaml":
                continue  # live file, edited between runs by design; each run's snapshot is checked above
            checked += 1
            problems += _check_file(path, digest, rel, f"input of run {entry.get('run_id')}")

    for phase in ordered():
        for run_id in engagement.run_ids(phase):
            run_dir = engagement.runs_dir(phase) / run_id
            if run_dir not in recorded_runs and not (_running(run_dir) and is_locked(engagement.lock_path)):
                problems.append(f"{engagement.relative(run_dir)}: run folder is not in the audit log "
                                f"(added by hand, or its process was killed before it was recorded)")
        latest = engagement.latest_run_id(phase)
        if latest:
            status = _status(engagement.runs_dir(phase) / latest)
            if status != "succeeded":
                problems.append(f"{phase.folder}/latest points at run {latest} whose status is {status}")
    return problems, checked


def _check_file(path: Path, digest: str, label: str, kind: str) -> list[str]:
    if not path.is_file():
        return [f"{label}: {kind} is missing"]
    if sha256_file(path) != digest:
        return [f"{label}: {kind} has changed since it was recorded"]
    return []


def _status(run_dir: Path) -> str:
    try:
        return read_json(run_dir / "status.json").get("status", "unknown")
    except (OSError, ValueError):
        return "unknown"


def _running(run_dir: Path) -> bool:
    return _status(run_dir) == "running"
