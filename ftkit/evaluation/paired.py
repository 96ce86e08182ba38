"""Paired comparison of two systems scored on the same examples: who wins each example, by how much overall
(with a paired bootstrap CI), is it significant (McNemar for right/wrong metrics), and what got worse.

"Paired" matters: both systems answer the *same* test examples, so the per-example differences carry far
less noise than two independent accuracies; a paired test finds a real 5-point gain that two overlapping
CIs would hide. The bootstrap itself lives in ``ftkit.metrics.bootstrap`` (shared with the baseline phase);
this module adds the exact tests and the per-example bookkeeping. Only numpy and the standard library
(``math.comb`` / ``math.erfc``) are used: the two p-values below need nothing more.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Below this many discordant pairs the chi-square approximation of McNemar's test is poor; use the exact
# binomial test (the usual rule of thumb, e.g. Fagerland et al. 2013 recommend exact/mid-p for small b + c).
EXACT_BELOW = 25


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (sign test): 2 x the smaller tail, capped at 1.

    >>> binom_two_sided(1, 7)  # 2 * (C(7,0) + C(7,1)) / 2**7
    0.125
    >>> binom_two_sided(0, 0)
    1.0
    """
    if n <= 0:
        return 1.0
    tail = min(k, n - k)
    # Exact integer arithmetic first, one division at the end: no underflow for n in the thousands.
    p = 2 * sum(math.comb(n, i) for i in range(tail + 1)) / 2 ** n
    return float(min(1.0, p))


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired right/wrong outcomes.

    ``both_right``/``both_wrong`` are the concordant cells; ``old_only`` = baseline right, new wrong (the
    regressions); ``new_only`` = baseline wrong, new right (the fixes). Only the discordant cells matter.
    """

    both_right: int
    old_only: int
    new_only: int
    both_wrong: int
    chi2: float  # with Edwards' continuity correction: (|b - c| - 1)^2 / (b + c)
    p_chi2: float
    p_exact: float
    method: str  # "exact" or "chi2": the one ``p_value`` reports
    p_value: float

    def to_dict(self) -> dict:
        return asdict(self)


def mcnemar(old_correct, new_correct) -> McNemar:
    """McNemar's test of baseline (old) vs fine-tuned (new) right/wrong vectors of the same examples.

    >>> r = mcnemar([1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 1, 1, 1, 1, 1, 1])
    >>> (r.old_only, r.new_only, r.method, r.p_value)
    (1, 6, 'exact', 0.125)
    """
    old = _binary(old_correct, "baseline")
    new = _binary(new_correct, "fine-tuned")
    if old.shape != new.shape:
        raise ValueError(f"McNemar needs the same examples: {old.size} vs {new.size} outcomes")
    b = int(np.sum(old & ~new))
    c = int(np.sum(~old & new))
    discordant = b + c
    chi2 = (max(abs(b - c) - 1, 0) ** 2 / discordant) if discordant else 0.0
    # Survival function of chi-square with 1 degree of freedom: P(X > x) = erfc(sqrt(x / 2)).
    p_chi2 = float(math.erfc(math.sqrt(chi2 / 2))) if discordant else 1.0
    p_exact = binom_two_sided(min(b, c), discordant)
    method = "exact" if discordant < EXACT_BELOW else "chi2"
    return McNemar(int(np.sum(old & new)), b, c, int(np.sum(~old & ~new)), round(chi2, 6), p_chi2, p_exact,
                   method, p_exact if method == "exact" else p_chi2)


def _binary(values, who: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if not is_binary(arr):
        raise ValueError(f"McNemar needs right/wrong (0/1) scores; the {who} scores have other values")
    return arr.astype(bool)


def is_binary(scores) -> bool:
    """True when every score is 0 or 1 (an accuracy-type metric); NaN (undefined) is not binary.

    >>> is_binary([0, 1, 1.0]), is_binary([0.5, 1]), is_binary([])
    (True, False, False)
    """
    arr = np.asarray(scores, dtype=float)
    return bool(arr.size) and bool(np.all((arr == 0) | (arr == 1)))


def outcomes(new_scores, old_scores, higher_is_better: bool = True, tolerance: float = 1e-9) -> np.ndarray:
    """Per example: +1 the new system wins, -1 it loses, 0 tie (within ``tolerance``, or either score undefined).

    >>> outcomes([1, 0, 0.5], [0, 0, 0.7]).tolist()
    [1, 0, -1]
    """
    new = np.asarray(new_scores, dtype=float)
    old = np.asarray(old_scores, dtype=float)
    if new.shape != old.shape:
        raise ValueError(f"paired outcomes need the same examples: {new.size} vs {old.size} scores")
    diff = (new - old) * (1 if higher_is_better else -1)
    diff = np.where(np.isfinite(diff), diff, 0.0)
    return np.where(diff > tolerance, 1, np.where(diff < -tolerance, -1, 0)).astype(int)


def win_loss_tie(new_scores, old_scores, higher_is_better: bool = True) -> dict:
    """Counts of per-example wins/losses/ties of the new system, and its win rate with ties counted half
    (0.5 = parity), plus the exact sign-test p-value of wins vs losses.

    >>> win_loss_tie([1, 1, 0, 1], [0, 1, 1, 0])
    {'wins': 2, 'losses': 1, 'ties': 1, 'n': 4, 'win_rate': 0.625, 'p_sign': 1.0}
    """
    o = outcomes(new_scores, old_scores, higher_is_better)
    wins, losses = int(np.sum(o == 1)), int(np.sum(o == -1))
    n = int(o.size)
    ties = n - wins - losses
    rate = (wins + 0.5 * ties) / n if n else float("nan")
    return {"wins": wins, "losses": losses, "ties": ties, "n": n, "win_rate": rate,
            "p_sign": binom_two_sided(min(wins, losses), wins + losses)}


def regressions(ids, old_scores, new_scores, higher_is_better: bool = True, margin: float = 0.1) -> list[dict]:
    """Examples the baseline did better on: for right/wrong scores every right -> wrong; for continuous scores
    (ROUGE-L, field accuracy) a drop of more than ``margin`` (same units as the score, 0-1). Worst first.

    >>> regressions(["a", "b", "c"], [1, 1, 0], [0, 1, 1])
    [{'id': 'a', 'baseline': 1.0, 'fine_tuned': 0.0, 'drop': 1.0}]
    """
    old = np.asarray(old_scores, dtype=float)
    new = np.asarray(new_scores, dtype=float)
    drop = (old - new) * (1 if higher_is_better else -1)
    threshold = 0.5 if (is_binary(old) and is_binary(new)) else margin
    rows = [{"id": str(i), "baseline": float(o), "fine_tuned": float(n), "drop": float(d)}
            for i, o, n, d in zip(ids, old, new, drop) if np.isfinite(d) and d > threshold]
    return sorted(rows, key=lambda r: -r["drop"])


def compare_statistics(new, old, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """One row of the baseline-vs-fine-tuned table for a metric: both values with CIs, the paired difference
    with its CI, win/loss/tie, and McNemar when the metric is right/wrong per example.

    ``new``/``old`` are ``ftkit.metrics.bootstrap.Statistic`` objects of the same metric over the same examples
    in the same order. ``significant``: the difference's CI excludes 0 in the metric's better direction.
    """
    from ftkit.metrics.bootstrap import bootstrap_ci, paired_bootstrap

    if new.n != old.n:
        raise ValueError(f"metric '{new.name}': the systems were scored on different numbers of examples "
                         f"({new.n} vs {old.n}); compare them on the same test split")
    paired = paired_bootstrap(new, old, n_boot=n_boot, seed=seed, level=level)
    row = {"metric": new.name, "higher_is_better": new.higher_is_better,
           "baseline": old.value(), "baseline_ci": list(bootstrap_ci(old, n_boot, seed, level)),
           "fine_tuned": new.value(), "fine_tuned_ci": list(bootstrap_ci(new, n_boot, seed, level)),
           "diff": paired["diff"], "diff_ci": [paired["ci_low"], paired["ci_high"]],
           "p_not_better": paired["p_not_better"], "p_bootstrap": bootstrap_p_two_sided(new, old, n_boot, seed),
           "n": new.n}
    # Significant = the paired CI excludes 0 (for "closer to 1" metrics such as length ratio: either side).
    row["significant"] = bool(paired["ci_low"] > 0 or paired["ci_high"] < 0)
    if new.per_example is not None and old.per_example is not None and new.higher_is_better is not None:
        row["win_loss_tie"] = win_loss_tie(new.per_example, old.per_example, new.higher_is_better)
        if is_binary(new.per_example) and is_binary(old.per_example):
            row["mcnemar"] = mcnemar(old.per_example, new.per_example).to_dict()
    return row


def bootstrap_p_two_sided(new, old, n_boot: int = 1000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value: 2 x the smaller share of resamples with difference <= 0 or >= 0
    (same resamples as ``paired_bootstrap`` with the same seed). Identical systems give 1, not 0.

    >>> from ftkit.metrics.bootstrap import mean_statistic
    >>> bootstrap_p_two_sided(mean_statistic("a", [0, 0, 1]), mean_statistic("a", [0, 0, 1]))
    1.0
    """
    from ftkit.metrics.bootstrap import resample_indices

    idx = resample_indices(new.n, n_boot, seed)
    diffs = new.on(idx) - old.on(idx)
    diffs = diffs[np.isfinite(diffs)]
    if not diffs.size:
        return 1.0
    return float(min(1.0, 2 * min(np.mean(diffs <= 0), np.mean(diffs >= 0))))


