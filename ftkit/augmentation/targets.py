"""Which parts of the training split are thin enough to ask a teacher for more, and the few-shot examples.

A *target* is a label (classification, or ``task.label_field``'s value) or a slice value (a field named in
``augmentation.slice_fields``) with fewer training examples than ``augmentation.min_per_target``; when the
suitability verdict is "not yet" (too few examples overall) the whole task is one target. Few-shot examples
come from the TRAIN split only, never validation or test (the filters also reject candidates close to test).

>>> train = [{"label": "a"}] * 3 + [{"label": "b"}]
>>> [(t.name, t.have) for t in choose_targets(train, ("a", "b", "c"), [], min_per_target=2, per_target=4)]
[('c', 0), ('b', 1)]
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

NOT_YET = "not_yet"  # the suitability recommendation that means "too few examples": the whole set is the target


@dataclass(frozen=True)
class Target:
    kind: str  # label | slice | all
    name: str  # the label, "field=value", or "all"
    have: int  # training examples it has now
    want: int  # candidates to ask the teacher for
    field: str = ""  # slice targets: the field and its value
    value: str = ""
    label: str = ""  # label targets: the label every candidate must carry

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v != ""}


def label_set(train: list[dict], configured: tuple | list = ()) -> tuple[str, ...]:
    """``task.labels`` when set, else the labels the training split has (sorted)."""
    return tuple(configured) if configured else tuple(sorted({str(r["label"]) for r in train if r.get("label") is not None}))


def choose_targets(train: list[dict], labels: tuple[str, ...], slice_fields: list[str], min_per_target: int,
                   per_target: int, not_yet: bool = False, whole_set: int = 0) -> list[Target]:
    """The thin labels and slice values, thinnest first (labels before slices); the whole task when ``not_yet``."""
    if not_yet:
        return [Target("all", "all", len(train), whole_set or per_target)]
    counts = Counter(str(r["label"]) for r in train if r.get("label") is not None)
    out = [Target("label", lab, counts.get(lab, 0), per_target, label=lab)
           for lab in sorted(labels, key=lambda x: (counts.get(x, 0), x)) if counts.get(lab, 0) < min_per_target]
    for name in slice_fields:
        values = Counter(str(r["fields"][name]) for r in train if name in (r.get("fields") or {}))
        out += [Target("slice", f"{name}={v}", n, per_target, field=name, value=v)
                for v, n in sorted(values.items(), key=lambda kv: (kv[1], kv[0])) if n < min_per_target]
    return out


def matches(record: dict, target: Target) -> bool:
    if target.kind == "label":
        return str(record.get("label")) == target.label
    if target.kind == "slice":
        return str((record.get("fields") or {}).get(target.field)) == target.value
    return True


def pick_shots(train: list[dict], target: Target, k: int, rng: random.Random) -> list[dict]:
    """``k`` training records for one request: the target's own first (as many as it has), then others."""
    own = [r for r in train if matches(r, target)]
    rest = [r for r in train if not matches(r, target)]
    chosen = rng.sample(own, min(k, len(own)))
    chosen += rng.sample(rest, min(k - len(chosen), len(rest)))
    return chosen
