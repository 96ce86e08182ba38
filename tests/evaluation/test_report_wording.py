"""Tables, side-by-side picks, findings and client wording are computed from the numbers."""
from __future__ import annotations

from types import SimpleNamespace

from ftkit.evaluation import paired, presentation, verdict
from ftkit.metrics.bootstrap import mean_statistic

OLD = [0] * 30 + [1] * 10
NEW = [1] * 30 + [1] * 8 + [0] * 2  # 30 fixes, 2 regressions


def _rows(old=OLD, new=NEW) -> dict:
    return {"accuracy": paired.compare_statistics(mean_statistic("accuracy", new), mean_statistic("accuracy", old),
                                                  n_boot=300)}


def test_table_and_comparison_finding_follow_the_numbers():
    rows = _rows()
    [line] = presentation.table_rows(rows)
    assert line["baseline"].startswith("0.250 [") and line["fine-tuned"].startswith("0.950 [")
    assert line["difference"].startswith("+0.700") and line["test"] == "McNemar" and line["significant"] == "yes"
    severity, code, message, _ = presentation.comparison_finding(rows, "accuracy", 40)
    assert (severity, code) == ("info", "evaluation.better") and "0.250 to 0.950" in message
    assert "p = 1.8e-06" in message  # McNemar's chi-square, b = 2, c = 30: (28 - 1)^2 / 32 = 22.8
    severity, code, _, step = presentation.comparison_finding(_rows(NEW, OLD), "accuracy", 40)
    assert (severity, code) == ("blocking", "evaluation.worse") and "Do not ship" in step
    assert presentation.comparison_finding(_rows(OLD, OLD), "accuracy", 40)[1] == "evaluation.not_significant"


def test_side_by_side_shows_gains_then_regressions_then_unchanged():
    ids = [f"t{i}" for i in range(len(OLD))]
    preds = lambda tag: [SimpleNamespace(id=i, output=f"{tag} {i}", reference="ref") for i in ids]  # noqa: E731
    records = [{"messages": [{"role": "user", "content": f"input {i}"}]} for i in ids]
    shown = presentation.side_by_side(records, preds("old"), preds("new"), OLD, NEW, k=8, metric="accuracy")
    assert [s["change"] for s in shown] == ["better"] * 4 + ["worse", "worse"] + ["same"] * 2
    assert shown[4]["id"] == "t38" and shown[4]["baseline"] == "old t38" and shown[4]["input"] == "input t38"


def test_client_wording_reflects_verdict_forgetting_and_runaways():
    rows = _rows()
    evidence = {"headline_metric": "accuracy", "metrics": rows, "n_examples": 40,
                "regressions": paired.regressions([str(i) for i in range(40)], OLD, NEW)}
    go = verdict.decide([{"metric": "accuracy", "min": 0.9}], evidence)
    text = presentation.tell_client(go, rows, "accuracy", 40, {"drop": 0.2, "before": 0.6, "after": 0.4},
                              {"runaways": 0, "n": 40})
    assert "95.0% accuracy against 25.0%" in text and "significant" in text and "meets 1 of the 1" in text
    assert "going ahead" in text and "60% -> 40%" in text and "did not stop" not in text
    no_go = verdict.decide([{"metric": "accuracy", "min": 0.99}], evidence)
    text = presentation.tell_client(no_go, rows, "accuracy", 40, None, {"runaways": 3, "n": 40})
    assert "not ready" in text and "3 of 40 answers did not stop" in text


def test_few_shot_baseline_prompt_is_flagged():
    assert presentation.prompt_mismatch_finding(0) is None
    severity, code, message, step = presentation.prompt_mismatch_finding(3)
    assert severity == "warning" and "3 few-shot" in message and "baseline.shots: 0" in step
