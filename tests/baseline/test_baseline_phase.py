"""The baseline phase's own findings (ftkit/baseline/phase.py) on both sides of each rule, and its typed
results' headline. The metric findings it shares with the evaluation are tested in tests/test_metrics.py."""
from __future__ import annotations

from ftkit.baseline import phase


def test_subset_warns_full_split_is_info():
    part = phase.split_finding(12, 68, 12)
    full = phase.split_finding(68, 68, 0)
    assert (part.severity, part.code) == ("warning", "baseline.subset") and "baseline.max_examples: 0" in part.next_step
    assert (full.severity, full.code, full.message) == ("info", "baseline.test_split", "Scoring all 68 test examples.")


def test_prompt_finding_names_shots_tokens_and_template():
    f = phase.prompt_finding(["t1", "t2"], 310, "a" * 64)
    assert f.message == "2-shot prompt (shots: t1, t2), 310 tokens for the first test example; template sha256 aaaaaaaaaaaa."
    endpoint = phase.prompt_finding([], 0, "")
    assert endpoint.message == "0-shot prompt (shots: none), template sha256 (endpoint)."


def test_tiny_model_warns_only_for_the_test_model():
    assert phase.tiny_model_finding({"name": "real", "is_tiny_random": False}) is None
    assert phase.tiny_model_finding({"name": "tiny", "is_tiny_random": True}).severity == "warning"


def test_candidates_recommendation_and_skipped_ones_warn():
    found = phase.candidates_findings({"recommended": "m1", "reason": "smallest."}, {"m2": "not cached"})
    assert [(f.severity, f.code) for f in found] == [("info", "baseline.candidates"),
                                                      ("warning", "baseline.candidate_skipped")]
    assert phase.candidates_findings({"recommended": "m1", "reason": "x"}, {})[1:] == []


def test_failures_finding_counts():
    assert phase.failures_finding(5, 12, "accuracy", 8).message == (
        "5 of 12 answers score below 1 on accuracy; the table shows the 8 lowest.")


def test_results_headline_comes_from_the_metrics():
    r = phase.BaselineResults(model={"name": "m"}, prompt={"n_shots": 1}, generation={}, metrics={
        "n": 12, "headline": {"name": "accuracy", "value": 0.5, "ci_low": 0.2, "ci_high": 0.8}},
        failure_examples=[], candidates=None, files={})
    assert r.headline_row() == {"model": "m", "headline_metric": "accuracy", "headline_value": 0.5, "ci_low": 0.2,
                                "ci_high": 0.8, "n_test": 12}
    assert (r.headline_metric, r.headline_value) == ("accuracy", 0.5)


def test_models_imports_nothing_from_the_floors_above():
    """Baseline policy (candidate selection) moved out of ftkit/models/, which imported generation and metrics."""
    import ast
    from pathlib import Path

    import ftkit

    above = ("ftkit.generation", "ftkit.metrics", "ftkit.evaluation", "ftkit.deployment", "ftkit.baseline")
    bad = []
    for path in (Path(ftkit.__file__).parent / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            bad += [f"{path.name}: {n}" for n in names if n.startswith(above)]
    assert bad == []
    assert not (Path(ftkit.__file__).parent / "models" / "selection.py").exists()


def fake_report(runaway=0.0, fmt=1.0, width=0.1, per_class=None, name="accuracy"):
    from types import SimpleNamespace

    values = {"runaway_rate": runaway, "format_compliance": fmt}
    return SimpleNamespace(ids=list(range(100)), value=values.__getitem__, details={"per_class": per_class or {}},
                           headline={"name": name, "value": 0.5, "ci_low": 0.5 - width / 2, "ci_high": 0.5 + width / 2})


def test_shared_metric_findings_on_both_sides_of_their_thresholds():
    from ftkit.metrics import findings as mf

    assert mf.stop_behaviour(fake_report(runaway=mf.RUNAWAY_WARN), 32)[0] == "info"
    assert mf.stop_behaviour(fake_report(runaway=mf.RUNAWAY_WARN + 0.01), 32)[0] == "warning"
    assert mf.format_compliance(fake_report(fmt=mf.FORMAT_WARN))[0] == "info"
    assert mf.format_compliance(fake_report(fmt=mf.FORMAT_WARN - 0.01))[0] == "warning"
    assert mf.precision_of_estimate(fake_report(width=mf.WIDE_CI)) is None
    assert mf.precision_of_estimate(fake_report(width=mf.WIDE_CI + 0.02))[1] == "baseline.small_test_set"
    assert mf.precision_of_estimate(fake_report(width=0.5, name="chrf")) is None  # corpus metrics: no per-item CI rule
    one = {"a": {"recall": 0.2, "support": 5}}
    assert mf.weakest_class(fake_report(per_class=one)) is None
    two = {**one, "b": {"recall": 0.9, "support": 7}}
    assert "'a': 20.0 % of its 5" in mf.weakest_class(fake_report(per_class=two))[2]
