"""The consolidated report's iteration ledger: every training run of the engagement as an iteration, with the
evaluation's figures where one exists, and which iterations were measured on the same test set.

Computed from the run folders at report time (``ftkit.evaluation.iterations.ledger_rows``), so a training run not
yet evaluated still shows its data and settings; the chart is the latest evaluation's ``iteration_ledger.png``.
"""
from __future__ import annotations

import base64


def comparability(rows: list[dict]) -> str:
    """One sentence on which iterations share the newest evaluated one's test set.

    >>> comparability([{"iteration": 1, "value": 0.5, "comparable": False}, {"iteration": 2, "value": 0.6, "comparable": True}])
    'Iteration 2 was measured on the current test set; 1 on another (review sheets changed test answers or examples), so its figures are not on the same yardstick (the newest evaluation compares them paired, re-scored on the current test set).'
    """
    scored = [r for r in rows if r.get("value") is not None]
    if not scored:
        return "No iteration has been evaluated yet."
    same = [str(r["iteration"]) for r in scored if r.get("comparable")]
    other = [str(r["iteration"]) for r in scored if not r.get("comparable")]
    text = f"Iteration{'s' if len(same) > 1 else ''} {', '.join(same)} {'were' if len(same) > 1 else 'was'} measured on the current test set"
    if not other:
        return text + "."
    return (text + f"; {', '.join(other)} on another (review sheets changed test answers or examples), so "
            f"{'their' if len(other) > 1 else 'its'} figures are not on the same yardstick (the newest evaluation "
            f"compares them paired, re-scored on the current test set).")


def ledger_context(engagement) -> dict | None:
    """{"rows": table rows, "comparability", "chart": base64 PNG or ""}; None without a training run."""
    from ftkit.evaluation.iterations import ledger_rows
    from ftkit.evaluation.phase import LEDGER_FIGURE, ledger_table

    rows = ledger_rows(engagement)
    if not rows:
        return None
    chart = ""
    latest = engagement.latest_run_dir("evaluation")
    png = latest / "figures" / f"{LEDGER_FIGURE}.png" if latest else None
    if png is not None and png.is_file():
        chart = base64.b64encode(png.read_bytes()).decode("ascii")
    return {"rows": ledger_table(rows), "comparability": comparability(rows), "chart": chart, "n": len(rows)}
