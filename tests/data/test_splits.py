"""Splits: deterministic, independent of file order, stratified, near-duplicate groups kept together."""
from __future__ import annotations

import json
import random
from collections import Counter

from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.record_checks import TaskContext
from ftkit.data.splits import assign_splits

from data_helpers import chat, distinct_tickets

TASK = TaskContext("structured_output", "category")


def _split_of(result):
    return {json.dumps(result.metas[i]["key"].hex()): s for i, s in result.splits.items()}


def test_same_data_same_seed_same_split_whatever_the_order(write_jsonl):
    records = distinct_tickets(90)
    a = audit_files([write_jsonl(records, "a.jsonl")], AuditOptions(task=TASK))
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    b = audit_files([write_jsonl(shuffled, "b.jsonl")], AuditOptions(task=TASK))
    assert _split_of(a) == _split_of(b)
    c = audit_files([write_jsonl(records, "c.jsonl")], AuditOptions(task=TASK, split={"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 7}))
    assert _split_of(a) != _split_of(c)


def test_stratified_by_label(write_jsonl):
    result = audit_files([write_jsonl(distinct_tickets(90))], AuditOptions(task=TASK))
    per = Counter((s, result.metas[i]["label"]) for i, s in result.splits.items())
    for label in ("billing", "shipping", "account"):
        assert (per[("train", label)], per[("validation", label)], per[("test", label)]) == (24, 3, 3)


def test_near_duplicate_groups_stay_in_one_split(write_jsonl):
    records = distinct_tickets(40)
    for k in range(10):
        base = (f"group {k}: my order of hiking boots number {k} arrived last week with a broken sole on the left "
                f"boot and a missing lace, the box was crushed too, and I want a replacement pair sent quickly")
        records += [chat(base, "a"), chat(base + " please", "a"), chat(base + " thanks", "a")]
    result = audit_files([write_jsonl(records)], AuditOptions())
    assert len(result.near_duplicate_groups) == 10
    for group in result.near_duplicate_groups:
        assert len({result.splits[i] for i in group}) == 1


def test_assign_splits_keeps_groups_and_targets():
    keys = [bytes([i]) for i in range(100)]
    groups = [i // 4 for i in range(100)]
    out = assign_splits(keys, [None] * 100, groups, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0)
    assert all(len({out[j] for j in range(g * 4, g * 4 + 4)}) == 1 for g in range(25))
    assert Counter(out) == {"train": 80, "validation": 12, "test": 8} or Counter(out)["train"] == 80


def test_unrolled_three_split_greedy_equals_the_general_rule():
    import random

    from ftkit.data.splits import _greedy

    rng = random.Random(0)
    for _ in range(300):
        sizes = [rng.choice([1, 1, 1, 2, 5]) for _ in range(rng.randint(0, 40))]
        fractions = rng.choice([(0.8, 0.1, 0.1), (1 / 3, 1 / 3, 1 / 3), (0.5, 0.5, 0.0)])
        targets = [f * sum(sizes) for f in fractions]
        general = _greedy(targets + [-1.0], sizes)  # a fourth split that never wins takes the general path
        assert _greedy(targets, sizes) == general
