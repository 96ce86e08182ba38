"""Every metric against values computed by hand on small fixtures."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ftkit.config import TaskSettings
from ftkit.errors import ConfigError
from ftkit.fsutil import atomic_write_json
from ftkit.generation import Prediction
from ftkit.metrics import bootstrap, evaluate, failure_examples, paired_bootstrap
from ftkit.metrics.bootstrap import mean_statistic, percentile_statistic
from ftkit.metrics.classification import INVALID, parse_label
from ftkit.metrics.schema import make_validator, schema_errors


def pred(i, output, reference, label=None, hit=False, latency=1.0, n_out=5):
    return Prediction(str(i), f"sha{i}", output, reference, 10, n_out, latency, hit, label)


# -- classification -------------------------------------------------------------------------------
CLS = [pred(0, "a", "a"), pred(1, "b", "a"), pred(2, "b", "b"), pred(3, "B.", "b"), pred(4, "no idea", "c")]


def test_classification_accuracy_macro_f1_per_class_and_confusion_by_hand():
    report = evaluate(CLS, TaskSettings(type="classification"))
    # predictions a, b, b, b, (invalid) vs references a, a, b, b, c -> 3 of 5 right
    assert report.value("accuracy") == pytest.approx(0.6)
    # a: tp1 fp0 fn1 -> F1 2/3; b: tp2 fp1 fn0 -> F1 0.8; c: tp0 fn1 -> F1 0; macro = (2/3 + 0.8 + 0) / 3
    assert report.value("macro_f1") == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    per_class = report.details["per_class"]
    assert per_class["a"]["precision"] == 1.0 and per_class["a"]["recall"] == 0.5
    assert per_class["b"]["precision"] == pytest.approx(2 / 3) and per_class["b"]["recall"] == 1.0
    assert per_class["c"]["precision"] is None and per_class["c"]["recall"] == 0.0
    assert report.details["confusion"] == {"labels": ["a", "b", "c"], "columns": ["a", "b", "c", INVALID],
                                           "matrix": [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]]}
    # "B." is exactly a label up to case and punctuation; "no idea" is not
    assert report.value("format_compliance") == pytest.approx(4 / 5)
    assert report.headline["name"] == "accuracy"


def test_classification_uses_the_record_label_over_the_reference_text():
    rows = [pred(0, "spam", "Yes, this is spam", label="spam"), pred(1, "ham", "not spam", label="ham")]
    report = evaluate(rows, TaskSettings(type="classification", labels=["spam", "ham"]))
    assert report.value("accuracy") == 1.0


@pytest.mark.parametrize("output, expected", [
    ("Billing", ("billing", True)),
    ('{"category": "shipping"}', ("shipping", False)),
    ("It is about shipping, I think.", ("shipping", False)),
    ("billing and shipping", (INVALID, False)),
    ("", (INVALID, False)),
])
def test_parse_label(output, expected):
    assert parse_label(output, ["billing", "shipping"]) == expected


# -- structured output ----------------------------------------------------------------------------
SCHEMA = {"type": "object", "required": ["category", "priority"],
          "properties": {"category": {"enum": ["billing", "returns"]}, "priority": {"enum": ["low", "high"]}}}
STRUCT = [
    pred(0, '{"category": "billing", "priority": "high"}', '{"category": "billing", "priority": "low"}'),
    pred(1, '```json\n{"category": "returns", "priority": "low"}\n```', '{"category": "returns", "priority": "low"}'),
    pred(2, "Sorry, I cannot help.", '{"category": "billing", "priority": "low"}', hit=True),
    pred(3, '{"category": "refund"}', '{"category": "returns", "priority": "high"}'),
]


def test_structured_metrics_by_hand():
    report = evaluate(STRUCT, TaskSettings(type="structured_output", label_field="category", json_schema=SCHEMA))
    assert report.value("json_validity") == pytest.approx(3 / 4)  # the fenced one counts as valid JSON
    assert report.value("schema_compliance") == pytest.approx(2 / 4)  # #3 lacks priority and has a bad enum
    # fields right: 1/2, 2/2, 0 (invalid), 0/2 -> mean (0.5 + 1 + 0 + 0) / 4
    assert report.value("field_accuracy") == pytest.approx(1.5 / 4)
    assert report.value("exact_match") == pytest.approx(1 / 4)
    assert report.value("format_compliance") == pytest.approx(1 / 4)  # only #0 is bare, schema-valid JSON
    # category: billing, returns, (invalid), refund vs billing, returns, billing, returns
    assert report.value("label_accuracy") == pytest.approx(2 / 4)
    assert report.details["per_class"]["billing"]["recall"] == 0.5
    assert report.details["per_class"]["returns"]["recall"] == 0.5
    assert report.details["confusion"]["matrix"] == [[1, 0, 1], [0, 1, 1]]
    assert report.per_example()["field_accuracy"] == [0.5, 1.0, 0.0, 0.0]
    assert report.headline["name"] == "field_accuracy"


def test_schema_validator_names_the_path_of_the_first_violation():
    assert schema_errors({"category": "billing", "priority": "low"}, SCHEMA) == []
    assert schema_errors({"category": "x"}, SCHEMA) == ["$: must contain ['priority'] properties"]
    assert schema_errors([1], {"type": "object"}) == ["$: must be object"]
    assert schema_errors({"n": 5}, {"properties": {"n": {"type": "integer", "maximum": 3}}}) == \
        ["$.n: must be smaller than or equal to 3"]
    assert schema_errors({"x": 1}, {"additionalProperties": False}) == ["$: must not contain {'x'} properties"]
    assert schema_errors(True, {"type": "integer"}) == ["$: must be integer"]


def test_schema_beyond_simple_keywords():
    one_of = {"oneOf": [{"type": "string"}, {"type": "null"}]}
    validate = make_validator({"type": "object", "properties": {"a": one_of}})
    assert validate({"a": None}) == [] and validate({"a": 3})


def test_empty_schema_only_requires_an_object():
    validate = make_validator({})
    assert validate({"anything": 1}) == [] and validate([1]) != []


# -- free text ------------------------------------------------------------------------------------
def test_free_text_metrics_by_hand():
    rows = [pred(0, "the cat sat on the mat", "the cat is on the mat"), pred(1, "hello  world", "hello world"),
            pred(2, "", "something else")]
    report = evaluate(rows, TaskSettings(type="free_text"))
    # LCS("the cat sat on the mat", "the cat is on the mat") = "the cat on the mat" = 5 words of 6 -> P = R = F = 5/6
    assert report.per_example()["rouge_l"] == pytest.approx([5 / 6, 1.0, 0.0])
    assert report.value("rouge_l") == pytest.approx((5 / 6 + 1) / 3)
    assert report.per_example()["exact_match"] == [0.0, 1.0, 0.0]  # whitespace differences do not count
    assert report.value("format_compliance") == pytest.approx(2 / 3)  # the empty answer fails
    assert report.headline["name"] == "rouge_l"


def test_bleu_and_chrf_are_100_for_identical_text_and_match_sacrebleu_corpus_scores():
    import sacrebleu

    same = [pred(0, "a quick brown fox jumps", "a quick brown fox jumps")]
    report = evaluate(same, TaskSettings(type="free_text"))
    assert report.value("bleu") == pytest.approx(100.0) and report.value("chrf") == pytest.approx(100.0)
    hyps, refs = ["the cat sat on the mat", "hello world again"], ["the cat is on the mat", "hello there world"]
    report = evaluate([pred(i, h, r) for i, (h, r) in enumerate(zip(hyps, refs))], TaskSettings(type="chat"))
    assert report.value("bleu") == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert report.value("chrf") == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)


# -- always ---------------------------------------------------------------------------------------
def test_common_metrics_by_hand():
    rows = [pred(0, "abcd", "ab", latency=1.0, n_out=4), pred(1, "ab", "abcd", latency=2.0, n_out=2, hit=True),
            pred(2, "ab", "ab", latency=3.0, n_out=3), pred(3, "", "abcd", latency=4.0, n_out=7)]
    report = evaluate(rows, TaskSettings(type="free_text"))
    assert report.value("runaway_rate") == 0.25
    assert report.value("length_ratio") == pytest.approx((4 + 2 + 2 + 0) / (2 + 4 + 2 + 4))  # 8 / 12 characters
    assert report.value("mean_output_tokens") == 4.0
    assert report.value("latency_p50_s") == pytest.approx(2.5)
    assert report.value("latency_p95_s") == pytest.approx(3.85)  # 3 + 0.85 * (4 - 3), linear interpolation


# -- bootstrap ------------------------------------------------------------------------------------
def test_bootstrap_ci_of_a_mean_matches_a_hand_rolled_bootstrap():
    scores = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 10, size=(500, 10))
    manual = np.percentile(np.asarray(scores, float)[idx].mean(axis=1), [2.5, 97.5])
    assert bootstrap.bootstrap_ci(mean_statistic("acc", scores), n_boot=500, seed=7) == pytest.approx(tuple(manual))


def test_bootstrap_is_seeded_and_narrows_with_more_examples():
    small = mean_statistic("acc", [1, 0] * 10)
    big = mean_statistic("acc", [1, 0] * 500)
    assert bootstrap.bootstrap_ci(small, seed=3) == bootstrap.bootstrap_ci(small, seed=3)
    lo_s, hi_s = bootstrap.bootstrap_ci(small)
    lo_b, hi_b = bootstrap.bootstrap_ci(big)
    assert lo_s < lo_b < 0.5 < hi_b < hi_s
    assert bootstrap.bootstrap_ci(mean_statistic("x", [1, 1, 1])) == (1.0, 1.0)


def test_every_metric_has_a_ci_around_its_value():
    report = evaluate(STRUCT, TaskSettings(type="structured_output", label_field="category", json_schema=SCHEMA))
    for name, m in report.metrics().items():
        assert m["ci_low"] <= m["value"] + 1e-9 and m["value"] <= m["ci_high"] + 1e-9, name


def test_paired_bootstrap_detects_a_consistently_better_system():
    a = mean_statistic("acc", [1] * 18 + [0] * 2)
    b = mean_statistic("acc", [1] * 10 + [0] * 10)
    paired = paired_bootstrap(a, b)
    assert paired["diff"] == pytest.approx(0.4) and paired["ci_low"] > 0 and paired["p_not_better"] < 0.01
    lower = percentile_statistic("p95", [1.0] * 10, 95)
    higher = percentile_statistic("p95", [2.0] * 10, 95)
    assert paired_bootstrap(lower, higher)["p_not_better"] == 0.0  # lower latency is better


def test_macro_f1_statistic_resamples_exactly():
    report = evaluate(CLS, TaskSettings(type="classification"))
    stat = report.statistics["macro_f1"]
    # resample "every example once" must give the point value; a resample of only example 0 gives F1(a) = 1
    assert stat.on(np.array([[0, 1, 2, 3, 4], [0, 0, 0, 0, 0]])) == pytest.approx([stat.value(), 1.0])


# -- report plumbing ------------------------------------------------------------------------------
def test_report_serialises_to_json_and_per_example_aligns_with_ids(tmp_path):
    report = evaluate(STRUCT, TaskSettings(type="structured_output", label_field="category", json_schema=SCHEMA))
    atomic_write_json(tmp_path / "m.json", report.to_dict())
    atomic_write_json(tmp_path / "p.json", report.per_example())
    loaded = json.loads((tmp_path / "p.json").read_text())
    assert loaded["ids"] == ["0", "1", "2", "3"] and len(loaded["json_validity"]) == 4
    assert loaded["predicted_labels"] == ["billing", "returns", INVALID, "refund"]
    assert json.loads((tmp_path / "m.json").read_text())["headline"]["name"] == "field_accuracy"


def test_failure_examples_lists_the_worst_first():
    report = evaluate(STRUCT, TaskSettings(type="structured_output", json_schema=SCHEMA))
    worst = failure_examples(report, STRUCT, k=2)
    assert [w["id"] for w in worst] == ["2", "3"]  # both score 0; the runaway comes first
    assert worst[0]["cut off"] is True


def test_unknown_task_type_lists_valid_ones():
    with pytest.raises(ConfigError, match="classification, structured_output, free_text, chat"):
        evaluate(CLS, TaskSettings(type="regression"))


def test_empty_predictions_give_nan_not_a_crash():
    report = evaluate([], TaskSettings(type="classification"))
    assert math.isnan(report.value("accuracy")) and all(math.isnan(x) for x in report.cis["accuracy"])


# -- findings -------------------------------------------------------------------------------------
def test_findings_are_computed_from_the_numbers():
    from ftkit.metrics import findings

    report = evaluate(STRUCT, TaskSettings(type="structured_output", label_field="category", json_schema=SCHEMA))
    runaway = findings.stop_behaviour(report, 32)
    assert runaway[0] == "warning" and "1 of 4 answers (25.0 %)" in runaway[2] and "32" in runaway[2]
    assert findings.format_compliance(report)[0] == "warning" and "25.0 %" in findings.format_compliance(report)[2]
    wide = findings.precision_of_estimate(report)
    assert wide[0] == "warning" and "4 test examples" in wide[2]
    tell = findings.tell_client(report, "SmolLM2", 3, tiny_random=True)
    assert tell.startswith("These numbers come from ftkit's randomly initialised test model")
    assert "3-shot prompt" in tell and "field_accuracy 0.38" in tell
    steps = findings.next_steps(report, "acme", recommended="other-model", current="smollm2-135m-instruct")
    assert steps[0].startswith("Consider base_model.id: other-model") and any("training phase" in s for s in steps)
    answer = '{"category": "billing", "priority": "low"}'
    clean = evaluate([pred(i, answer, answer) for i in range(50)],
                     TaskSettings(type="structured_output", json_schema=SCHEMA))
    assert findings.stop_behaviour(clean, 32)[0] == "info" and findings.precision_of_estimate(clean) is None


@pytest.mark.parametrize("task", [TaskSettings(type="classification", labels=["a", "b"]),
                                  TaskSettings(type="structured_output"),
                                  TaskSettings(type="structured_output", label_field="category"),
                                  TaskSettings(type="free_text"), TaskSettings(type="chat")],
                         ids=["classification", "structured", "structured+label_field", "free_text", "chat"])
def test_metric_names_known_before_running_are_what_evaluate_reports(task):
    from ftkit.metrics import metric_names

    rows = [pred(0, '{"category": "a"}', '{"category": "a"}', label="a"), pred(1, "b", '{"category": "b"}', label="b")]
    assert metric_names(task) == list(evaluate(rows, task, n_boot=20).statistics)
