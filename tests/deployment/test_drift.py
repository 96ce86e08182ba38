"""Drift detection: the statistics against scipy, and deliberately shifted production logs against the
training data's reference statistics."""
from __future__ import annotations

import json
import random

import pytest

from deploy_helpers import ticket_records
from ftkit.deployment import drift
from ftkit.deployment.monitoring import LogRow, build_reference, compare_to_reference, read_log
from ftkit.errors import DataError

RECORDS = ticket_records(520)
random.Random(7).shuffle(RECORDS)  # the demo file is not in random order; production is a random draw
TRAIN, HELD_OUT = RECORDS[:400], RECORDS[400:]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from ftkit.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="module")
def reference(tokenizer):
    return build_reference(TRAIN, tokenizer, "structured_output", "category", tokenizer_ref="export/merged")


def rows(records, output=None, user=None, finish_reason="stop") -> list[LogRow]:
    """Log rows as a server would log them: the request's messages and the model's answer."""
    out = []
    for i, r in enumerate(records):
        messages = [dict(m) for m in r["messages"][:-1]]
        if user:
            messages[-1]["content"] = user(messages[-1]["content"])
        answer = output(i, r) if output else r["messages"][-1]["content"]
        out.append(LogRow(i + 1, messages, answer, finish_reason(i) if callable(finish_reason) else finish_reason))
    return out


def statuses(report) -> dict:
    return {f.feature: f.status for f in report.features}


def test_reference_statistics_describe_the_training_data(reference):
    assert reference["n"] == 400 and reference["tokenizer"] == "export/merged"
    assert set(reference["labels"]) >= {"billing", "technical", "account", "shipping", "returns"}
    assert sum(reference["labels"].values()) == 400
    inputs = reference["features"]["input_tokens"]
    assert inputs["n"] == 400 and len(inputs["values"]) == 400 and inputs["summary"]["p50"] > 5


def test_production_like_the_training_data_is_stable(reference, tokenizer):
    report = compare_to_reference(reference, rows(HELD_OUT), tokenizer)
    assert report.status == "stable", report.rows()
    assert report.alerts == [] and all(f.psi < 0.1 for f in report.features)


def test_longer_inputs_raise_an_input_length_alert(reference, tokenizer):
    report = compare_to_reference(reference, rows(HELD_OUT, user=lambda text: " ".join([text] * 4)), tokenizer)
    assert statuses(report)["input tokens"] == "alert"
    assert statuses(report)["output tokens"] == "stable"
    assert report.status == "alert" and "input tokens" in report.alerts[0]


def test_a_shifted_label_mix_raises_a_label_alert(reference, tokenizer):
    # 80 % of production tickets are now about billing (the reference has ~20 %)
    answer = lambda i, r: '{"category": "billing", "priority": "high"}' if i % 5 else r["messages"][-1]["content"]
    report = compare_to_reference(reference, rows(HELD_OUT, output=answer), tokenizer)
    label = next(f for f in report.features if f.feature == "label mix")
    assert label.status == "alert" and label.psi > 0.25 and label.p_value < 0.01


def test_answers_without_a_label_count_as_drift(reference, tokenizer):
    answer = lambda i, r: "Sorry, I cannot help with that." if i % 3 == 0 else r["messages"][-1]["content"]
    report = compare_to_reference(reference, rows(HELD_OUT, output=answer), tokenizer)
    assert statuses(report)["label mix"] == "alert"


def test_runaway_answers_raise_an_alert(reference, tokenizer):
    report = compare_to_reference(reference, rows(HELD_OUT, finish_reason=lambda i: "length" if i % 10 == 0 else "stop"),
                                  tokenizer)
    assert report.runaway_share == pytest.approx(0.1, abs=0.01)
    assert any("max_tokens" in a for a in report.alerts)


def test_too_few_rows_give_no_verdict(reference, tokenizer):
    report = compare_to_reference(reference, rows(HELD_OUT[:10], user=lambda t: t * 5), tokenizer)
    assert report.status == "too_few" and report.alerts == [] and "at least 30" in report.notes[0]


def test_bad_log_lines_are_all_reported_with_line_numbers(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}], "output": "{}"})
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([good, "{not json", json.dumps([1]), json.dumps({"messages": []}),
                               json.dumps({"input": "hi"}), "", good]) + "\n")
    with pytest.raises(DataError) as info:
        read_log(path)
    text = str(info.value)
    assert "4 of 6 lines" in text
    assert "line 2: not valid JSON" in text and "line 3: expected a JSON object" in text
    assert "line 4: needs 'output'" in text and "line 5: needs 'output'" in text


def test_log_input_shorthand_and_missing_file(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps({"input": "my parcel is late", "output": "{}", "finish_reason": "stop"}) + "\n")
    [row] = read_log(path)
    assert row.messages == [{"role": "user", "content": "my parcel is late"}] and row.finish_reason == "stop"
    with pytest.raises(DataError, match="does not exist"):
        read_log(tmp_path / "missing.jsonl")


def test_statistics_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    a, b = [rng.gauss(0, 1) for _ in range(300)], [rng.gauss(0.3, 1) for _ in range(200)]
    d, p = drift.ks_two_sample(a, b)
    expected = stats.ks_2samp(a, b)
    assert d == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue, rel=1e-12)
    small = [1, 2, 2, 3, 5], [2, 4, 4, 6, 7, 9]  # integer lengths with ties: exact p-value, not the asymptote
    assert drift.ks_two_sample(*small)[1] == pytest.approx(stats.ks_2samp(*small).pvalue, rel=1e-12)
    for x, dof in [(0.5, 1), (3.0, 2), (10.0, 3), (50.0, 40), (100.0, 60)]:
        assert drift.chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9)
    observed, shares = {"a": 30, "b": 50, "c": 20}, {"a": 0.25, "b": 0.5, "c": 0.25}
    stat, dof, p = drift.chi_square_gof(observed, shares)
    ref = stats.chisquare([30, 50, 20], [25, 50, 25])
    assert (stat, dof) == (pytest.approx(ref.statistic), 2) and p == pytest.approx(ref.pvalue)


def test_psi_by_hand():
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.2351 + 0.6438
    assert drift.psi([0.9, 0.1], [0.5, 0.5]) == pytest.approx(0.4 * 0.5877867 + 0.4 * 1.6094379)
    assert drift.bin_shares([1, 2, 3, 10], [2, 5]) == [0.5, 0.25, 0.25]
