"""The consolidated report's spend section: what the engagement's runs actually cost against ``budget.total_usd``.

Built from the cost ledger (``ftkit.cost_ledger``: every run's ``cost.json``, failed runs included, since their
compute was paid for too) and the latest training run's search summary. No heavy import.
"""
from __future__ import annotations

from ftkit.cost_ledger import ledger, spend_finding


def spend_summary(engagement, config) -> dict:
    """Totals by phase, every priced run, the budget finding and the training search's share."""
    book = ledger(engagement)
    budget = float(config.budget.total_usd or 0.0)
    finding = spend_finding(book["total_usd"], budget)
    search = _search(engagement)
    return {"total_usd": book["total_usd"], "device_hours": book["device_hours"], "budget_usd": budget,
            "share": book["total_usd"] / budget if budget > 0 else None,
            "by_phase": [{"phase": k, "usd": v} for k, v in book["by_phase"].items()],
            "runs": book["rows"], "unpriced": book["unpriced"], "finding": finding.to_dict(), "search": search}


def _search(engagement) -> dict | None:
    from ftkit.fsutil import read_json

    run_dir = engagement.latest_run_dir("training")
    if run_dir is None or not (run_dir / "results.json").is_file():
        return None
    try:
        return (read_json(run_dir / "results.json").get("results") or {}).get("search")
    except (OSError, ValueError):
        return None
