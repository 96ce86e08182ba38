"""Every finding rule of ftkit/evaluation/phase.py, on both sides of its threshold (no model needed)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ftkit.evaluation import phase as ev


def runaways(n, k):
    return {"n": n, "runaways": k, "rate": k / n}


def test_fine_tuned_runaways_info_at_the_threshold_and_warning_above():
    n = 100
    at = ev.runaway_finding(runaways(n, round(ev.FINE_TUNED_RUNAWAY_WARN * n)), runaways(n, 50), 64)
    above = ev.runaway_finding(runaways(n, round(ev.FINE_TUNED_RUNAWAY_WARN * n) + 1), runaways(n, 50), 64)
    assert (at.severity, at.next_step) == ("info", "")
    assert above.severity == "warning" and "end-of-turn" in above.next_step
    assert at.code == above.code == "evaluation.runaways"
    assert "3 of 100 fine-tuned answers ran to max_new_tokens = 64" in above.message and "baseline: 50" in above.message


def wlt(n):
    return {"wins": 10, "losses": 2, "ties": n - 12, "n": n}


def test_regressions_warn_above_the_share_and_tolerate_one():
    n = 100
    limit = int(ev.REGRESSION_SHARE_WARN * n)
    regs = [{"id": f"r{i}"} for i in range(limit + 1)]
    assert ev.regressions_finding(wlt(n), regs[:limit], n, "accuracy").severity == "info"
    over = ev.regressions_finding(wlt(n), regs, n, "accuracy")
    assert over.severity == "warning" and "e.g. r0, r1, r2." in over.message and over.next_step
    # on a tiny test set one regression is always tolerated (5 % of 4 examples is 0.2)
    assert ev.regressions_finding(wlt(20), regs[:1], 4, "accuracy").severity == "info"
    assert ev.regressions_finding(wlt(20), regs[:2], 4, "accuracy").severity == "warning"
    none = ev.regressions_finding(wlt(n), [], n, "accuracy")
    assert none.message.endswith("0 regression(s).") and none.next_step == ""


def forget(drop):
    return {"before": 0.8, "after": 0.8 - drop, "drop": drop, "lost": [1] * 3, "gained": [], "n": 20,
            "mcnemar": {"p_value": 0.25}}


def test_forgetting_warns_only_above_the_drop_threshold():
    at = ev.forgetting_finding(forget(ev.FORGETTING_DROP_WARN))
    above = ev.forgetting_finding(forget(ev.FORGETTING_DROP_WARN + 0.01))
    assert (at.severity, at.next_step) == ("info", "")
    assert above.severity == "warning" and "general instruction data" in above.next_step
    assert "80% right before fine-tuning" in at.message


def test_serving_stop_blocks_when_the_end_of_turn_id_is_not_served():
    ok = ev.serving_stop_finding({"end_of_turn": "<|im_end|>", "end_of_turn_id": 2, "served_stop_ids": [2], "ok": True})
    bad = ev.serving_stop_finding({"end_of_turn": "<|im_end|>", "end_of_turn_id": 2, "served_stop_ids": [0], "ok": False})
    assert ok.severity == "info" and " NOT " not in ok.message
    assert bad.severity == "blocking" and "is NOT among" in bad.message and "eos_token_id" in bad.next_step


def test_round_trip_blocks_on_any_failure():
    ok = ev.round_trip_finding({"checked": 5, "failures": [], "end_of_turn": "<|im_end|>"})
    bad = ev.round_trip_finding({"checked": 5, "failures": [{"problem": "extra newline"}], "end_of_turn": "<|im_end|>"})
    assert ok.severity == "info" and "5 of 5" in ok.message
    assert bad.severity == "blocking" and "4 of 5" in bad.message and bad.next_step.endswith("extra newline")


def health(trend, overfit, n=3):
    return {"val_loss_trend": trend, "overfitting": overfit, "n_validations": n, "first_val_loss": 2.0,
            "final_val_loss": 1.5}


@pytest.mark.parametrize("trend,overfit,severity", [("falling", False, "info"), ("falling", True, "warning"),
                                                    ("flat", False, "warning"), ("rising", False, "warning")])
def test_training_health_is_info_only_when_falling_without_overfitting(trend, overfit, severity):
    f = ev.training_health_finding(health(trend, overfit))
    assert f.severity == severity and f.code == "evaluation.training_health"
    assert ("flagged overfitting" in f.message) == overfit
    assert "(2.000 -> 1.500)" in f.message
    assert "->" not in ev.training_health_finding(health(trend, overfit, n=0)).message


def test_metric_drift_only_beyond_the_tolerance():
    assert ev.metric_drift_finding(None, 0.5, "accuracy") is None
    assert ev.metric_drift_finding(0.5, 0.5 + ev.METRIC_DRIFT_TOLERANCE / 2, "accuracy") is None
    drift = ev.metric_drift_finding(0.5, 0.52, "accuracy")
    assert drift.severity == "warning" and "0.5200" in drift.message and drift.next_step == "Re-run the baseline."


def test_tiny_model_and_same_prompts_and_judge():
    assert ev.tiny_model_finding(False) is None
    assert ev.tiny_model_finding(True).severity == "warning"
    same = ev.same_prompts_finding(12, "abcdef1234567890")
    assert same.severity == "info" and "All 12 prompts" in same.message and "abcdef123456)" in same.message
    assert "sha256 n/a" in ev.same_prompts_finding(3, "").message
    assert ev.judge_finding(None) is None
    judged = {"model": "judge-m", "win_rate": 0.7, "n_items": 8, "unparsed": [1], "prompt": {"sha256": "f" * 64}}
    assert "win rate 0.70 on 8 items (1 unusable" in ev.judge_finding(judged).message


def test_iterations_finding_needs_an_earlier_iteration():
    this = {"iteration": 2, "accuracy": "0.700", "newest minus this": "-"}
    assert ev.iterations_finding([this], "accuracy") is None
    prev = {"iteration": 1, "accuracy": "0.600", "newest minus this": "+0.100 [+0.000, +0.200]"}
    f = ev.iterations_finding([this, prev], "accuracy")
    assert f.message == "Iteration 2 vs iteration 1: accuracy 0.600 -> 0.700 (difference +0.100 [+0.000, +0.200])."


def test_ab_sheet_until_ratings_arrive_then_human_ab():
    key = {"sheet_id": "S1", "n_items": 8, "n_identical_excluded": 2}
    sheet = ev.human_ab_finding(None, key, "ab_ratings")
    assert sheet.code == "evaluation.ab_sheet" and "ab_ratings/" in sheet.next_step
    human = {"n_raters": 2, "n_items": 8, "win_rate": 0.75, "ci": [0.6, 0.9], "agreement": {"kappa": 0.5, "band": "moderate"}}
    rated = ev.human_ab_finding(human, key, "ab_ratings")
    assert rated.code == "evaluation.human_ab" and "kappa = 0.50 (moderate)" in rated.message


def decision(verdict, criteria=(), defaults=False, action="ship"):
    return SimpleNamespace(verdict=verdict, action=action, why="because.", criteria=list(criteria),
                           used_default_criteria=defaults)


@pytest.mark.parametrize("verdict,severity", [("go", "info"), ("pending", "warning"), ("no_go", "blocking")])
def test_verdict_severity(verdict, severity):
    [f] = ev.verdict_findings(decision(verdict))
    assert f.severity == severity and f.message.startswith(f"Verdict: {verdict.upper().replace('_', '-')} -> ship.")


def test_criteria_findings_fail_blocks_marginal_warns_pass_is_silent():
    crit = [{"metric": "accuracy", "rule": ">= 0.8", "status": "fail", "margin": "", "evidence": "0.7 < 0.8", "ci": None},
            {"metric": "delta", "rule": ">= 0", "status": "pass", "margin": "marginal", "evidence": "", "ci": [-0.01, 0.1]},
            {"metric": "p_value", "rule": "<= 0.05", "status": "pass", "margin": "clear", "evidence": "", "ci": None}]
    found = ev.verdict_findings(decision("no_go", crit, defaults=True))
    assert [(f.severity, f.code) for f in found] == [
        ("warning", "evaluation.no_criteria"), ("blocking", "evaluation.criterion.accuracy"),
        ("warning", "evaluation.criterion.delta"), ("blocking", "evaluation.verdict")]
    assert "-0.010-0.100 straddles the bar" in found[2].message
