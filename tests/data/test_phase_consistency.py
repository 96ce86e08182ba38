"""Issue 15's consistency items in the data audit phase's section functions: the stale price table stays out of
the data verdict, balanced labels say so, an empty duplicates chart says 'none', a small test split and empty
settings are flagged."""
from __future__ import annotations

from ftkit.config import parse_config
from ftkit.data import phase
from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.record_checks import TaskContext
from ftkit.findings import Finding

from data_helpers import chat, distinct_tickets


def _config(**data):
    base = {"client": {"name": "Acme"}, "objective": "Route support tickets.", "task": {"type": "chat", "system_prompt": "Be brief."},
            "data": {"min_examples": 1}}
    base.update(data)
    return parse_config(base)


def _result(write_jsonl, records, **kw):
    return audit_files([write_jsonl(records)], AuditOptions(**kw))


def test_stale_prices_stay_in_the_cost_section_not_the_data_verdict(write_jsonl):
    result = _result(write_jsonl, distinct_tickets(30))
    try:
        cost = {"managed": [{"usd": 1, "provider": "p", "model": "m", "epochs": 3}], "training_tokens_per_epoch": 10,
                "prices_as_of": "2020-01-01", "prices_stale": True, "prices_age_days": 900}
        stale = [Finding(*f) for f in phase.cost_findings(cost)]
        assert any(f.code == "data.prices_stale" and f.severity == "warning" for f in stale)  # still shown
        assert phase.verdict(result, _config(), stale)["verdict"] == "ready"
        data_warning = Finding("warning", "data.exact_duplicates", "2 copies")
        assert phase.verdict(result, _config(), stale + [data_warning])["verdict"] == "ready_with_warnings"
    finally:
        result.close()


def test_balanced_labels_are_called_balanced(write_jsonl):
    records = [chat(f"ticket {i} about things number {i * 31}", ("positive", "negative")[i % 2]) for i in range(20)]
    result = _result(write_jsonl, records, task=TaskContext("classification"))
    try:
        config = _config(task={"type": "classification", "system_prompt": "Label it."})
        text = next(f[2] for f in phase.consistency_findings(result, config) if f[1] == "data.imbalance")
        assert text == "2 labels, balanced: 10 examples each." and "1.0x" not in text
    finally:
        result.close()


def test_small_test_split_is_a_warning_and_a_large_one_is_not(write_jsonl):
    small = _result(write_jsonl, distinct_tickets(60), split={"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 1})
    try:
        found = {f[1]: f for f in phase.splits_findings(small)}
        assert found["data.small_test"][0] == "warning" and "+-" in found["data.small_test"][2]
    finally:
        small.close()
    big = _result(write_jsonl, distinct_tickets(400), split={"train": 0.5, "validation": 0.0, "test": 0.5, "seed": 1})
    try:
        assert "data.small_test" not in {f[1] for f in phase.splits_findings(big)}
    finally:
        big.close()


def test_empty_objective_and_system_prompt_are_flagged(write_jsonl):
    result = _result(write_jsonl, distinct_tickets(5))
    try:
        codes = {f[1] for f in phase.consistency_findings(result, _config(objective="", task={"type": "chat", "system_prompt": " "}))}
        assert {"data.no_objective", "data.no_system_prompt"} <= codes
        assert not {"data.no_objective", "data.no_system_prompt"} & {f[1] for f in phase.consistency_findings(result, _config())}
    finally:
        result.close()


def test_empty_duplicates_chart_says_none(write_jsonl):
    result = _result(write_jsonl, distinct_tickets(5))
    try:
        fig = phase.duplicates_figure(result)
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert texts == ["Duplicates and leakage: none"]
    finally:
        result.close()
