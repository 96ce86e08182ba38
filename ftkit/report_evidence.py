"""Provenance tables of the engagement report: the audit chain, each latest run's manifest, the environment.

The audit chain is checked line by line with ftkit.audit_log's own hashing (the same rules ``ftkit verify`` uses),
and each ``run_finished`` line's manifest is re-hashed: manifests are small, so this is cheap enough to do on
every report build. Re-hashing every recorded output (model weights: gigabytes) is left to ``ftkit verify``;
the manifest tables only say whether each file is still there.
"""
from __future__ import annotations

import os
from pathlib import Path

from ftkit.audit_log import GENESIS, check_chain, entry_hash
from ftkit.errors import FtkitError
from ftkit.fsutil import sha256_file
from ftkit.manifest import MANIFEST_FILE

# Packages whose versions decide results most, shown per run; every recorded package is listed below that.
KEY_PACKAGES = ("torch", "transformers", "peft")


def audit_chain(engagement, entries: list[dict]) -> dict:
    """Rows of the audit log with per-line checks, plus the chain problems in ftkit verify's words."""
    rows, prev = [], GENESIS
    for index, entry in enumerate(entries):
        rows.append(_audit_row(engagement, index, entry, prev))
        prev = entry.get("hash") if "_unparseable" not in entry else None
    problems = check_chain(entries)
    if not entries:
        problems = ["audit.jsonl is missing or empty: the engagement has no audit trail"]
    return {"rows": rows, "problems": problems, "intact": not problems}


def _audit_row(engagement, index: int, entry: dict, prev: str | None) -> dict:
    if "_unparseable" in entry:
        return {"line": index + 1, "event": "(not valid JSON)", "ok": False, "checks": ["line is not valid JSON"]}
    checks = []
    if entry.get("seq") != index:
        checks.append(f"seq {entry.get('seq')}, expected {index}")
    if prev is not None and entry.get("prev_hash") != prev:
        checks.append("does not chain to the line before")
    if entry.get("hash") != entry_hash(entry):
        checks.append("edited after it was written")
    manifest = _manifest_check(engagement, entry)
    if manifest not in ("", "matches"):
        checks.append(f"manifest {manifest}")
    return {"line": index + 1, "seq": entry.get("seq"), "time_utc": entry.get("time_utc", ""),
            "event": entry.get("event", ""), "phase": entry.get("phase") or "", "run_id": entry.get("run_id") or "",
            "status": entry.get("status") or "", "prev_hash": entry.get("prev_hash", ""), "hash": entry.get("hash", ""),
            "manifest_sha256": entry.get("manifest_sha256", ""), "manifest": manifest, "ok": not checks,
            "checks": checks}


def _manifest_check(engagement, entry: dict) -> str:
    """'' when the line records no manifest; else matches / changed since recorded / missing."""
    digest = entry.get("manifest_sha256")
    if entry.get("event") != "run_finished" or not digest or not entry.get("phase") or not entry.get("run_id"):
        return ""
    try:
        path = engagement.runs_dir(entry["phase"]) / entry["run_id"] / MANIFEST_FILE
    except FtkitError:  # an unknown phase name in an edited line: the finding is that its manifest is missing
        return "missing"
    if not path.is_file():
        return "missing"
    return "matches" if sha256_file(path) == digest else "changed since recorded"


def manifest_files(engagement, run_dir: Path, manifest: dict, report_dir: Path) -> list[dict]:
    """Inputs and outputs of one run with sha256, whether the file is still there, and a link to it."""
    rows = []
    for kind, base in (("input", engagement.path), ("output", run_dir)):
        for rel, digest in (manifest.get(f"{kind}s") or {}).items():
            outside = Path(rel).is_absolute()  # e.g. a base model folder: listed, not linked
            path = Path(rel) if outside else base / rel
            present = path.is_file()
            href = os.path.relpath(path, report_dir).replace(os.sep, "/") if present and not outside else None
            rows.append({"kind": kind, "file": rel, "sha256": digest, "present": present, "href": href})
    return rows


def environment(sections: list[dict]) -> dict:
    """One row per latest run (Python, ftkit, hardware) and the package versions, flagging any that differ."""
    runs, packages = [], {}
    for s in sections:
        manifest = s.get("manifest") or {}
        if not manifest:
            continue
        runs.append(_environment_row(s["phase"].title, s.get("run_id", ""), manifest))
        for name, version in (manifest.get("packages") or {}).items():
            packages.setdefault(name, {})[s["phase"].title] = version
    table = [{"package": name, "versions": sorted({v or "not installed" for v in by_phase.values()}),
              "differs": len(set(by_phase.values())) > 1}
             for name, by_phase in sorted(packages.items())]
    return {"runs": runs, "packages": table, "key_packages": KEY_PACKAGES}


def _environment_row(phase_title: str, run_id: str, manifest: dict) -> dict:
    hw, py, fk = manifest.get("hardware") or {}, manifest.get("python") or {}, manifest.get("ftkit") or {}
    gpus = ", ".join(f"{g.get('name', '?')} ({g.get('memory', '?')})" for g in hw.get("gpus") or []) or "none"
    return {"phase": phase_title, "run_id": run_id, "python": py.get("version", "?"),
            "executable": py.get("executable", ""),
            "ftkit": f"{fk.get('version', '?')} {fk.get('git_commit', '')}".strip(),
            "platform": hw.get("platform", ""),
            "cpu": f"{hw.get('processor') or hw.get('machine', '?')} x{hw.get('cpu_count', '?')}",
            "memory_gb": hw.get("memory_gb"), "gpus": gpus, "cuda_visible_devices": hw.get("cuda_visible_devices"),
            "key_packages": {k: (manifest.get("packages") or {}).get(k) for k in KEY_PACKAGES}}
