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
        counts = [0] * len(names)
        choices = range(1, len(names))
        for _, idxs in items:  # to the split furthest below its target; ties to the earlier split name
            best, gap = 0, targets[0] - counts[0]
            for k in choices:
                if targets[k] - counts[k] > gap:
                    best, gap = k, targets[k] - counts[k]
            counts[best] += len(idxs)
            name = names[best]
            for i in idxs:
                out[i] = name
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
