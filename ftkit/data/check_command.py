"""``ftkit data check FILE [--format ...] [--json OUT]``: the audit's checks on one file, outside an engagement.

No tokenizer (so no torch/transformers import: the command starts in well under a second); everything else
runs: format detection, structure and content checks, duplicates, PII. Exit 0 when there are no errors
(warnings allowed), 1 when there are errors or the file cannot be read.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ftkit.data.audit import AuditOptions, AuditResult, audit_files
from ftkit.data.checks import CHECKS

SHOW_ISSUES = 12  # example rows printed; the JSON and issues.csv have all of them


def check_report(result: AuditResult) -> dict:
    """The ``--json`` document: format, n_records, n_valid, issues, duplicates, pii (+ counts and stats)."""
    summary = result.files[0]
    return {
        "file": summary.path,
        "format": summary.format or None,
        "container": summary.container or None,
        "readable": summary.readable,
        "n_records": result.n_records,
        "n_valid": result.n_valid,
        "n_errors": result.count("error"),
        "n_warnings": result.count("warning"),
        "issue_counts": result.issue_counts(),
        "issues": [{"line": i.line, "severity": i.severity, "code": i.code, "message": i.message, "excerpt": i.excerpt}
                   for i in result.issues],
        "duplicates": result.line_groups(result.duplicate_groups),
        "near_duplicates": result.line_groups(result.near_duplicate_groups),
        "conflicts": result.line_groups(result.conflict_groups),
        "pii": [{"line": h["line"], "kind": h["kind"]} for h in result.pii_hits()],
        "stats": result.stats,
    }


def format_summary(result: AuditResult) -> str:
    """Human-readable summary: counts, issues per check with the fix, a few example rows, the verdict."""
    from ftkit.safe_values import one_line

    summary = result.files[0]
    lines = [f"ftkit data check: {one_line(summary.path)}"]
    if not summary.readable:
        problem = next((i for i in result.issues if i.line == 0 and i.severity == "error"), None)
        lines.append(f"  cannot read this file: {problem.message if problem else 'no records'}")
        if problem:
            lines.append(f"  fix: {CHECKS[problem.code].fix}")
        return "\n".join(lines)
    share = 100.0 * result.n_valid / result.n_records if result.n_records else 0.0
    lines.append(f"  format: {summary.format} ({summary.container}); {result.n_records:,} records, "
                 f"{result.n_valid:,} valid ({share:.1f} %)")
    lines.append(f"  errors: {result.count('error'):,}  warnings: {result.count('warning'):,}  info: {result.count('info'):,}")
    if result.issues:
        lines.append("  by check:")
        for code, n in result.issue_counts().items():
            check = CHECKS[code]
            lines.append(f"    {check.severity:<8} {code:<32} {n:>7,}  {check.title}. Fix: {check.fix}")
    d = result.stats.get("duplicates", {})
    lines.append(f"  duplicates: {d.get('exact_groups', 0)} exact groups ({d.get('exact_extra_copies', 0)} extra copies), "
                 f"{d.get('near_groups', 0)} near-duplicate groups, {d.get('conflict_groups', 0)} conflicting-answer groups")
    pii = result.stats.get("pii", {})
    lines.append("  PII: " + (", ".join(f"{k} {v}" for k, v in sorted(pii.items())) if pii else "none found"))
    worst = sorted(result.issues, key=lambda i: ("error", "warning", "info").index(i.severity))[:SHOW_ISSUES]
    if worst:
        lines.append("  first issues (all of them: --json OUT):")
        for i in worst:
            where = f"line {i.line}" if i.line else "file"
            # Client text goes to a terminal: control characters (ESC sequences) shown escaped, never sent raw.
            excerpt = f"  | {one_line(i.excerpt)}" if i.excerpt else ""
            lines.append(f"    {where:<11} {i.severity:<8} {i.code}: {one_line(i.message[:160])}{excerpt[:100]}")
    verdict = "FAILED: fix the errors above" if result.count("error") else \
        ("OK with warnings" if result.count("warning") else "OK")
    lines.append(f"  verdict: {verdict}")
    return "\n".join(lines)


def run_data_check(path: str, fmt: str = "auto", json_out: str | None = None) -> int:
    """Check one data file; print a summary; write the JSON report to ``json_out`` if given. Returns the exit code."""
    from ftkit.fsutil import atomic_write_json

    result = audit_files([Path(path)], AuditOptions(fmt=fmt))
    try:
        print(format_summary(result))
        if json_out:
            atomic_write_json(json_out, check_report(result))
            print(f"  JSON report: {json_out}")
    finally:
        result.close()
    sys.stdout.flush()
    return 1 if result.count("error") or not result.files[0].readable else 0
