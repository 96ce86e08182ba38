"""Structured-output metrics: JSON validity, schema compliance, field-level accuracy, label accuracy.

Validity is lenient (a JSON object, optionally inside a ``` fence); format compliance is strict (the
whole answer is one JSON object that satisfies the schema, nothing else), because a production parser
usually is strict.
"""
from __future__ import annotations

import json
import math
import re

from ftkit.metrics.bootstrap import Statistic, mean_statistic
from ftkit.metrics.classification import INVALID, label_set, label_statistics
from ftkit.metrics.schema import make_validator

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_json_object(text: str, strict: bool = False) -> dict | None:
    """The JSON object in ``text``, or None; non-strict also accepts a ```json fenced block.

    >>> parse_json_object('```json\\n{"a": 1}\\n```')
    {'a': 1}
    >>> parse_json_object('```json\\n{"a": 1}\\n```', strict=True) is None
    True
    """
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced and not strict:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def values_equal(a, b) -> bool:
    """JSON values equal as a parser would read them: numbers as numbers (1 == 1.0), but a boolean is not a
    number (Python's ``True == 1`` is not JSON's), objects and arrays element by element.

    >>> values_equal(1, 1.0), values_equal(True, 1), values_equal({"a": [0.5]}, {"a": [0.50]}), values_equal("1", 1)
    (True, False, True, False)
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def label_text(value) -> str:
    """A JSON value as a label: numbers in one canonical form (1.0 -> "1"), booleans as JSON writes them.

    >>> [label_text(v) for v in (1.0, 1, 2.5, True, "high")]
    ['1', '1', '2.5', 'true', 'high']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return str(value)


def field_accuracy(pred: dict | None, ref: dict | None) -> float:
    """Share of the reference's fields that the prediction reproduces exactly (0 for an invalid answer).

    >>> field_accuracy({"a": 1, "b": "x"}, {"a": 1, "b": "y"})
    0.5
    """
    if not ref:
        return float("nan")  # a reference that is not a JSON object has no fields to score
    if pred is None:
        return 0.0
    return sum(1.0 for k, v in ref.items() if k in pred and values_equal(pred[k], v)) / len(ref)


def statistics(outputs: list[str], references: list[str], task) -> tuple[list[Statistic], dict]:
    """Structured-output statistics, plus per-class details on ``task.label_field`` when set."""
    validator = make_validator(task.json_schema)
    preds = [parse_json_object(o) for o in outputs]
    refs = [parse_json_object(r) for r in references]
    strict = [parse_json_object(o, strict=True) for o in outputs]
    schema_ok = [float(p is not None and not validator(p)) for p in preds]
    stats = [
        mean_statistic("json_validity", [float(p is not None) for p in preds],
                       description="answer contains a parseable JSON object"),
        mean_statistic("schema_compliance", schema_ok, description="valid JSON that satisfies the schema"),
        mean_statistic("field_accuracy", [field_accuracy(p, r) for p, r in zip(preds, refs)],
                       description="share of reference fields reproduced exactly"),
        mean_statistic("exact_match", [float(p is not None and r is not None and values_equal(p, r))
                                       for p, r in zip(preds, refs)],
                       description="answer object equals the reference object"),
        mean_statistic("format_compliance", [float(s is not None and not validator(s)) for s in strict],
                       description="the whole answer is one schema-valid JSON object, nothing else"),
    ]
    details = {"schema_errors_example": next((validator(p) for p in preds if p is not None and validator(p)), [])}
    if task.label_field:
        label_stats, label_details = _label_field(preds, refs, task)
        stats += label_stats
        details.update(label_details)
    return stats, details


def _label_field(preds: list[dict | None], refs: list[dict | None], task) -> tuple[list[Statistic], dict]:
    from ftkit.metrics.classification import confusion, per_class

    key = task.label_field
    ref_labels = [label_text(r.get(key)) if r and key in r else INVALID for r in refs]
    pred_labels = [label_text(p.get(key)) if p and key in p else INVALID for p in preds]
    labels = [lb for lb in label_set(task.labels, ref_labels) if lb != INVALID]
    stats = label_statistics("label_", ref_labels, pred_labels, labels)
    return stats, {"label_field": key, "per_class": per_class(ref_labels, pred_labels, labels),
                   "confusion": confusion(ref_labels, pred_labels, labels),
                   "predicted_labels": pred_labels, "reference_labels": ref_labels}
