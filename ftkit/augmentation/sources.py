"""How many synthetic (and other non-client) examples each training iteration trained on, for the report.

Each succeeded training run records the data audit's ``train.jsonl`` it read as an input (``results.json``
``inputs``); that data audit's stats count the training split per source (``stats.sources``, written by
``ftkit.data.stats.source_counts``). Nothing is re-derived from engagement.yaml.
"""
from __future__ import annotations

from pathlib import Path

from ftkit.data.stats import CLIENT_SOURCE


def _audit_run_of(results: dict) -> str:
    """The data audit run whose train.jsonl a training run read ('' when not recorded)."""
    for key in (results.get("inputs") or {}):
        parts = Path(key).parts
        if len(parts) >= 5 and parts[0] == "phases" and parts[1].endswith("data_audit") and parts[-1] == "train.jsonl":
            return parts[3]
    return ""


def training_data_by_iteration(engagement) -> list[dict]:
    """One row per succeeded training run: its data audit run and the training split per source."""
    from ftkit.evaluation.iterations import training_iterations
    from ftkit.fsutil import read_json

    rows = []
    for it in training_iterations(engagement):
        audit = _audit_run_of(it.results)
        counts: dict = {}
        path = engagement.runs_dir("data_audit") / audit / "results.json" if audit else None
        if path is not None and path.is_file():
            try:
                stats = (read_json(path).get("results") or {}).get("stats") or {}
            except (OSError, ValueError):
                stats = {}
            counts = ((stats.get("sources") or {}).get("per_split") or {}).get("train") or {}
        total = sum(counts.values())
        synthetic = counts.get("synthetic", 0)
        other = total - counts.get(CLIENT_SOURCE, 0) - synthetic
        rows.append({"iteration": it.number, "training_run": it.run_id, "data_audit_run": audit or "not recorded",
                     "train_examples": total if counts else "", "client_own": counts.get(CLIENT_SOURCE, 0) if counts else "",
                     "synthetic": synthetic if counts else "", "other_sources": other if counts else "",
                     "synthetic_share": f"{synthetic / total:.1%}" if total else ""})
    return rows
