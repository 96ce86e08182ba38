"""The executive summary of the engagement report, read from the phases' latest ``results.json``.

Four answers a client's sponsor reads first: should we fine-tune (suitability), did it work (evaluation
verdict and action), by how much (key metrics, baseline vs fine-tuned with 95 % CIs), and what does it cost to
run (deployment plan: self-hosted vs managed per month, break-even). Each is ``None`` when its phase has not
run yet, so the page says "not run yet" instead of guessing. Pure functions over the results.json payloads, read
through each phase's typed results (``ftkit.phase_results``: the headline is recomputed from the typed fields);
payloads written before typed results are read leniently, so older engagements still get a report.

>>> recommendation(None) is None
True
>>> recommendation({"headline": {"recommendation": "fine_tune", "method": "lora"}})["recommendation"]
'fine_tune'
"""
from __future__ import annotations

VERDICT_LABELS = {"go": "GO", "no_go": "NO-GO", "pending": "PENDING"}


def _view(phase: str, payload: dict) -> tuple[dict, dict]:
    """(headline, results) of a phase's payload: from its typed results when it has a schema, else as written."""
    from ftkit.phase_results import load_or_none

    typed = load_or_none(phase, payload) if payload.get("schema") else None
    if typed is None:
        return payload.get("headline") or {}, payload.get("results") or {}
    return typed.headline_row(), typed.to_results()


def executive_summary(results: dict[str, dict | None]) -> dict:
    """``results``: phase name -> that phase's latest results.json (None when it has not run)."""
    return {"recommendation": recommendation(results.get("suitability")),
            "data": data_verdict(results.get("data_audit")),
            "verdict": evaluation_verdict(results.get("evaluation")),
            "metrics": key_metrics(results.get("baseline"), results.get("evaluation")),
            "cost": cost_summary(results.get("deployment_plan"))}


def recommendation(suitability: dict | None) -> dict | None:
    if not suitability:
        return None
    head, res = _view("suitability", suitability)
    return {"recommendation": head.get("recommendation") or res.get("recommendation") or "unknown",
            "method": head.get("method") or res.get("method") or "",
            "hosting": head.get("hosting") or res.get("hosting") or "",
            "readiness": head.get("readiness") or res.get("readiness") or "",
            "timeline_weeks": head.get("timeline_weeks") or "",
            "why": res.get("headline") or suitability.get("summary") or ""}


def data_verdict(data_audit: dict | None) -> dict | None:
    if not data_audit:
        return None
    head, res = _view("data_audit", data_audit)
    splits = res.get("splits") or {}
    return {"verdict": head.get("verdict", "unknown"), "n_valid": head.get("n_valid"), "splits": splits,
            "summary": data_audit.get("summary", "")}


def evaluation_verdict(evaluation: dict | None) -> dict | None:
    """go / no_go / pending, the action, why, and the acceptance criteria rows."""
    if not evaluation:
        return None
    head, res = _view("evaluation", evaluation)
    nested = res.get("verdict")
    nested = nested if isinstance(nested, dict) else {"verdict": nested}
    verdict = head.get("verdict") or nested.get("verdict") or "unknown"
    return {"verdict": verdict, "label": VERDICT_LABELS.get(verdict, str(verdict).upper()),
            "action": head.get("action") or nested.get("action") or "",
            "why": nested.get("why") or evaluation.get("summary", ""),
            "criteria": nested.get("criteria") or [], "iteration": res.get("iteration")}


def key_metrics(baseline: dict | None, evaluation: dict | None) -> dict | None:
    """Rows of metric, baseline (CI), fine-tuned (CI), difference (CI), significant; headline metric first.

    From the evaluation's paired comparison when it has run (same test items for both models), else the
    baseline's own metrics with the fine-tuned side empty.
    """
    if evaluation:
        head, res = _view("evaluation", evaluation)
        rows = _paired_rows(res.get("metrics") or {})
        headline, n, source = head.get("headline_metric", ""), head.get("n_test"), "evaluation"
    elif baseline:
        head, res = _view("baseline", baseline)
        rows = _baseline_rows((res.get("metrics") or {}).get("metrics") or {})
        headline, n, source = head.get("headline_metric", ""), head.get("n_test"), "baseline"
    else:
        return None
    rows.sort(key=lambda r: r["metric"] != headline)  # stable: the headline metric first, the rest as recorded
    for row in rows:
        row["headline"] = row["metric"] == headline
    return {"rows": rows, "headline_metric": headline, "n_test": n, "source": source}


def _paired_rows(metrics: dict) -> list[dict]:
    rows = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or not _is_number(m.get("fine_tuned")):
            continue
        rows.append({"metric": name, "higher_is_better": m.get("higher_is_better"),
                     "baseline": m.get("baseline"), "baseline_ci": _ci(m.get("baseline_ci")),
                     "fine_tuned": m.get("fine_tuned"), "fine_tuned_ci": _ci(m.get("fine_tuned_ci")),
                     "diff": m.get("diff"), "diff_ci": _ci(m.get("diff_ci")), "significant": m.get("significant")})
    return rows


def _baseline_rows(metrics: dict) -> list[dict]:
    rows = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or not _is_number(m.get("value")):
            continue
        rows.append({"metric": name, "higher_is_better": m.get("higher_is_better"), "baseline": m["value"],
                     "baseline_ci": _ci([m.get("ci_low"), m.get("ci_high")]), "fine_tuned": None,
                     "fine_tuned_ci": None, "diff": None, "diff_ci": None, "significant": None})
    return rows


def cost_summary(deployment: dict | None) -> dict | None:
    """Self-hosted monthly cost, the managed alternatives (allowed ones first, cheapest first), break-even."""
    if not deployment:
        return None
    head, res = _view("deployment_plan", deployment)
    cost, sizing = res.get("cost") or {}, res.get("sizing") or {}
    own = cost.get("self_hosted") or {}
    managed = sorted(cost.get("managed") or [], key=lambda r: (not r.get("allowed", True), r.get("usd") or 0))
    best = next((r for r in managed if r.get("allowed", True)), None)
    monthly = own.get("usd", head.get("monthly_cost_usd"))
    return {"volume": cost.get("volume"), "gpu": own.get("gpu") or sizing.get("gpu_label", ""),
            "replicas": own.get("replicas"), "self_hosted_usd": monthly, "busy_share": own.get("busy_share"),
            "serving": head.get("serving", ""), "managed": managed,
            "cheapest": cost.get("cheapest", ""), "best_managed": best,
            "break_even": _break_even_text(best, cost.get("volume")),
            "external_allowed": cost.get("external_allowed", True), "ownership": cost.get("training") or None}


def _break_even_text(best: dict | None, volume) -> str:
    if not best:
        return "no managed provider allowed (compliance.allow_external_providers: false)"
    be = best.get("break_even_requests")
    if be is None:
        return f"never: {best.get('name')} is cheaper per request even on a fully used GPU"
    if be == 0:
        return "self-hosting with scale to zero is cheaper at any volume"
    side = "" if not _is_number(volume) else f" (this client: {volume:,.0f}, {'above' if volume >= be else 'below'} it)"
    return f"self-hosting is cheaper than {best.get('name')} above {be:,.0f} requests/month{side}"


def _ci(pair) -> list[float] | None:
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_number(x) for x in pair):
        return [float(pair[0]), float(pair[1])]
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