def p_value(row: dict) -> float:
    """The two-sided significance of one comparison row: McNemar's p for right/wrong metrics, else the
    paired bootstrap's (a share of resamples, so reported as "< 1/n_boot" when 0).

    >>> p_value({"mcnemar": {"p_value": 0.01}, "p_bootstrap": 0.2}), p_value({"p_bootstrap": 0.04})
    (0.01, 0.04)
    """
    if row.get("mcnemar"):
        return float(row["mcnemar"]["p_value"])
    return float(row.get("p_bootstrap", 1.0))


def fmt_p(p: float, n_boot: int = 1000) -> str:
    """p-values as people read them; a bootstrap share of 0 is '< 1/n_boot', not 0.

    >>> fmt_p(0.0), fmt_p(0.0123), fmt_p(0.5), fmt_p(3e-7)
    ('< 0.001', '0.012', '0.5', '3e-07')
    """
    if p <= 0:
        return f"< {1 / n_boot:.3g}"
    return f"{p:.2g}"


def p_phrase(p: float, n_boot: int = 1000) -> str:
    """'p = 0.012' or 'p < 0.001', for sentences.

    >>> p_phrase(0.0), p_phrase(0.04)
    ('p < 0.001', 'p = 0.04')
    """
    text = fmt_p(p, n_boot)
    return f"p {text}" if text.startswith("<") else f"p = {text}"
