"""Test subsets that represent the test set: a seeded sample stratified by label (or by source file).

``baseline.max_examples: N`` used to score the *first* N test records. A client's test file is often sorted by
label (banking77's own test file is sorted by intent: its first 200 rows are 5 of the 77 intents), so every
later number would have been computed on a few classes without a word about it. ``stratified_subset`` instead
draws N records spread over the strata in proportion to their size (largest-remainder allocation, at least one
per stratum while N allows), each stratum's records ranked by a seeded hash of their id, so the choice depends
on the seed and the ids, never on the file order. The result keeps test-file order and says what it did
(``Subset.to_dict()``: what the baseline records, ids included, and what the evaluation reuses).

No library does proportional stratified selection by id hash with a guaranteed count (sklearn's
``train_test_split(stratify=...)`` refuses strata with a single member and needs numpy randomness over file
order), hence this small hand-written version; ``tests/test_sampling.py`` checks its allocation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass
class Subset:
    records: list[dict]
    n_test: int
    by: str  # "label", "file" or "" (a plain seeded sample: the records carry neither)
    seed: int
    strata: dict = field(default_factory=dict)  # stratum -> records chosen

    @property
    def is_subset(self) -> bool:
        return len(self.records) < self.n_test

    def describe(self) -> str:
        if not self.is_subset:
            return f"all {self.n_test} test examples"
        how = f"stratified by {self.by} ({len(self.strata)} strata)" if self.by else "a plain random sample"
        return f"{len(self.records)} of {self.n_test} test examples, a seeded sample (seed {self.seed}) {how}"

    def to_dict(self) -> dict:
        """What the baseline's results record (``generation.subset``); ids in test-file order."""
        return {"n": len(self.records), "of": self.n_test, "stratified_by": self.by, "seed": self.seed,
                "method": "all" if not self.is_subset else "seeded stratified sample",
                "strata": dict(self.strata), "ids": [str(r.get("id")) for r in self.records]}


def _rank(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode("utf-8")).hexdigest()


def stratum_key(records: list[dict]) -> str:
    """What to stratify by: the label when records carry one, else the source file when there are several."""
    if any(r.get("label") not in (None, "") for r in records):
        return "label"
    files = {(r.get("origin") or {}).get("file") for r in records}
    return "file" if len(files) > 1 else ""


def _stratum(record: dict, by: str) -> str:
    if by == "label":
        return str(record.get("label"))
    if by == "file":
        return str((record.get("origin") or {}).get("file"))
    return ""


def allocate(sizes: dict[str, int], n: int, seed: int = 0) -> dict[str, int]:
    """How many records each stratum gets: in proportion to its size (largest remainder; ties broken by a seeded
    hash of the stratum's name), then at least one each while ``n`` allows (taken from the largest allocations).
    Sums to min(n, total).

    >>> allocate({"a": 40, "b": 40, "c": 20}, 10)
    {'a': 4, 'b': 4, 'c': 2}
    >>> sum(allocate({str(i): 40 for i in range(77)}, 200).values())
    200
    """
    total = sum(sizes.values())
    n = min(n, total)
    if n <= 0:
        return {s: 0 for s in sizes}
    quota = {s: n * sizes[s] / total for s in sizes}
    take = {s: int(quota[s]) for s in sizes}
    by_remainder = sorted(sizes, key=lambda s: (-(quota[s] - take[s]), _rank(seed, s)))
    for s in by_remainder[:n - sum(take.values())]:
        take[s] += 1
    for s in sorted(sizes, key=lambda s: _rank(seed, s)):  # every stratum represented while n allows
        if take[s] == 0 and sizes[s] > 0:
            donor = max(take, key=lambda d: (take[d], _rank(seed, d)))
            if take[donor] <= 1:
                break
            take[donor] -= 1
            take[s] = 1
    return take


def stratified_subset(test: list[dict], n: int, seed: int = 0, by: str | None = None) -> Subset:
    """``n`` test records (all when ``n`` <= 0 or >= the test size), stratified by ``by`` (default: see
    :func:`stratum_key`), in test-file order.

    >>> rows = [{"id": str(i), "label": "ab"[i // 10]} for i in range(20)]  # sorted by label
    >>> sorted({r["label"] for r in stratified_subset(rows, 4).records})
    ['a', 'b']
    """
    if n <= 0 or n >= len(test):
        return Subset(list(test), len(test), "", seed)
    by = stratum_key(test) if by is None else by
    groups: dict[str, list[dict]] = {}
    for r in test:
        groups.setdefault(_stratum(r, by), []).append(r)
    take = allocate({s: len(g) for s, g in groups.items()}, n, seed)
    chosen = set()
    for s, g in groups.items():
        ranked = sorted(range(len(g)), key=lambda i: _rank(seed, str(g[i].get("id"))))
        chosen.update(id(g[i]) for i in ranked[:take[s]])
    records = [r for r in test if id(r) in chosen]
    strata = {s: k for s, k in sorted(take.items()) if k} if by else {}
    return Subset(records, len(test), by, seed, strata)
