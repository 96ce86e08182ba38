"""Managed or self-hosted, with training in the sum: the measured cost of this engagement's training beside the
managed providers' fine-tuning prices, plus a year of serving.

Self-hosted training is what the latest training run actually cost (its ``cost.json``: wall time x devices x the
device's rate, the hyperparameter search included); without one, the data audit's FLOPs estimate. Managed
training is the data audit's estimate for that provider (``templates/prices.yaml``: billed tokens x price): the
fine-tune is redone on the provider's platform. A year holds ``trainings_per_year`` trainings (the first plus one
per ``deployment.retrain_every_months``) and 12 months of serving (``ftkit.deployment.cost``).

>>> trainings_per_year(3), trainings_per_year(12), trainings_per_year(0)
(4, 1, 1)
"""
from __future__ import annotations

import math

MONTHS = 12  # the horizon of the comparison: one year


def trainings_per_year(retrain_every_months: int) -> int:
    return max(1, math.ceil(MONTHS / retrain_every_months)) if retrain_every_months > 0 else 1


def managed_training_for(serving_row: dict, managed_training: list[dict]) -> dict | None:
    """The data audit's fine-tuning estimate that goes with a managed serving option: same provider, the model
    whose name the serving option starts with, else that provider's cheapest; None when the table has none."""
    provider = str(serving_row.get("provider", "")).lower().replace(" ", "")
    same = [r for r in managed_training if provider.startswith(str(r.get("provider", "")).lower().replace("_", ""))
            or str(r.get("provider", "")).lower().replace("_", "").startswith(provider)]
    if not same:
        return None
    stem = str(serving_row.get("name", "")).split(" (")[0].lower()
    named = [r for r in same if stem and str(r.get("model", "")).lower().startswith(stem)]
    return min(named or same, key=lambda r: r["usd"])


def ownership(comparison: dict, managed_training: list[dict], self_hosted_estimates: list[dict],
              measured: dict | None, retrain_every_months: int) -> dict:
    """One row per option (self-hosted first): training per run, its source, serving per month, first year."""
    n = trainings_per_year(retrain_every_months)
    own = comparison["self_hosted"]
    if measured and isinstance(measured.get("cost_usd"), (int, float)):
        rate = measured.get("rate") or {}
        training, source = float(measured["cost_usd"]), (
            f"measured: training run {measured.get('run_id', '')}, {measured.get('device_hours', 0):.4f} device-hours on "
            f"{measured.get('device', '')} at ${rate.get('hourly_usd', 0):g}/h ({rate.get('name', '')}, "
            f"prices of {rate.get('as_of', '')})")
    elif self_hosted_estimates:
        cheapest = min(self_hosted_estimates, key=lambda r: r["usd"])
        training, source = float(cheapest["usd"]), f"estimate (data audit, {cheapest['gpu']}): no measured run"
    else:
        training, source = None, "no measured run and no estimate"
    rows = [_row(f"self-hosted {own['gpu']}", training, source, own["usd"], n, True, measured is not None)]
    for m in comparison["managed"]:
        est = managed_training_for(m, managed_training)
        rows.append(_row(f"{m['provider']} {m['name']}", est["usd"] if est else None,
                         f"estimate (data audit): {est['provider']} {est['model']}, {est['epochs']} epoch(s), prices of "
                         f"{est['as_of']}" if est else "no fine-tuning price for this provider in templates/prices.yaml",
                         m["usd"], n, m.get("allowed", True), False))
    priced = [r for r in rows if r["allowed"] and r["first_year_usd"] is not None]
    best = min(priced, key=lambda r: r["first_year_usd"]) if priced else None
    return {"rows": rows, "trainings_per_year": n, "months": MONTHS, "cheapest": best["option"] if best else "",
            "measured_training_usd": training if measured else None, "measured_run": (measured or {}).get("run_id")}


def _row(option: str, training, source: str, serving, n: int, allowed: bool, measured: bool) -> dict:
    year = None if training is None else round(n * training + MONTHS * serving, 2)
    return {"option": option, "training_usd": None if training is None else round(training, 4),
            "training_source": source, "measured": measured, "serving_usd_per_month": round(serving, 2),
            "first_year_usd": year, "allowed": allowed}


def ownership_rows(o: dict) -> list[dict]:
    return [{"option": r["option"], "training USD (one run)": r["training_usd"] if r["training_usd"] is not None else "",
             "training cost from": r["training_source"], "serving USD/month": r["serving_usd_per_month"],
             f"first {o['months']} months USD ({o['trainings_per_year']} trainings)":
                 r["first_year_usd"] if r["first_year_usd"] is not None else "",
             "allowed": r["allowed"]} for r in o["rows"]]


def ownership_finding(o: dict):
    from ftkit.section import finding

    own = o["rows"][0]
    if own["training_usd"] is None:
        return finding("info", "deployment.ownership", f"No measured training run and no estimate: the yearly "
                       f"comparison counts serving only (self-hosted ${own['serving_usd_per_month']:,.2f}/month).",
                       "Run training through `ftkit run` so its cost is measured (cost.json).")
    head = (f"Self-hosted: training {'measured' if own['measured'] else 'estimated'} at ${own['training_usd'] or 0:,.4f} "
            f"a run and serving ${own['serving_usd_per_month']:,.2f}/month, ${own['first_year_usd'] or 0:,.2f} over "
            f"{o['months']} months with {o['trainings_per_year']} training(s).")
    if not o["cheapest"]:
        return finding("info", "deployment.ownership", head + " No managed option is allowed and priced.", "")
    best = next(r for r in o["rows"] if r["option"] == o["cheapest"])
    if best is own:
        return finding("info", "deployment.ownership", head + " That is the cheapest allowed option once training "
                       "is counted.", "")
    return finding("info", "deployment.ownership", head + f" {best['option']} is cheaper over the year: "
                   f"${best['first_year_usd']:,.2f} (fine-tuning ${best['training_usd']:,.2f} a run, "
                   f"{best['training_source']}).", "Weigh it against compliance and data-transfer terms before "
                   "recommending self-hosting.")
