"""The monitoring plan and the evaluation summary that feeds the model card, from hand-made inputs."""
from __future__ import annotations

import datetime as dt

from ftkit.config import parse_config
from ftkit.deployment.model_card import evaluation_summary
from ftkit.deployment.monitoring_plan import _next_due, monitoring_plan, render_plan

REFERENCE = {"n": 10, "labels": {"billing": 6, "returns": 4},
             "features": {"input_tokens": {"summary": {"p50": 30, "p90": 50, "max": 60}},
                          "output_tokens": {"summary": {"p50": 12, "p90": 15, "max": 16}}}}


def config(**deployment):
    return parse_config({"client": {"slug": "acme"}, "base_model": {"id": "org/model"}, "deployment": deployment})


def test_retraining_date_is_months_ahead_and_clamped_to_a_valid_day():
    assert _next_due(3, dt.date(2025, 11, 30)) == "2026-02-28"
    assert _next_due(12, dt.date(2025, 1, 15)) == "2026-01-15"


def test_plan_flags_an_unpinned_hub_base_and_uses_the_configured_thresholds():
    plan = monitoring_plan(config(retrain_every_months=6, drift_psi_alert=0.3), REFERENCE,
                           {"base_kind": "hub", "base_model": "org/model"}, "go")
    assert plan["base_model_pinned"] is False
    assert "pin base_model.revision now" in plan["end_of_life"][0]["mitigation"]
    assert plan["retraining"]["every_months"] == 6
    assert plan["alerts"][0]["threshold"].startswith("PSI >= 0.3")
    assert plan["reference"]["labels"] == {"billing": 0.6, "returns": 0.4}
    text = render_plan(plan, "acme")
    assert "ftkit monitor acme --log FILE" in text and "billing 60.0 %" in text
    assert tables_are_rectangular(text)


def tables_are_rectangular(markdown: str) -> bool:
    """Every row of every markdown table has as many cells as its header (a stray '|' in a value breaks it)."""
    counts: list[int] = []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            counts.append(line.count("|"))
        elif counts:
            if len(set(counts)) != 1:
                return False
            counts = []
    return True


def test_managed_provider_retirement_is_a_risk_only_when_providers_are_allowed():
    allowed = monitoring_plan(config(), REFERENCE, {"base_kind": "hub"})
    cfg = config()
    cfg.compliance.allow_external_providers = False
    refused = monitoring_plan(cfg, REFERENCE, {"base_kind": "hub"})
    assert len(allowed["end_of_life"]) == len(refused["end_of_life"]) + 1


def test_evaluation_summary_reads_the_verdict_and_metric_rows():
    results = {"headline": {"headline_metric": "accuracy"},
               "results": {"verdict": {"verdict": "no_go"},
                           "metrics": {"accuracy": {"fine_tuned": 0.8, "baseline": 0.5, "diff": 0.3, "diff_ci": [0.1, 0.5],
                                                    "significant": True, "n": 40},
                                       "notes": "not a metric row"}}}
    summary = evaluation_summary(results)
    assert summary["verdict"] == "no_go" and summary["n_test"] == 40
    assert [r["metric"] for r in summary["metrics"]] == ["accuracy"]
    assert evaluation_summary({})["verdict"] == "unknown"
