"""The data audit's section rules (ftkit/data/phase.py) on both sides of their named thresholds, the verdict
decided once, and the typed DataAuditResults. The checks behind the issues are tested per check elsewhere."""
from __future__ import annotations

import ast
import json
from types import SimpleNamespace

import pytest

from ftkit.data import phase
from ftkit.findings import Finding
from ftkit.resources import notebooks_dir


def stats(ratio=1.0, distinct=1):
    return {"labels": {"n_labels": 2, "imbalance_ratio": ratio, "largest": "a", "smallest": "b",
                       "counts": {"a": int(10 * ratio), "b": 10}},
            "system_prompts": {"distinct": distinct, "top": [{"count": 50}]}, "scripts": {"Latin": 100},
            "answer_chars": {"p50": 40.0, "p90": 80.0, "max": 120}}


def config(task_type="classification", label_field=""):
    return SimpleNamespace(task=SimpleNamespace(type=task_type, label_field=label_field))


def by_code(findings, code):
    return next(f for f in findings if f[1] == code)


@pytest.mark.parametrize("ratio,severity", [(phase.IMBALANCE_WARN - 0.5, "info"), (phase.IMBALANCE_WARN, "warning")])
def test_imbalance_warns_from_the_ratio(ratio, severity):
    found = phase.consistency_findings(SimpleNamespace(stats=stats(ratio=ratio)), config())
    assert by_code(found, "data.imbalance")[0] == severity


@pytest.mark.parametrize("distinct,severity", [(1, None), (phase.SYSTEM_PROMPTS_WARN, "info"),
                                               (phase.SYSTEM_PROMPTS_WARN + 1, "warning")])
def test_system_prompts_rule(distinct, severity):
    found = phase.consistency_findings(SimpleNamespace(stats=stats(distinct=distinct)), config())
    codes = {f[1]: f[0] for f in found}
    assert codes.get("data.system_prompts") == severity


def test_no_labels_warns_only_when_labels_are_expected():
    s = {**stats(), "labels": {"n_labels": 0}}
    assert "data.no_labels" in {f[1] for f in phase.consistency_findings(SimpleNamespace(stats=s), config())}
    assert "data.no_labels" not in {f[1] for f in phase.consistency_findings(SimpleNamespace(stats=s), config("chat"))}


def audit(n_ok, n_label_errors, lengths=None):
    metas = [{"valid": True, "n_tokens": t} for t in (lengths or [100] * n_ok)]
    issues = [SimpleNamespace(code="labels.empty") for _ in range(n_label_errors)]
    return SimpleNamespace(metas=metas, issues=issues)


def test_label_coverage_info_warning_blocking():
    assert by_code(phase.token_findings(audit(10, 0), 256), "data.label_coverage")[0] == "info"
    assert by_code(phase.token_findings(audit(10, 9), 256), "data.label_coverage")[0] == "warning"
    # the blocking share: as many broken examples as good ones (0.5 of all)
    assert by_code(phase.token_findings(audit(10, 10), 256), "data.label_coverage")[0] == "blocking"


def test_lengths_info_until_an_example_exceeds_max_seq_length():
    assert by_code(phase.token_findings(audit(3, 0, [100, 200, 256]), 256), "data.lengths")[0] == "info"
    long = by_code(phase.token_findings(audit(3, 0, [100, 200, 257]), 256), "data.too_long")
    assert long[0] == "warning" and "1 examples (33.3 %) exceed max_seq_length 256" in long[2]


def counts(train=80, validation=10, test=10):
    return SimpleNamespace(split_counts=lambda: {"train": train, "validation": validation, "test": test})


def test_verdict_counts_every_finding_including_the_last_sections():
    cfg = SimpleNamespace(data=SimpleNamespace(min_examples=50))
    assert phase.verdict(counts(), cfg, [Finding("info", "data.splits", "x")])["verdict"] == "ready"
    late = [Finding("info", "data.splits", "x"), Finding("warning", "data.prices_stale", "old prices")]
    assert phase.verdict(counts(), cfg, late)["verdict"] == "ready_with_warnings"
    blocked = phase.verdict(counts(train=20, validation=5), cfg, late)
    assert blocked["verdict"] == "blocked" and "data.min_examples is 50" in blocked["blocking_reasons"][0]
    assert phase.verdict(counts(test=0), cfg, [])["blocking_reasons"] == [
        "the test split is empty, so nothing can be evaluated"]


def test_the_notebook_decides_the_verdict_once_after_every_section():
    """The data card used to be written with a verdict taken before the split and cost findings, so it could
    say 'ready' while results.json said 'ready_with_warnings'."""
    cells = [c for c in json.loads((notebooks_dir() / "02_data_audit.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    calls = [(i, n) for i, c in enumerate(cells) for n in ast.walk(ast.parse("".join(c["source"])))
             if isinstance(n, ast.Call) and getattr(n.func, "attr", "") in ("verdict", "write_outputs", "record")]
    verdicts = [i for i, n in calls if n.func.attr == "verdict"]
    assert len(verdicts) == 1
    assert verdicts[0] > max(i for i, n in calls if n.func.attr == "record")  # after every section's findings
    assert verdicts[0] <= min(i for i, n in calls if n.func.attr == "write_outputs")  # before the data card


def test_results_tell_client_and_blocking():
    r = phase.DataAuditResults(verdict="blocked", blocking_reasons=["too few", "no test"],
                               stats={"n_valid": 5, "n_records": 9, "n_errors": 4, "n_warnings": 1},
                               issue_counts={}, splits={"train": 5}, cost={}, files={}, max_seq_length_suggested=256)
    assert r.headline_row() == {"verdict": "blocked", "n_valid": 5, "n_train": 5, "n_test": 0}
    assert phase.what_to_tell_the_client(r) == ("The data cannot be used yet: too few; no test. 4 errors and 1 "
                                                "warnings are listed line by line in issues.csv.")
    assert phase.blocks_downstream(r) == "too few; no test" and len(phase.next_steps(r)) == 1
    ok = phase.DataAuditResults(**{**r.to_results(), "verdict": "ready", "blocking_reasons": []})
    assert phase.blocks_downstream(ok) == "" and phase.summary(ok) == "5 of 9 records valid; verdict ready."
