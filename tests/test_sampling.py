"""Test subsets that represent the test set (ftkit/sampling.py): the banking77 trap, a label-sorted test file
whose first rows are a handful of classes, must give a sample spread over every class, seeded and by id."""
from __future__ import annotations

import random

from ftkit.baseline import phase
from ftkit.sampling import allocate, stratified_subset


def _sorted_test(n_labels=77, per_label=40):
    # like banking77's own test file: sorted by intent, 40 rows each
    return [{"id": f"test:{i * per_label + j + 2}", "label": f"intent_{i:02d}",
             "origin": {"file": "test.csv", "line": i * per_label + j + 2}} for i in range(n_labels) for j in range(per_label)]


def test_first_n_of_a_sorted_file_is_the_trap_the_sample_avoids():
    test = _sorted_test()
    assert len({r["label"] for r in test[:200]}) == 5  # what baseline.max_examples: 200 used to score
    sub = stratified_subset(test, 200, seed=0)
    counts = {}
    for r in sub.records:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    assert len(sub.records) == 200 and len(counts) == 77 and set(counts.values()) == {2, 3}
    assert sub.by == "label" and sub.strata == counts and sub.is_subset
    order = {r["id"]: i for i, r in enumerate(test)}
    assert [order[r["id"]] for r in sub.records] == sorted(order[r["id"]] for r in sub.records)  # test-file order
    assert "200 of 3080 test examples" in sub.describe() and "stratified by label (77 strata)" in sub.describe()


def test_seeded_by_id_not_by_file_order():
    test = _sorted_test(10, 20)
    shuffled = list(test)
    random.Random(1).shuffle(shuffled)
    ids = lambda s: sorted(r["id"] for r in s.records)  # noqa: E731
    assert ids(stratified_subset(test, 30, seed=3)) == ids(stratified_subset(shuffled, 30, seed=3))
    assert ids(stratified_subset(test, 30, seed=3)) != ids(stratified_subset(test, 30, seed=4))
    assert stratified_subset(test, 30, seed=3).to_dict()["ids"] == [r["id"] for r in stratified_subset(test, 30, 3).records]


def test_proportional_allocation_and_edges():
    assert allocate({"big": 90, "small": 10}, 10) == {"big": 9, "small": 1}
    assert allocate({"big": 99, "small": 1}, 10) == {"big": 9, "small": 1}  # every stratum represented
    few = allocate({str(i): 5 for i in range(10)}, 3)
    assert sum(few.values()) == 3 and set(few.values()) == {0, 1}  # fewer wanted than strata
    assert allocate({"a": 2, "b": 2}, 10) == {"a": 2, "b": 2}  # never more than there is
    test = _sorted_test(3, 4)
    assert stratified_subset(test, 0).records == test and not stratified_subset(test, 0).is_subset
    assert stratified_subset(test, 50).records == test


def test_without_labels_strata_are_source_files_else_a_plain_sample():
    rows = [{"id": f"{f}:{i}", "origin": {"file": f, "line": i}} for f in ("a.jsonl", "b.jsonl") for i in range(30)]
    sub = stratified_subset(rows, 10)
    assert sub.by == "file" and sub.strata == {"a.jsonl": 5, "b.jsonl": 5}
    one_file = [dict(r, origin={"file": "a.jsonl", "line": i}) for i, r in enumerate(rows)]
    plain = stratified_subset(one_file, 10)
    assert plain.by == "" and len(plain.records) == 10 and "plain random sample" in plain.describe()


def test_baseline_subset_finding_states_the_ci_effect():
    sub = stratified_subset(_sorted_test(), 200)
    f = phase.split_finding(200, 3080, 200, sub.describe())
    assert f.severity == "warning" and "stratified by label" in f.message and "3.9x as wide" in f.message
