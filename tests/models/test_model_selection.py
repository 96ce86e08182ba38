"""Recommending a base model from candidates scored on the same examples."""
from __future__ import annotations

from ftkit.config import TaskSettings
from ftkit.generation import Prediction
from ftkit.metrics import evaluate
from ftkit.baseline.selection import Candidate, recommend


def report(correct: list[int]):
    preds = [Prediction(str(i), "h", "a" if c else "b", "a", 5, 1, 0.1, False) for i, c in enumerate(correct)]
    return evaluate(preds, TaskSettings(type="classification", labels=["a", "b"]), n_boot=300)


def test_clearly_best_model_is_recommended():
    big = Candidate("big-model", 7_000_000_000, report([1] * 38 + [0] * 2))
    small = Candidate("small-model", 135_000_000, report([1] * 15 + [0] * 25))
    choice = recommend([small, big], n_boot=300)
    assert choice["recommended"] == "big-model" and "highest accuracy" in choice["reason"]
    rows = {r["model"]: r for r in choice["rows"]}
    assert rows["small-model"]["as_good_as_best"] is False and rows["small-model"]["diff_ci_high"] < 0
    assert rows["big-model"]["diff_to_best"] == 0


def test_statistical_tie_goes_to_the_smaller_model():
    big = Candidate("big-model", 7_000_000_000, report([1] * 30 + [0] * 10))
    small = Candidate("small-model", 135_000_000, report([1] * 29 + [0] * 11))
    choice = recommend([big, small], n_boot=300)
    assert choice["recommended"] == "small-model"
    assert "not significantly worse" in choice["reason"] and "smaller" in choice["reason"]


def test_no_candidates():
    assert recommend([])["recommended"] is None
