"""The deployment plan's findings (ftkit/deployment/phase.py) on both sides of each rule, and its typed results."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ftkit.deployment import phase


def test_verdict_go_is_info_anything_else_warns():
    assert phase.verdict_finding("go").severity == "info"
    for verdict in ("pending", "no_go", "unknown"):
        f = phase.verdict_finding(verdict)
        assert f.severity == "warning" and f"'{verdict}'" in f.message and "after a go" in f.next_step


def test_test_model_warns_only_for_the_tiny_model():
    assert phase.test_model_finding({"is_tiny_random": False}) is None
    f = phase.test_model_finding({"is_tiny_random": True, "note": "random weights"})
    assert (f.severity, f.message) == ("warning", "random weights")


def comparison(stage, passed):
    return SimpleNamespace(stage=stage, passed=passed, mean_kl=1e-6, kl_tolerance=1e-3, top1_agreement=1.0,
                           greedy_identical=4, n_prompts=4, template_identical=passed)


def test_export_equivalent_is_info_a_failed_stage_blocks():
    good = SimpleNamespace(passed=True, kind="merged", dtype="bf16", size_mb=272.6,
                           comparisons=[comparison("merge", True), comparison("reload", True)])
    bad = SimpleNamespace(passed=False, kind="merged", dtype="bf16", size_mb=272.6,
                          comparisons=[comparison("merge", True), comparison("reload (bf16)", False)])
    ok = phase.export_finding(good)
    assert (ok.severity, ok.code) == ("info", "deployment.export_equivalent") and "4 of 4 prompts" in ok.message
    fail = phase.export_finding(bad)
    assert (fail.severity, fail.code) == ("blocking", "deployment.export_not_equivalent")
    assert "at: reload (bf16) (" in fail.message and "Do not hand it over" in fail.next_step


def smoke(*finish, malformed=400):
    return [{"status": 200, "finish_reason": f} for f in finish] + [{"status": malformed, "finish_reason": None}]


@pytest.mark.parametrize("rows,severity", [
    (smoke("stop", "stop"), "info"),
    (smoke("stop", "length"), "warning"),  # one answer ran to max_tokens
    (smoke("stop", "stop", malformed=200), "warning"),  # the malformed request was accepted
])
def test_uat_endpoint_rule(rows, severity):
    f = phase.uat_finding(rows, "acme")
    assert f.severity == severity and f.next_step == ("Issue each tester a token (ftkit serve acme --issue-token NAME), "
                                                      "then start it: ftkit serve acme --port 8000")


def test_configs_with_a_known_family_else_the_ollama_warning():
    ok = phase.configs_finding(SimpleNamespace(name="chatml"), 4, ["<|im_end|>"])
    assert (ok.severity, ok.code) == ("info", "deployment.configs") and "chatml chat template" in ok.message
    unknown = phase.configs_finding(None, 4, [])
    assert (unknown.severity, unknown.code) == ("warning", "deployment.ollama_template")


def test_monitoring_warns_on_an_unpinned_base():
    reference = {"n": 529, "features": {"input_tokens": {"summary": {"p50": 41.0}}}, "labels": ["a", "b"]}
    plan = {"retraining": {"next_due": "2027-06-01"}, "base_model_pinned": True}
    [pinned] = phase.monitoring_findings(6, plan, reference, "acme", "smollm2")
    assert pinned.code == "deployment.retraining" and "529 training examples (median input 41 tokens, 2 labels)" in \
        pinned.message
    found = phase.monitoring_findings(6, {**plan, "base_model_pinned": False}, reference, "acme", "smollm2")
    assert [(f.severity, f.code) for f in found] == [("info", "deployment.retraining"),
                                                      ("warning", "deployment.unpinned_base")]


def results(verdict="go", passed=True):
    return phase.DeploymentPlanResults(
        evaluation={"verdict": verdict}, export={"passed": passed, "kind": "merged", "dtype": "bf16"}, uat_smoke_test=[],
        sizing={"gpu_label": "A10", "memory": {"dtype": "bf16"}}, cost={"self_hosted": {"usd": 547.499}},
        price_sources=[], serving_configs=[], monitoring_plan={"retraining": {"next_due": "2027-06-01"}},
        model_name="acme-ft")


def test_go_live_needs_a_go_and_a_passed_export():
    assert results().ready_to_go_live
    assert not results("pending").ready_to_go_live and not results(passed=False).ready_to_go_live
    assert results().headline_row() == {"serving": "A10, bf16", "monthly_cost_usd": 547.5}
    assert phase.next_steps(results(), "acme")[-1] == "Retrain by 2027-06-01 or on a drift alert"
    assert phase.next_steps(results("no_go"), "acme")[0].startswith("Follow the evaluation's next steps")


def test_evaluation_summary_reads_the_typed_evaluation():
    ev = SimpleNamespace(decision="go", headline_metric="accuracy", metrics={
        "accuracy": {"fine_tuned": 0.7, "baseline": 0.5, "diff": 0.2, "diff_ci": [0.1, 0.3], "significant": True, "n": 68},
        "broken": {"fine_tuned": None}})
    s = phase.evaluation_summary(ev)
    assert s["verdict"] == "go" and [r["metric"] for r in s["metrics"]] == ["accuracy"] and s["n_test"] == 68
