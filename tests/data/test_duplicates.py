"""Exact and near duplicates, conflicting answers; the vectorised MinHash equals datasketch's."""
from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from ftkit.data import duplicates as dup
from ftkit.data.audit_files import AuditOptions, audit_files

from data_helpers import chat, distinct_tickets


def test_signatures_equal_datasketch_update_batch():
    texts = ["the cat sat on the mat", "The  cat sat on the mat!", "a b", "", "ünïcode wörds ärë wörds tôo, yes"]
    sigs = dup.minhash_signatures(texts)
    hashes, owners = dup.shingle_hashes(texts)
    for i in range(len(texts)):
        ref = MinHash(num_perm=dup.NUM_PERM, seed=dup.SEED, hashfunc=int, scheme="affine32")
        values = [int(h) for h in hashes[owners == i]]
        if values:
            ref.update_batch(values)
        assert np.array_equal(ref.hashvalues, sigs[i])
    assert np.array_equal(sigs[0], sigs[1])  # case, spacing and punctuation do not matter


@pytest.mark.parametrize("num_perm,seed", [(64, 1), (128, 7), (16, 42)])
def test_permutations_are_datasketchs(num_perm, seed):
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    ours_a, ours_b = dup._permutations(num_perm, seed)
    assert np.array_equal(a, ours_a) and np.array_equal(b, ours_b) and ours_a.dtype == np.uint32


@pytest.mark.parametrize("num_perm", [64, 128])
def test_lsh_layout_is_datasketchs_over_thresholds(num_perm):
    thresholds = [round(0.5 + 0.02 * k, 2) for k in range(25)]  # 0.5 .. 0.98
    ours = [dup.lsh_layout(t, num_perm) for t in thresholds]
    theirs = [(lsh.b, lsh.r) for lsh in (MinHashLSH(threshold=t, num_perm=num_perm, weights=dup.LSH_WEIGHTS)
                                         for t in thresholds)]
    assert ours == theirs
    assert len(set(ours)) > 3  # the layout does change with the threshold


def test_near_duplicate_pairs_respect_threshold():
    base = "my order of hiking boots arrived with a broken sole and I would like a replacement pair please"
    texts = [base, base + " today", "completely unrelated question about opening hours of the shop in winter"]
    pairs = dup.near_duplicate_pairs(dup.minhash_signatures(texts), 0.8)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    assert dup.near_duplicate_pairs(dup.minhash_signatures(texts), 0.99) == []


def test_audit_groups_exact_near_and_conflicts(write_jsonl):
    records = distinct_tickets(12)
    long_q = ("my order of hiking boots arrived last tuesday with a broken sole on the left boot and a missing lace, "
              "the box was also crushed; I would like a replacement pair sent to the same address as soon as possible")
    records += [records[0], records[0],  # exact copies of line 1
                chat(long_q, "a"), chat(long_q + " today", "a"),  # near-duplicates
                chat("Is the tent waterproof?", "yes"), chat("Is the tent waterproof?", "no")]  # conflict
    result = audit_files([write_jsonl(records)], AuditOptions())
    lines = result.line_groups
    assert lines(result.duplicate_groups) == [[1, 13, 14]]
    assert lines(result.near_duplicate_groups) == [[15, 16]]
    assert lines(result.conflict_groups) == [[17, 18]]
    codes = [(i.code, i.line) for i in result.issues]
    assert ("duplicate.exact", 13) in codes and ("duplicate.near", 16) in codes and ("duplicate.conflict", 18) in codes
    assert 13 not in [result.metas[i]["line"] for i in result.splits]  # extra copies never reach a split
