"""Dataset-level checks, run once over every record's metadata after all files are read: exact duplicates,
conflicting answers, near-duplicates (MinHash LSH), train/test leakage, the split assignment and the profile."""
from __future__ import annotations

from collections import Counter

from ftkit.data import duplicates as dup
from ftkit.data.checks import Issue, make_issue
from ftkit.data.result import AuditResult
from ftkit.data.splits import assign_splits, split_fractions
from ftkit.data.stats import profile, profile_from, source_counts


def dataset_checks(result: AuditResult, opts) -> None:
    """Duplicates, conflicts, leakage, splits and profiles over all valid records."""
    metas = result.metas
    valid = [i for i, m in enumerate(metas) if m.get("valid")]
    role = {i: result.files[metas[i]["file"]].role for i in valid}
    train = [i for i in valid if role[i] == "train"]
    test = [i for i in valid if role[i] == "test"]
    sig_row = {i: r for r, i in enumerate(valid)}
    # exact duplicates and conflicts within the training files
    exact = [[train[j] for j in g] for g in dup.exact_groups([metas[i]["key"] for i in train])]
    result.duplicate_groups = exact
    dropped = set()
    for g in exact:
        for i in g[1:]:
            dropped.add(i)
            result.issues.append(_located(result, i, "duplicate.exact", f"exact duplicate of {result.where(g[0])}"))
    result.conflict_groups = [[train[j] for j in g] for g in dup.conflict_groups(
        [metas[i]["prompt_key"] for i in train], [metas[i]["answer_key"] for i in train])]
    for g in result.conflict_groups:
        for i in g[1:]:
            result.issues.append(_located(result, i, "duplicate.conflict",
                                          f"same prompt as {result.where(g[0])} with a different answer"))
    # near duplicates (train), and leakage (train vs test)
    kept = [i for i in train if i not in dropped]
    near = _near_groups(result, kept, sig_row, opts.near_duplicate_threshold)
    result.near_duplicate_groups = near
    for g in near:
        for i in g[1:]:
            result.issues.append(_located(result, i, "duplicate.near", f"near-duplicate of {result.where(g[0])}"))
    result.leaked = _leakage(result, kept, test, sig_row, opts.near_duplicate_threshold)
    # splits
    leaked = set(result.leaked)
    # Records with a source (synthetic, uat) are training data only: validation and test measure the client's own.
    sourced = [i for i in kept if i not in leaked and metas[i].get("source") is not None]
    pool = [i for i in kept if i not in leaked and metas[i].get("source") is None]
    group_of = {i: i for i in pool}
    for g in near:
        for i in g:
            if i in group_of:
                group_of[i] = g[0]
    split = opts.split
    fractions = split_fractions(split.get("train", 0.8), split.get("validation", 0.1), split.get("test", 0.1), bool(test))
    names = assign_splits([metas[i]["key"] for i in pool], [metas[i]["label"] for i in pool],
                          [group_of[i] for i in pool], fractions, int(split.get("seed", 42)),
                          [metas[i]["order"] for i in pool])
    result.splits = dict(zip(pool, names))
    result.splits.update({i: "train" for i in sourced})
    result.splits.update({i: "test" for i in test})
    result.stats = _stats(result, valid)


def _located(result: AuditResult, index: int, code: str, message: str) -> Issue:
    meta = result.metas[index]
    return make_issue(code, meta["line"], message, file=result.files[meta["file"]].path)


def _near_groups(result: AuditResult, indices: list[int], sig_row: dict, threshold: float) -> list[list[int]]:
    if len(indices) < 2:
        return []
    sigs = result.signatures[[sig_row[i] for i in indices]]
    pairs = dup.near_duplicate_pairs(sigs, threshold)
    return [[indices[j] for j in g] for g in dup.groups_from_pairs(len(indices), pairs)]


def _leakage(result: AuditResult, train: list[int], test: list[int], sig_row: dict, threshold: float) -> list[int]:
    if not train or not test:
        return []
    metas = result.metas
    test_keys = {metas[i]["key"]: i for i in test}
    leaked: dict[int, tuple[str, int]] = {}
    for i in train:
        if metas[i]["key"] in test_keys:
            leaked[i] = ("leakage.exact", test_keys[metas[i]["key"]])
    both = train + test
    sigs = result.signatures[[sig_row[i] for i in both]]
    n_train = len(train)
    for a, b, _ in dup.near_duplicate_pairs(sigs, threshold):
        if (a < n_train) != (b < n_train):  # one side in train, the other in test
            tr, te = (both[a], both[b]) if a < n_train else (both[b], both[a])
            leaked.setdefault(tr, ("leakage.near", te))
    for i, (code, other) in sorted(leaked.items()):
        result.issues.append(_located(result, i, code, f"also in the test file as {result.where(other)}; dropped from train"))
    return sorted(leaked)


def _stats(result: AuditResult, valid: list[int]) -> dict:
    metas = result.metas
    cols = result.profile_columns
    stats = profile_from(cols) if cols is not None and cols.n == len(valid) else profile([metas[i] for i in valid])
    stats.update({
        "files": [vars(f) for f in result.files],
        "n_records": result.n_records, "n_valid": len(valid),
        "n_errors": result.count("error"), "n_warnings": result.count("warning"), "n_info": result.count("info"),
        "issues_by_code": result.issue_counts(),
        "duplicates": {"exact_groups": len(result.duplicate_groups),
                       "exact_extra_copies": sum(len(g) - 1 for g in result.duplicate_groups),
                       "near_groups": len(result.near_duplicate_groups),
                       "near_records": sum(len(g) for g in result.near_duplicate_groups),
                       "conflict_groups": len(result.conflict_groups)},
        "pii": dict(Counter(h["kind"] for h in result.pii_hits())),
        "leaked_train_records": len(result.leaked),
        "splits": result.split_counts(),
        "sources": source_counts(metas, result.splits),
    })
    return stats
