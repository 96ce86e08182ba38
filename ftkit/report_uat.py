"""The consolidated report's UAT section: who tested, how much, what they approved (rate with a Wilson CI),
the corrections collected, and how many of them entered the next iteration's data.

Read-only over the engagement: the UAT logs (``ftkit.deployment.uat_log``), the export receipts of
``ftkit data from-uat`` (``uat/exports.jsonl``) and the latest data audit's splits, where the data audit keeps
each record's top-level ``source``; records with ``"source": "uat"`` there are the ones that entered. Returns
None when the engagement has no UAT activity, and the report then leaves the section out.
"""
from __future__ import annotations

import json
from pathlib import Path

SPLIT_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl")


def uat_records_in_splits(run_dir: Path | None) -> dict[str, int]:
    """Records per split file of a data audit run whose top-level ``source`` is ``uat``."""
    counts: dict[str, int] = {}
    for name in SPLIT_FILES if run_dir else ():
        path = run_dir / name
        if not path.is_file():
            continue
        n = 0
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if '"uat"' in line:  # cheap prefilter; the parse decides
                    try:
                        n += json.loads(line).get("source") == "uat"
                    except (ValueError, AttributeError):
                        pass
        counts[name.removesuffix(".jsonl")] = n
    return counts


def entry_note(exported: int, entered: int, audit_run: str) -> str:
    """Why fewer UAT examples are in the data than were exported (empty when there is nothing to explain).

    >>> entry_note(6, 1, "r1")
    '5 of the 6 exported UAT examples are not in data audit run r1: not yet added to data.files, or removed by the audit (duplicates of client records, failed checks); see its issues.'
    """
    if exported <= entered:
        return ""
    where = f"data audit run {audit_run}" if audit_run else "any data audit yet"
    return (f"{exported - entered} of the {exported} exported UAT examples are not in {where}: not yet added to "
            f"data.files, or removed by the audit (duplicates of client records, failed checks); see its issues.")


def uat_section(engagement) -> dict | None:
    from ftkit.deployment.uat_data import EXPORTS_FILE
    from ftkit.deployment.uat_log import read_lines
    from ftkit.deployment.uat_summary import CONFIDENCE, engagement_summary

    try:
        summary = engagement_summary(engagement)
    except Exception as err:  # noqa: BLE001 - a damaged log must not stop the whole report
        return {"error": f"The UAT logs cannot be read: {err}"}
    if summary is None:
        return None
    try:
        exports, _ = read_lines(engagement.path / EXPORTS_FILE)
    except Exception:  # noqa: BLE001
        exports = []
    audit_run = engagement.latest_run_dir("data_audit")
    in_splits = uat_records_in_splits(audit_run)
    rate = summary.approval_rate
    exported, entered = sum(int(e.get("written") or 0) for e in exports), sum(in_splits.values())
    return {"note": entry_note(exported, entered, audit_run.name if audit_run else ""),"headline": summary.headline(), "testers": summary.testers, "requests": summary.requests,
            "rated": summary.rated, "approved": summary.approved,
            "approval_rate": None if rate is None else round(rate, 3),
            "ci": [round(x, 3) for x in summary.ci] if summary.rated else None, "confidence": CONFIDENCE,
            "corrections": summary.corrections, "per_tester": summary.per_tester, "worst": summary.worst,
            "exports": [{"time": e.get("time"), "file": Path(str(e.get("file", ""))).name, "written": e.get("written"),
                         "corrected": e.get("corrected"), "approved": e.get("approved")} for e in exports],
            "exported": exported, "entered": entered, "entered_by_split": in_splits,
            "audit_run": audit_run.name if audit_run else ""}
