"""The monitoring and retraining plan: what to log, what to alert on, when to retrain, what is pinned, how to
roll back, and the end-of-life risks of the base model and providers. Built from the engagement's own numbers
(reference statistics, evaluation verdict, versions) and rendered to ``monitoring/monitoring_plan.md``.
"""
from __future__ import annotations

import datetime as _dt

from ftkit.deployment import drift
from ftkit.deployment.monitoring import RUNAWAY_ALERT_SHARE

LOG_FIELDS = (
    ("time", "UTC timestamp of the request", "volume per hour/day, and seasonality behind drift"),
    ("model", "served model name and version (export run id)", "which version answered: needed to roll back"),
    ("messages", "the request's messages (or a hash where policy forbids keeping text)", "input drift, replays"),
    ("output", "the model's answer", "label mix, format failures, human review"),
    ("finish_reason", "stop or length", "answers cut off by max_tokens: the model is not stopping"),
    ("prompt_tokens, completion_tokens", "token counts from the server's usage block", "cost tracking"),
    ("latency_s", "seconds from request to answer", "capacity: scale out before latency hurts users"),
    ("feedback", "user correction or rating, when the application has one", "the next training data"),
)


def _next_due(months: int, today: _dt.date | None = None) -> str:
    today = today or _dt.date.today()
    month = today.month - 1 + months
    return _dt.date(today.year + month // 12, month % 12 + 1, min(today.day, 28)).isoformat()


def alert_rules(psi_alert: float) -> list[dict]:
    return [
        {"signal": "input or output length drift", "threshold": f"PSI >= {psi_alert:g} and KS p < {drift.P_VALUE:g}",
         "action": "review a sample of recent requests; retrain if the new inputs are legitimate"},
        {"signal": "label mix drift", "threshold": f"PSI >= {psi_alert:g} and chi-square p < {drift.P_VALUE:g}",
         "action": "check with the client whether the business changed; label new examples and retrain"},
        {"signal": "watch level", "threshold": f"PSI >= {drift.PSI_WATCH:g} or p < {drift.P_VALUE:g}",
         "action": "no action; check again next week"},
        {"signal": "answers cut by max_tokens", "threshold": f"> {RUNAWAY_ALERT_SHARE:.0%} of answers",
         "action": "check the serving chat template and stop tokens against serving/chat_template.jinja"},
        {"signal": "answers without a valid label/format", "threshold": "> 5 % of answers",
         "action": "roll back to the previous version; investigate before retraining"},
    ]


def monitoring_plan(config, reference: dict, versions: dict, verdict: str = "") -> dict:
    """The plan as data (for results.json and the markdown). ``versions``: pins from :func:`ftkit.deployment.
    model_card.version_pins`."""
    months = config.deployment.retrain_every_months
    feats = reference["features"]
    labels = reference.get("labels", {})
    n_labels = sum(labels.values()) or 1
    base_pinned = bool(config.base_model.revision) or versions.get("base_kind") != "hub"
    return {
        "log_fields": [{"field": f, "what": w, "why": y} for f, w, y in LOG_FIELDS],
        "reference": {"n": reference["n"],
                      "input_tokens": {k: feats["input_tokens"]["summary"][k] for k in ("p50", "p90", "max")},
                      "output_tokens": {k: feats["output_tokens"]["summary"][k] for k in ("p50", "p90", "max")},
                      "labels": {k: round(v / n_labels, 4) for k, v in list(labels.items())[:10]}},
        "alerts": alert_rules(config.deployment.drift_psi_alert),
        "retraining": {"every_months": months, "next_due": _next_due(months),
                       "triggers": ["a drift alert that persists for two weeks",
                                    "a new label, product or policy the model must know",
                                    "evaluation on fresh production samples below the acceptance criteria"],
                       "procedure": ["collect and label recent production requests (with corrections)",
                                     "ftkit run CLIENT --phase data_audit (new data) then training, evaluation",
                                     "ship only on a 'go' verdict against the same test split plus the new sample",
                                     "re-run the deployment plan: new export, new reference statistics"]},
        "versions": versions,
        "base_model_pinned": base_pinned,
        "rollback": ["keep the previous deployment plan run folder (export + configs) until the new version "
                     "has run a full week without alerts",
                     "vLLM base + LoRA: serve the previous adapter side by side (--lora-modules old=... new=...) and "
                     "switch the model name in the application",
                     "merged export: point the serving config back at the previous run's export/merged and restart",
                     "log the model version with every request, so affected answers can be found after a rollback"],
        "end_of_life": _eol_risks(config, versions.get("base_kind") == "hub", base_pinned),
        "evaluation_verdict": verdict,
    }


def _eol_risks(config, from_hub: bool, base_pinned: bool) -> list[dict]:
    pin = ("the weights are pinned by their sha256 (a local copy)" if not from_hub else
           "the hub revision is pinned" if base_pinned else "pin base_model.revision now")
    risks = [
        {"risk": "base model withdrawn, gated or relicensed on the hub",
         "mitigation": f"keep a copy of the exact base weights (and their sha256) in the client's own storage; {pin}"},
        {"risk": "serving stack upgrade changes outputs (tokenizer, chat template, kernels)",
         "mitigation": "pin the serving image/package versions in the configs; re-run the export-equivalence "
                       "check and a UAT sample after every upgrade"},
        {"risk": "a successor base model makes this one obsolete",
         "mitigation": "review yearly; a migration is a new fine-tune on the successor, evaluated on the same test split"},
    ]
    if config.compliance.allow_external_providers:
        risks.append({"risk": "a managed provider retires the model a managed fine-tune runs on (typically with "
                              "months of notice)",
                      "mitigation": "keep the training data and this workbook so the fine-tune can be redone on the "
                                    "successor; budget one iteration per retirement"})
    return risks


def render_plan(plan: dict, client: str) -> str:
    from ftkit.deployment.serving_configs import render

    return render("monitoring_plan.md.j2", {"plan": plan, "client": client, "date": _dt.date.today().isoformat()})
