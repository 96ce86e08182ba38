"""Per-label precision, recall and F1 with bootstrap CIs, and the most frequent confusions in plain words.

The point estimates are the usual ones (sklearn's ``precision_recall_fscore_support`` with ``zero_division``
left undefined: None here; ``tests/test_per_label.py`` compares them). The CIs resample examples (percentile
bootstrap, the same resamples as every other metric: ``bootstrap.resample_indices``): each resample is a
vector of example multiplicities, so the per-class tp/fp/fn sums of all resamples are one matrix product
(b x n) @ (n x 3C) instead of a (b, n, 3C) array: banking77's 3,080 x 231 stays in a few MB.
"""
from __future__ import annotations

import numpy as np

from ftkit.metrics.bootstrap import N_BOOT, resample_indices
from ftkit.metrics.classification import INVALID, _prf_stats

TOP_CONFUSIONS = 10  # confusions listed in plain words (and highlighted in the confusion-matrix figure)


def _multiplicities(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(b, n) how often each example occurs in each resample."""
    idx = resample_indices(n, n_boot, seed)
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return counts


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple:
    """Precision, recall, F1 arrays (NaN where undefined: never predicted, no support)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        r = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    return p, r, f


def per_label(refs: list[str], preds: list[str], labels: list[str], n_boot: int = N_BOOT, seed: int = 0,
              level: float = 0.95) -> list[dict]:
    """One row per label: support, predicted, precision/recall/F1 (None where undefined) and their CIs."""
    stats = _prf_stats(refs, preds, labels)  # (n, 3C)
    c = len(labels)
    tp, fp, fn = np.split(stats.sum(axis=0), 3)
    p, r, f = _prf(tp, fp, fn)
    boot = _multiplicities(len(refs), n_boot, seed) @ stats if len(refs) else np.zeros((0, 3 * c))
    btp, bfp, bfn = boot[:, :c], boot[:, c:2 * c], boot[:, 2 * c:]
    bp, br, bf = _prf(btp, bfp, bfn)
    tail = (1 - level) / 2 * 100
    rows = []
    for i, label in enumerate(labels):
        row = {"label": label, "support": int(tp[i] + fn[i]), "predicted": int(tp[i] + fp[i])}
        for name, point, sample in (("precision", p, bp), ("recall", r, br), ("f1", f, bf)):
            row[name] = None if np.isnan(point[i]) else float(point[i])
            col = sample[:, i][np.isfinite(sample[:, i])]
            row[f"{name}_ci"] = [float(x) for x in np.percentile(col, [tail, 100 - tail])] if col.size else None
        rows.append(row)
    return rows


def top_confusions(confusion: dict, k: int = TOP_CONFUSIONS) -> list[dict]:
    """The ``k`` largest off-diagonal cells of ``classification.confusion()``: reference, answered, count, and
    the share of that reference label's examples.

    >>> top_confusions({"labels": ["a", "b"], "columns": ["a", "b"], "matrix": [[1, 3], [0, 2]]})
    [{'reference': 'a', 'answered': 'b', 'count': 3, 'share of reference': 0.75}]
    """
    labels, columns, matrix = confusion["labels"], confusion["columns"], confusion["matrix"]
    cells = [(count, labels[i], columns[j], sum(matrix[i]))
             for i, row in enumerate(matrix) for j, count in enumerate(row) if count and labels[i] != columns[j]]
    cells.sort(key=lambda x: (-x[0], x[1], x[2]))
    return [{"reference": ref, "answered": ans, "count": count, "share of reference": round(count / total, 3)}
            for count, ref, ans, total in cells[:k]]


def confusion_sentence(row: dict) -> str:
    """'14 card_arrival messages were answered card_delivery_estimate' (or 'with no valid label').

    >>> confusion_sentence({"reference": "card_arrival", "answered": "card_delivery_estimate", "count": 14})
    '14 card_arrival messages were answered card_delivery_estimate'
    """
    noun = "message was" if row["count"] == 1 else "messages were"
    answered = "with no valid label" if row["answered"] == INVALID else row["answered"]
    return f"{row['count']} {row['reference']} {noun} answered {answered}"


def sorted_confusion(confusion: dict) -> dict:
    """The confusion matrix with rows and columns in label order (alphabetical, so near-synonymous intents such
    as card_arrival / card_delivery_estimate sit together), the INVALID column last."""
    labels = sorted(confusion["labels"], key=lambda lb: (lb.casefold(), lb))
    row_of = {lb: i for i, lb in enumerate(confusion["labels"])}
    col_of = {c: j for j, c in enumerate(confusion["columns"])}
    columns = labels + [c for c in confusion["columns"] if c not in row_of]
    matrix = [[confusion["matrix"][row_of[r]][col_of[c]] if c in col_of else 0 for c in columns] for r in labels]
    return {"labels": labels, "columns": columns, "matrix": matrix}
