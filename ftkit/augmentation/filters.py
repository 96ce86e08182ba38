"""The checks a candidate must pass before any person sees it, each with its rejection reason.

In order (a candidate gets the first reason that applies): ``shape`` (not an ``{"input", "answer"}`` object with
text in both), ``record_check`` (the data audit's record checks: an error or warning), ``label_unknown`` (its
label is not in the label set), ``pii`` (personal data or a secret: dropped, never masked), ``test_leak`` (an
exact or near duplicate of a TEST example), ``duplicate_train`` / ``near_duplicate_train`` (of a training
example), ``off_target`` (a label target's candidate with another label), ``duplicate_candidate`` /
``near_duplicate_candidate`` (of an earlier candidate that was kept).

Near duplicates use the data audit's MinHash signatures (``ftkit.data.duplicates``) and its
``data.near_duplicate_threshold``; the estimated Jaccard similarity of each candidate with every training and
test example is computed directly on the signatures (exact on the signatures, no LSH miss), in blocks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ftkit.data import duplicates as dup
from ftkit.data.checks import CHECKS
from ftkit.data.pii import find_pii_many
from ftkit.data.record_checks import TaskContext, derive_label, run_record_checks

REASONS = {
    "shape": "not an object with text in \"input\" and \"answer\"",
    "record_check": "fails a data-audit record check",
    "label_unknown": "label not in the label set",
    "off_target": "not the label it was asked for",
    "pii": "contains personal data or a secret (dropped, not masked)",
    "test_leak": "exact or near duplicate of a test example (would leak the test set)",
    "duplicate_train": "exact duplicate of a training example",
    "near_duplicate_train": "near duplicate of a training example",
    "duplicate_candidate": "exact duplicate of another candidate",
    "near_duplicate_candidate": "near duplicate of another candidate",
}
REJECTED_SEVERITIES = ("error", "warning")  # record-check levels that reject a candidate (stricter than the audit)
BLOCK_ROWS = 2048  # signature rows compared per block: (candidates x 2048 x 64) booleans stay a few MB


@dataclass
class Filtered:
    kept: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # candidate + reason + detail

    def counts(self) -> dict:
        out = {reason: 0 for reason in REASONS}
        for r in self.rejected:
            out[r["reason"]] += 1
        return out


def to_messages(item, system_prompt: str) -> list[dict] | None:
    """A candidate's chat messages, or None when it is not an ``{"input": text, "answer": text|object}`` object."""
    if not isinstance(item, dict):
        return None
    text, answer = item.get("input"), item.get("answer")
    if isinstance(answer, (dict, list)):
        answer = json.dumps(answer, ensure_ascii=False)
    if not isinstance(text, str) or not text.strip() or not isinstance(answer, str) or not answer.strip():
        return None
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return system + [{"role": "user", "content": text.strip()}, {"role": "assistant", "content": answer.strip()}]


def check_one(messages: list[dict], task: TaskContext, labels: tuple[str, ...]) -> tuple[str, str]:
    """(reason, detail) of the per-candidate checks (record checks, label, PII); ("", "") when it passes."""
    for code, message, _, _ in run_record_checks(messages, task):
        if CHECKS[code].severity in REJECTED_SEVERITIES:
            return "record_check", f"{code}: {message}"
    label = derive_label(messages, task)
    if labels and (task.type == "classification" or task.label_field):
        if label is None or label not in labels:
            return "label_unknown", f"label {label!r} is not one of {', '.join(labels[:12])}"
    hits = [h for texts in find_pii_many([m["content"] for m in messages]) for h in texts]
    if hits:
        return "pii", ", ".join(sorted({h.kind for h in hits}))
    return "", ""


