"""Classification metrics: parse a label from the output, then accuracy, macro-F1, per-class P/R, confusion.

``INVALID`` stands for an output that names no known label; it counts as wrong for every class (a false
negative of the true class), and gets its own column in the confusion matrix.
"""
from __future__ import annotations

import json
import re

import numpy as np

from ftkit.metrics.bootstrap import Statistic, mean_statistic

INVALID = "(invalid)"
_LABEL_KEYS = ("label", "category", "class", "intent")
_STRIP = " \t\r\n\"'`.,;:!"


def normalise(text: str) -> str:
    """Case- and punctuation-insensitive form used to match labels.

    >>> normalise('  "Billing."\\n')
    'billing'
    """
    return str(text).strip(_STRIP).casefold()


def parse_label(output: str, labels: list[str]) -> tuple[str, bool]:
    """(label found in ``output`` or INVALID, whether the output was *only* the label: format compliance).

    Tries, in order: the whole output is a label; a JSON object whose label-like key or only value is a
    label; exactly one label mentioned as a whole word.

    >>> parse_label("Billing", ["billing", "shipping"])
    ('billing', True)
    >>> parse_label('{"label": "shipping"}', ["billing", "shipping"])
    ('shipping', False)
    >>> parse_label("I think it is billing.", ["billing", "shipping"])
    ('billing', False)
    >>> parse_label("billing or shipping", ["billing", "shipping"])
    ('(invalid)', False)
    >>> [parse_label(o, ["1", "2", "5"])[0] for o in ("-1", "1.5 stars", "rating: 1", "10", "1.0")]
    ['(invalid)', '(invalid)', '1', '(invalid)', '1']
    """
    by_norm = {normalise(label): label for label in labels}
    whole = normalise(output)
    if whole in by_norm:
        return by_norm[whole], True
    from ftkit.metrics.numbers import same_number

    numeric = [label for norm, label in by_norm.items() if same_number(whole, norm)]
    if len(numeric) == 1:  # "1.0" for the label "1": the same number, exactly one label
        return numeric[0], True
    from_json = _label_from_json(output, by_norm)
    if from_json:
        return from_json, False
    found = {label for norm, label in by_norm.items() if norm and _mentions(output, norm)}
    return (found.pop(), False) if len(found) == 1 else (INVALID, False)


def _mentions(output: str, norm: str) -> bool:
    """A label mentioned as a whole word; a numeric label ("1", "4.5") as a number the output gives, so "-1",
    "1.5" and "10" do not mention "1" (``metrics.numbers``)."""
    from ftkit.metrics.numbers import numbers, is_numeric

    if is_numeric(norm):
        want = numbers(norm)
        return len(want) == 1 and want[0] in numbers(output)
    return bool(re.search(rf"(?<!\w){re.escape(norm)}(?!\w)", output.casefold()))


def _label_from_json(output: str, by_norm: dict[str, str]) -> str | None:
    try:
        obj = json.loads(output.strip())
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    values = [obj[k] for k in _LABEL_KEYS if k in obj] or (list(obj.values()) if len(obj) == 1 else [])
    for value in values:
        if isinstance(value, str) and normalise(value) in by_norm:
            return by_norm[normalise(value)]
    return None


