"""Numbers compared as numbers in every scorer, each tested with near-miss answers: the forgetting probe,
classification labels, free-text exact match, structured fields and label field, and the LLM judge's reply."""
from __future__ import annotations

import pytest

from ftkit.evaluation import forgetting, judge
from ftkit.metrics import numbers
from ftkit.metrics.classification import INVALID, parse_label
from ftkit.metrics.structured import field_accuracy, label_text, values_equal


@pytest.mark.parametrize("text, expected", [
    ("-18.0°C", [-18.0]), ("It is 0 °C (32 °F).", [0.0, 32.0]), ("1,000 people", [1000.0]),
    ("10-4=6", [10.0, 4.0, 6.0]), ("−5", [-5.0]), ("CO2", []), ("v1.2.3", []), ("2.50 EUR", [2.5]),
])
def test_numbers_read_as_numbers(text, expected):
    assert numbers.numbers(text) == expected


@pytest.mark.parametrize("answer, right", [
    ("-18.0°C", False), ("18.0", False), ("10", False), ("0.5", False), ("100 degrees", False),  # near misses
    ("0", True), ("0 °C", True), ("Water freezes at 0 degrees Celsius (32 °F).", True), ("0.0", True),
    ("zero degrees", True),
])
def test_forgetting_probe_freezing_point(answer, right):
    assert forgetting.is_correct(answer, ["0", "zero"]) is right


def test_forgetting_probe_sequences_and_words_still_work():
    assert forgetting.is_correct("1, 2, 3", ["1, 2, 3", "1 2 3"])
    assert not forgetting.is_correct("3, 1, 2", ["1, 2, 3", "1 2 3"])
    assert not forgetting.is_correct("1, 2, 30", ["1, 2, 3"])
    assert forgetting.is_correct("It is CO2.", ["carbon dioxide", "CO2"])
    assert not forgetting.is_correct("6 legs", ["8", "eight"]) and forgetting.is_correct("8 legs", ["8", "eight"])


@pytest.mark.parametrize("output, label", [
    ("1", "1"), ("1.0", "1"), ("Rating: 1", "1"), ("-1", INVALID), ("1.5", INVALID), ("10", INVALID),
    ("11", INVALID), ("1 or 2", INVALID), ("5 stars", "5"),
])
def test_classification_numeric_labels(output, label):
    assert parse_label(output, ["1", "2", "5"])[0] == label


def test_classification_text_labels_unchanged_by_numbers():
    assert parse_label("card_arrival", ["card_arrival", "card_delivery_estimate"]) == ("card_arrival", True)
    assert parse_label("tier 2 support", ["tier 1", "tier 2"])[0] == "tier 2"


def test_free_text_exact_match_numbers():
    from ftkit.metrics import free_text

    stats, _ = free_text.statistics(["42.0", "41.9", "1,000", "42 apples", "42"], ["42", "42", "1000", "42", "42"], None)
    exact = next(s for s in stats if s.name == "exact_match")
    assert exact.per_example.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_structured_values_numbers_and_booleans():
    assert values_equal(1, 1.0) and values_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not values_equal(True, 1) and not values_equal(0, False) and not values_equal("42", 42)
    assert not values_equal(1.0, 1.0001) and not values_equal({"a": 1}, {"a": 1, "b": 2})
    assert field_accuracy({"urgent": 1, "amount": 12.50}, {"urgent": True, "amount": 12.5}) == 0.5
    assert [label_text(v) for v in (3, 3.0, False)] == ["3", "3", "false"]


def test_structured_label_field_compares_numbers():
    from ftkit.config import TaskSettings
    from ftkit.metrics import structured

    task = TaskSettings(type="structured_output", label_field="priority")
    stats, details = structured.statistics(['{"priority": 1.0}', '{"priority": true}', '{"priority": 2}'],
                                           ['{"priority": 1}', '{"priority": 1}', '{"priority": 1}'], task)
    assert details["predicted_labels"] == ["1", "true", "2"]
    assert next(s for s in stats if s.name == "label_accuracy").per_example.tolist() == [1.0, 0.0, 0.0]
    exact = next(s for s in stats if s.name == "exact_match")
    assert exact.per_example.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("reply, choice", [
    ("1", 1), ("Answer 2.", 2), ("tie", 0), ("1.5", None), ("-1", None), ("2,5", None), ("21", None), ("1/2", None),
])
def test_judge_reply_near_misses(reply, choice):
    assert judge.parse_choice(reply) == choice
