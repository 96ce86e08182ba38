"""`ftkit status`: one row per phase with its last run, status and headline result."""
from __future__ import annotations

from ftkit.engagement import Engagement
from ftkit.fsutil import read_json
from ftkit.phases import ordered


def phase_table(engagement: Engagement) -> list[dict]:
    rows = []
    for phase in ordered():
        run_ids = engagement.run_ids(phase)
        last = run_ids[-1] if run_ids else None
        latest = engagement.latest_run_id(phase)
        status = _read(engagement.runs_dir(phase) / last / "status.json").get("status", "?") if last else "not run"
        results = _read(engagement.runs_dir(phase) / latest / "results.json") if latest else {}
        headline = results.get("headline", {})
        shown = ", ".join(f"{k}={headline[k]}" for k in phase.headline_keys if k in headline) or \
            ", ".join(f"{k}={v}" for k, v in list(headline.items())[:3])
        rows.append({"phase": phase.folder, "runs": len(run_ids), "last run": last or "-", "status": status,
                     "latest succeeded": latest or "-", "headline": shown or "-"})
    return rows


def format_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    line = lambda r: "  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in columns}), line({c: "-" * widths[c] for c in columns}), *map(line, rows)])


def _read(path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}
