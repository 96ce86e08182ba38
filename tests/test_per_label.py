"""Per-label precision/recall/F1 with bootstrap CIs, top confusions in plain words, and the confusion-matrix
figure at many labels (ftkit/metrics/per_label.py, ftkit/metrics/plots.py)."""
from __future__ import annotations

import numpy as np
import pytest

from ftkit.metrics import per_label, plots
from ftkit.metrics.classification import INVALID, confusion


def _data(seed=0, n=300, k=6):
    rng = np.random.default_rng(seed)
    labels = [f"l{i}" for i in range(k)]
    refs = [labels[i] for i in rng.integers(0, k, n)]
    preds = [r if rng.random() < 0.7 else labels[rng.integers(0, k)] for r in refs]
    preds[:5] = [INVALID] * 5
    return refs, preds, labels


def test_point_estimates_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    refs, preds, labels = _data()
    rows = per_label.per_label(refs, preds, labels, n_boot=200)
    p, r, f, support = metrics.precision_recall_fscore_support(refs, preds, labels=labels, zero_division=np.nan)
    assert [row["support"] for row in rows] == list(support)
    for i, row in enumerate(rows):
        assert row["precision"] == pytest.approx(p[i]) and row["recall"] == pytest.approx(r[i])
        assert row["f1"] == pytest.approx(f[i])
        assert row["f1_ci"][0] <= row["f1"] <= row["f1_ci"][1]


def test_point_estimates_match_hand_counts_and_undefined_is_none():
    rows = {r["label"]: r for r in per_label.per_label(["a", "a", "a", "b"], ["a", "b", "b", "b"], ["a", "b", "c"],
                                                       n_boot=100)}
    assert (rows["a"]["precision"], rows["a"]["recall"]) == (1.0, pytest.approx(1 / 3))
    assert (rows["b"]["precision"], rows["b"]["recall"], rows["b"]["f1"]) == (pytest.approx(1 / 3), 1.0, 0.5)
    assert rows["c"]["precision"] is None and rows["c"]["recall"] is None and rows["c"]["precision_ci"] is None


def test_cis_narrow_with_more_examples_and_are_seeded():
    refs, preds, labels = _data(n=200)
    small = per_label.per_label(refs, preds, labels, n_boot=300, seed=1)
    big = per_label.per_label(refs * 9, preds * 9, labels, n_boot=300, seed=1)
    width = lambda rows: np.mean([r["recall_ci"][1] - r["recall_ci"][0] for r in rows])  # noqa: E731
    assert width(big) < width(small) / 2
    assert per_label.per_label(refs, preds, labels, n_boot=300, seed=1) == small


def test_top_confusions_in_plain_words():
    refs = ["card_arrival"] * 20 + ["card_delivery_estimate"] * 5 + ["pin"] * 3
    preds = ["card_delivery_estimate"] * 14 + ["card_arrival"] * 6 + ["card_delivery_estimate"] * 5 + ["card_arrival", INVALID, "pin"]
    top = per_label.top_confusions(confusion(refs, preds, ["card_arrival", "card_delivery_estimate", "pin"]))
    assert [(t["reference"], t["answered"], t["count"]) for t in top] == [
        ("card_arrival", "card_delivery_estimate", 14), ("pin", INVALID, 1), ("pin", "card_arrival", 1)]
    assert per_label.confusion_sentence(top[0]) == "14 card_arrival messages were answered card_delivery_estimate"
    assert per_label.confusion_sentence(top[1]) == "1 pin message was answered with no valid label"


def test_sorted_confusion_keeps_counts():
    conf = confusion(["b", "a", "b"], ["a", "a", INVALID], ["b", "a"])
    s = per_label.sorted_confusion(conf)
    assert s["labels"] == ["a", "b"] and s["columns"] == ["a", "b", INVALID]
    assert s["matrix"] == [[1, 0, 0], [1, 0, 1]]


def test_confusion_figure_at_77_labels_highlights_the_top_cells(tmp_path):
    pytest.importorskip("matplotlib")
    labels = [f"intent_{i:02d}" for i in range(77)]
    refs = [lb for lb in labels for _ in range(4)]
    preds = [labels[(i // 4 + (1 if i % 4 == 0 else 0)) % 77] for i in range(len(refs))]
    fig = plots.plot_confusion(confusion(refs, preds, labels), "77 labels")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(boxes) == per_label.TOP_CONFUSIONS
    assert len(ax.texts) == per_label.TOP_CONFUSIONS  # only the highlighted cells are annotated at 77 labels
    assert len(ax.get_xticklabels()) == 77 and ax.get_xticklabels()[0].get_fontsize() == 6
    fig.savefig(tmp_path / "c.png")
    small = plots.plot_confusion(confusion(["a", "b"], ["a", "a"], ["b", "a"]))
    assert len(small.axes[0].texts) == 4  # few labels: every cell carries its count
