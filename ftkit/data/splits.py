"""Deterministic, seeded, stratified train/validation/test splits that keep near-duplicate groups together.

Determinism does not depend on file order: groups are ordered by a seeded hash of their content key, so the
same records + the same seed give the same split even if the client re-sorts the file. Within each label
stratum, groups go one by one to the split furthest below its target count; a near-duplicate group is never
divided (otherwise a copy in test measures memorisation, not generalisation).

>>> keys = [bytes([i]) for i in range(10)]
>>> s = assign_splits(keys, [None] * 10, list(range(10)), {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1)
>>> sorted((name, s.count(name)) for name in set(s))
[('test', 1), ('train', 8), ('validation', 1)]
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from operator import itemgetter

SPLIT_NAMES = ("train", "validation", "test")


def order_key(seed: int, key: bytes) -> bytes:
    """A record's place in the seeded order: a keyed hash of its content key (8 bytes)."""
    return hashlib.blake2b(key, digest_size=8, key=seed.to_bytes(8, "little", signed=True)).digest()


def assign_splits(keys: list[bytes], labels: list[str | None], groups: list[int], fractions: dict[str, float],
                  seed: int, order_keys: list[bytes] | None = None) -> list[str]:
    """Split name for each record.

    ``keys``: a content key per record (stable identity); ``labels``: stratum per record (None = unlabelled);
    ``groups``: group id per record (records with the same id always share a split); ``fractions``: target
    share per split name (summing to 1; a 0 share gets nothing). ``order_keys``: ``order_key(seed, key)`` per
    record when already computed (the audit's workers do, in parallel).
    """
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    if order_keys is None:
        order_keys = [order_key(seed, k) for k in keys]
    strata: dict[str, list[tuple[bytes, list[int]]]] = defaultdict(list)
    for idxs in members.values():
        if len(idxs) == 1:  # nearly every group: skip the Counter (it dominated this loop on 100k records)
            label, rep = labels[idxs[0]], idxs[0]
        else:
            counts = Counter(labels[i] for i in idxs)
            label = min(counts, key=lambda lab: (-counts[lab], str(lab)))  # majority label; ties by name
            rep = min(idxs, key=keys.__getitem__)
        strata[str(label)].append((order_keys[rep], idxs))
    names = [n for n in SPLIT_NAMES if fractions.get(n, 0) > 0] + [n for n in fractions if n not in SPLIT_NAMES and fractions[n] > 0]
    out = [""] * len(keys)
    for stratum in sorted(strata):
        items = sorted(strata[stratum], key=itemgetter(0))
        total = sum(len(idxs) for _, idxs in items)
        targets = [fractions[n] * total for n in names]
        for (_, idxs), k in zip(items, _greedy(targets, [len(idxs) for _, idxs in items])):
            name = names[k]
            for i in idxs:
                out[i] = name
    return out


def _greedy(targets: list[float], sizes: list[int]) -> list[int]:
    """For each group in turn, the index of the split furthest below its target (ties: the earlier split),
    counting the group there. The three-split case is unrolled: it runs once per record on 100k records."""
    counts = [0] * len(targets)
    out = []
    if len(targets) == 3:
        t0, t1, t2 = targets
        c0 = c1 = c2 = 0
        for size in sizes:
            g0, g1, g2 = t0 - c0, t1 - c1, t2 - c2
            if g0 >= g1 and g0 >= g2:
                c0 += size
                out.append(0)
            elif g1 >= g2:
                c1 += size
                out.append(1)
            else:
                c2 += size
                out.append(2)
        return out
    for size in sizes:
        best = max(range(len(targets)), key=lambda k: (targets[k] - counts[k], -k))
        counts[best] += size
        out.append(best)
    return out


def split_fractions(train: float, validation: float, test: float, client_test: bool) -> dict[str, float]:
    """Target shares; with a client-provided test file the test share goes to train/validation pro rata.

    >>> {k: round(v, 3) for k, v in split_fractions(0.8, 0.1, 0.1, client_test=True).items()}
    {'train': 0.889, 'validation': 0.111}
    """
    if client_test:
        rest = train + validation
        return {"train": train / rest, "validation": validation / rest}
    return {"train": train, "validation": validation, "test": test}