def filter_candidates(candidates: list[dict], train: list[dict], test: list[dict], task: TaskContext,
                      labels: tuple[str, ...], system_prompt: str, threshold: float,
                      targets: dict[str, dict] | None = None) -> Filtered:
    """Apply every filter to ``candidates`` (from ``CandidateLog.candidates``); kept ones get ``messages``/``label``."""
    out = Filtered()
    passing = []
    for cand in candidates:
        messages = to_messages(cand["item"], system_prompt)
        if messages is None:
            out.rejected.append({**cand, "reason": "shape", "detail": REASONS["shape"]})
            continue
        reason, detail = check_one(messages, task, labels)
        if reason:
            out.rejected.append({**cand, "messages": messages, "reason": reason, "detail": detail})
            continue
        passing.append({**cand, "messages": messages, "label": derive_label(messages, task)})
    if not passing:
        return out
    sig = dup.minhash_signatures([dup.near_dup_text(c["messages"]) for c in passing])
    test_key = {dup.conversation_keys(r["messages"])[0]: r for r in test}
    train_key = {dup.conversation_keys(r["messages"])[0]: r for r in train}
    near_test = _best_match(sig, test, threshold)
    near_train = _best_match(sig, train, threshold)
    kept_keys: dict[bytes, str] = {}
    kept_rows: list[int] = []
    for i, cand in enumerate(passing):
        key = dup.conversation_keys(cand["messages"])[0]
        reason, detail = "", ""
        if key in test_key or near_test[i] is not None:
            other = test_key.get(key) or test[near_test[i][0]]
            reason, detail = "test_leak", f"like test example {other.get('id')}" + (
                "" if key in test_key else f" (similarity {near_test[i][1]:.2f})")
        elif key in train_key:
            reason, detail = "duplicate_train", f"same as training example {train_key[key].get('id')}"
        elif near_train[i] is not None:
            reason, detail = "near_duplicate_train", (f"like training example {train[near_train[i][0]].get('id')} "
                                                      f"(similarity {near_train[i][1]:.2f})")
        elif (target := (targets or {}).get(cand["target"]) or {}).get("kind") == "label" and \
                cand["label"] != target.get("label"):
            reason, detail = "off_target", f"label {cand['label']!r}, asked for {target.get('label')!r}"
        elif key in kept_keys:
            reason, detail = "duplicate_candidate", f"same as candidate {kept_keys[key]}"
        else:
            close = _closest(sig[i], sig[kept_rows], threshold) if kept_rows else None
            if close is not None:
                reason, detail = "near_duplicate_candidate", (f"like candidate {passing[kept_rows[close[0]]]['cid']} "
                                                              f"(similarity {close[1]:.2f})")
        if reason:
            out.rejected.append({**cand, "reason": reason, "detail": detail})
            continue
        kept_keys[key] = cand["cid"]
        kept_rows.append(i)
        out.kept.append(cand)
    return out


def _best_match(sig: np.ndarray, records: list[dict], threshold: float) -> list[tuple[int, float] | None]:
    """Per candidate row: (index of the most similar record, estimated Jaccard) when at or above threshold."""
    best: list[tuple[int, float] | None] = [None] * len(sig)
    if not records:
        return best
    texts = [dup.near_dup_text(r["messages"]) for r in records]
    for lo in range(0, len(texts), BLOCK_ROWS):
        other = dup.minhash_signatures(texts[lo:lo + BLOCK_ROWS])  # (block, NUM_PERM)
        sims = (sig[:, None, :] == other[None, :, :]).mean(axis=2)  # (candidates, block)
        empty = (other == np.uint32(0xFFFFFFFF)).all(axis=1)
        sims[:, empty] = 0.0  # a record without words matches every other empty one: not a duplicate
        for i, j in enumerate(sims.argmax(axis=1)):
            s = float(sims[i, j])
            if s >= threshold and (best[i] is None or s > best[i][1]):
                best[i] = (lo + int(j), s)
    return best


def _closest(row: np.ndarray, others: np.ndarray, threshold: float) -> tuple[int, float] | None:
    sims = (others == row[None, :]).mean(axis=1)
    j = int(sims.argmax())
    return (j, float(sims[j])) if sims[j] >= threshold else None
