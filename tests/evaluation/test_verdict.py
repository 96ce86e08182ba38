"""Acceptance criteria one by one, the overall verdict and what to do next, on hand-made evidence."""
from __future__ import annotations

import pytest

from ftkit.config import AcceptanceCriterion
from ftkit.errors import ConfigError
from ftkit.evaluation import paired, verdict
from ftkit.metrics.bootstrap import mean_statistic


def _evidence(old: list[int], new: list[int], **extra) -> dict:
    row = paired.compare_statistics(mean_statistic("accuracy", new), mean_statistic("accuracy", old), n_boot=400)
    fmt = paired.compare_statistics(mean_statistic("format_compliance", [1] * len(new)),
                                    mean_statistic("format_compliance", [0] * len(old)), n_boot=400)
    ids = [f"t{i}" for i in range(len(old))]
    return {"headline_metric": "accuracy", "metrics": {"accuracy": row, "format_compliance": fmt},
            "regressions": paired.regressions(ids, old, new), "n_examples": len(old), **extra}


# 100 examples: baseline 40 % right, fine-tuned 75 % (3 regressions, 38 fixes): clearly significant.
OLD = [1] * 37 + [1] * 3 + [0] * 38 + [0] * 22
NEW = [1] * 37 + [0] * 3 + [1] * 38 + [0] * 22


def _row(v: verdict.Verdict, metric: str) -> dict:
    return next(r for r in v.criteria if r["metric"] == metric)


def test_each_criterion_with_evidence_and_go():
    ev = _evidence(OLD, NEW, stops={"fine_tuned": {"runaways": 1, "n": 100}})
    criteria = [AcceptanceCriterion("accuracy", min=0.7), AcceptanceCriterion("format_compliance", min=0.95),
                AcceptanceCriterion("regressions", max=5), AcceptanceCriterion("p_value", max=0.05),
                AcceptanceCriterion("delta_accuracy", min=0.2), AcceptanceCriterion("runaway_rate", max=0.02)]
    v = verdict.decide(criteria, ev)
    assert [r["status"] for r in v.criteria] == ["pass"] * 6
    assert v.verdict == "go" and v.action == "ship"
    acc = _row(v, "accuracy")
    assert acc["value"] == pytest.approx(0.75) and acc["rule"] == ">= 0.7"
    assert acc["margin"] in ("clear", "marginal") and "baseline 0.400" in acc["evidence"]
    assert _row(v, "regressions")["value"] == 3 and "t37, t38, t39" in _row(v, "regressions")["evidence"]
    assert _row(v, "p_value")["value"] < 1e-6 and "McNemar" in _row(v, "p_value")["evidence"]
    assert _row(v, "delta_accuracy")["value"] == pytest.approx(0.35)
    assert "3 regression(s)" in " ".join(v.next_steps)


def test_failing_criterion_gives_no_go_and_iterate_on_data_when_the_gain_is_real():
    ev = _evidence(OLD, NEW)
    v = verdict.decide([{"metric": "accuracy", "min": 0.9}, {"metric": "regressions", "max": 2}], ev)
    assert [r["status"] for r in v.criteria] == ["fail", "fail"]
    assert v.verdict == "no_go" and v.action == "iterate_on_data"
    assert "fine-tuning works" in v.why and "accuracy, regressions" in v.why


def test_margin_marks_a_pass_whose_ci_straddles_the_bar():
    v = verdict.decide([{"metric": "accuracy", "min": 0.74}], _evidence(OLD, NEW))
    row = _row(v, "accuracy")
    assert row["status"] == "pass" and row["margin"] == "marginal" and row["ci"][0] < 0.74 < row["ci"][1]


def test_unmeasured_human_win_rate_is_pending_then_measured():
    ev = _evidence(OLD, NEW)
    v = verdict.decide([{"metric": "accuracy", "min": 0.7}, {"metric": "win_rate", "min": 0.6}], ev)
    assert _row(v, "win_rate")["status"] == "not_measured" and "ab_ratings_dir" in _row(v, "win_rate")["evidence"]
    assert v.verdict == "pending" and v.action == "finish_review"
    ev["human_ab"] = {"n_items": 10, "win_rate": 0.8, "ci": [0.6, 0.95], "items_won": 8, "items_lost": 2,
                      "items_tied": 0, "n_raters": 2}
    v = verdict.decide([{"metric": "win_rate", "min": 0.6}], ev)
    assert v.verdict == "go" and _row(v, "win_rate")["margin"] == "clear"


def test_not_significant_stops_after_the_last_iteration_and_retrains_when_overfitting():
    same = _evidence(OLD, OLD, iteration=3)
    v = verdict.decide([{"metric": "accuracy", "min": 0.7}], same, max_iterations=3)
    assert v.verdict == "no_go" and v.action == "stop" and "3 iteration(s)" in v.why
    early = _evidence(OLD, OLD, iteration=1, training={"overfitting": True, "val_loss_trend": "rising"})
    v = verdict.decide([{"metric": "accuracy", "min": 0.7}], early, max_iterations=3)
    assert v.action == "iterate_on_training" and "overfitting" in v.why
    v = verdict.decide([{"metric": "accuracy", "min": 0.7}], _evidence(OLD, OLD, iteration=1))
    assert v.action == "iterate_on_data" and "not yet significantly better" in v.why


def test_no_criteria_uses_the_defaults_and_says_so():
    v = verdict.decide([], _evidence(OLD, NEW))
    assert v.used_default_criteria and [r["metric"] for r in v.criteria] == ["p_value", "delta"]
    assert v.verdict == "go"
    worse = verdict.decide([], _evidence(NEW, OLD))
    assert worse.verdict == "no_go" and _row(worse, "delta")["status"] == "fail"


def test_unknown_metrics_are_all_reported_with_the_valid_names():
    with pytest.raises(ConfigError) as info:
        verdict.decide([{"metric": "acuracy", "min": 0.8}, {"metric": "accuracy", "min": 0.8},
                        {"metric": "wins", "min": 3}], _evidence(OLD, NEW))
    text = str(info.value)
    assert "acceptance[0].metric: unknown metric 'acuracy'" in text and "acceptance[2]" in text
    assert "acceptance[1]" not in text and "delta_format_compliance" in text and "win_rate" in text


def test_forgetting_and_probe_accuracy_criteria():
    forgetting = {"n": 30, "before": 0.6, "after": 0.5, "drop": 0.1, "lost": [{}] * 4, "gained": [{}],
                  "mcnemar": {"p_value": 0.375}}
    v = verdict.decide([{"metric": "forgetting", "max": 0.05}, {"metric": "probe_accuracy", "min": 0.4}],
                       _evidence(OLD, NEW, forgetting=forgetting))
    assert [r["status"] for r in v.criteria] == ["fail", "pass"]
    assert "4 lost, 1 gained of 30" in _row(v, "forgetting")["evidence"]