def confusion(refs: list[str], preds: list[str], labels: list[str]) -> dict:
    """Confusion matrix: rows = reference labels, columns = predicted labels + INVALID (when any).

    >>> confusion(["a", "a", "b"], ["a", "b", INVALID], ["a", "b"])["matrix"]
    [[1, 1, 0], [0, 0, 1]]
    """
    columns = list(labels) + [INVALID]
    col = {c: j for j, c in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    row = {label: i for i, label in enumerate(labels)}
    for ref, pred in zip(refs, preds):
        if ref in row:
            matrix[row[ref]][col.get(pred, col[INVALID])] += 1
    if not any(r[-1] for r in matrix):
        columns, matrix = columns[:-1], [r[:-1] for r in matrix]
    return {"labels": list(labels), "columns": columns, "matrix": matrix}


def _prf_stats(refs: list[str], preds: list[str], labels: list[str]) -> np.ndarray:
    """(n, 3C) one-hot per-example [tp_c, fp_c, fn_c] for each class c: additive, so resamples sum them."""
    ref = np.array(refs, dtype=object)[:, None]
    pred = np.array(preds, dtype=object)[:, None]
    lab = np.array(labels, dtype=object)[None, :]
    tp = (ref == lab) & (pred == lab)
    fp = (pred == lab) & (ref != lab)
    fn = (ref == lab) & (pred != lab)
    return np.concatenate([tp, fp, fn], axis=1).astype(float)


def _macro_f1(sums: np.ndarray) -> np.ndarray:
    """Macro-F1 from summed stats (b, 3C): mean over classes present in the references of 2tp/(2tp+fp+fn)."""
    tp, fp, fn = np.split(sums, 3, axis=-1)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (tp + fn) > 0
    count = present.sum(axis=-1)
    return np.where(count > 0, (f1 * present).sum(axis=-1) / np.maximum(count, 1), np.nan)


def per_class(refs: list[str], preds: list[str], labels: list[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support per class; None where undefined (never predicted / no support)."""
    sums = _prf_stats(refs, preds, labels).sum(axis=0)
    tp, fp, fn = np.split(sums, 3)
    out = {}
    for i, label in enumerate(labels):
        p = tp[i] / (tp[i] + fp[i]) if tp[i] + fp[i] else None
        r = tp[i] / (tp[i] + fn[i]) if tp[i] + fn[i] else None
        f = 2 * tp[i] / (2 * tp[i] + fp[i] + fn[i]) if (2 * tp[i] + fp[i] + fn[i]) else None
        out[label] = {"precision": p, "recall": r, "f1": f, "support": int(tp[i] + fn[i]),
                      "predicted": int(tp[i] + fp[i])}
    return out


def label_statistics(prefix: str, refs: list[str], preds: list[str], labels: list[str]) -> list[Statistic]:
    """Accuracy and macro-F1 over ``labels`` (named ``<prefix>accuracy``, ``<prefix>macro_f1``)."""
    correct = [float(r == p) for r, p in zip(refs, preds)]
    stats = _prf_stats(refs, preds, labels)
    macro = Statistic(f"{prefix}macro_f1", stats, lambda a: _macro_f1(a.sum(axis=1)), None, True,
                      "mean over classes of F1 (harmonic mean of precision and recall)")
    return [mean_statistic(f"{prefix}accuracy", correct, description="share of examples with the right label"),
            macro]


def label_set(configured: list[str], refs: list[str]) -> list[str]:
    """The configured labels, else the reference labels in first-seen order, plus any reference label missing."""
    labels = list(dict.fromkeys(configured))
    return labels + [r for r in dict.fromkeys(refs) if r not in labels]


def task_statistics(predictions: list, task) -> tuple[list[Statistic], dict]:
    """Accuracy, macro-F1, format compliance, per-class P/R and the confusion matrix for ``predictions``."""
    # The record's label is the reference class when the data has one; else the reference answer text.
    refs_raw = [p.label if p.label not in (None, "") else p.reference for p in predictions]
    labels = label_set(task.labels, [r.strip() for r in refs_raw])
    refs = [parse_label(r, labels)[0] for r in refs_raw]
    parsed = [parse_label(p.output, labels) for p in predictions]
    preds = [label for label, _ in parsed]
    stats = label_statistics("", refs, preds, labels)
    stats.append(mean_statistic(
        "format_compliance", [float(exact) for _, exact in parsed], description="the answer is exactly one label"))
    details = {"per_class": per_class(refs, preds, labels),
               "confusion": confusion(refs, preds, labels),
               "predicted_labels": preds, "reference_labels": refs}
    return stats, details
