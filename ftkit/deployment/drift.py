"""Drift statistics: production inputs/outputs against the training data's reference distribution.

Lengths (tokens of the user's input, tokens of the answer) are compared with the population stability index
(PSI, over the reference's deciles) and the two-sample Kolmogorov-Smirnov test; the label mix with PSI and a
chi-square goodness-of-fit test (both tests from ``scipy.stats``, imported only when ``ftkit monitor`` runs). A feature is in **alert** when the shift is both large (PSI >= the alert
threshold, 0.25 by default) and significant (p < 0.01); **watch** when it is either PSI >= 0.1 or p < 0.01;
else **stable**. Fewer than ``MIN_SAMPLES`` production rows is **too_few** (no verdict).

PSI = sum_i (p_i - q_i) ln(p_i / q_i) over bins, p = production shares, q = reference shares, both floored at
1e-4 so an empty bin does not make it infinite. Conventional reading: < 0.1 stable, 0.1-0.25 moderate shift,
> 0.25 major shift.

>>> round(psi([0.5, 0.5], [0.5, 0.5]), 6)
0.0
>>> round(psi([0.9, 0.1], [0.5, 0.5]), 4)
0.8789
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass

PSI_WATCH = 0.10
PSI_ALERT = 0.25
P_VALUE = 0.01
MIN_SAMPLES = 30
SHARE_FLOOR = 1e-4
MAX_REFERENCE_VALUES = 5000  # a quantile sketch of the reference lengths is enough for KS and deciles
UNPARSED = "(no label)"
NEW_LABEL = "(new label)"


def psi(production: list[float], reference: list[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    total = 0.0
    for p, q in zip(production, reference):
        p, q = max(p, SHARE_FLOOR), max(q, SHARE_FLOOR)
        total += (p - q) * math.log(p / q)
    return total


def decile_edges(values: list[float]) -> list[float]:
    """Distinct upper edges of the reference's 10 %, 20 %, ... 90 % quantiles (ties merge bins).

    >>> decile_edges(list(range(1, 101)))
    [10, 20, 30, 40, 50, 60, 70, 80, 90]
    """
    ordered = sorted(values)
    n = len(ordered)
    return sorted({ordered[max(0, math.ceil(q * n / 10) - 1)] for q in range(1, 10)}) if n else []


def bin_shares(values: list[float], edges: list[float]) -> list[float]:
    """Share of ``values`` in each bin (-inf, e1], (e1, e2], ..., (e_k, inf)."""
    counts = Counter(bisect_left(edges, v) for v in values)
    return [counts.get(i, 0) / max(1, len(values)) for i in range(len(edges) + 1)]


def ks_two_sample(a: list[float], b: list[float]) -> tuple[float, float]:
    """(D, p): the largest gap between the two empirical CDFs and its p-value, by ``scipy.stats.ks_2samp``
    (exact for small samples, asymptotic for large; ties, as in integer lengths, are handled by scipy)."""
    if not len(a) or not len(b):
        return 0.0, 1.0
    from scipy import stats

    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def chi2_sf(x: float, dof: int) -> float:
    """P(chi-square with ``dof`` degrees of freedom > x), by ``scipy.stats.chi2.sf``.

    >>> round(chi2_sf(3.841, 1), 3)
    0.05
    """
    if dof <= 0 or x <= 0:
        return 1.0
    from scipy import stats

    return float(stats.chi2.sf(x, dof))


def chi_square_gof(observed: dict[str, int], expected_shares: dict[str, float], min_expected: float = 5.0) -> tuple[float, int, float]:
    """(statistic, degrees of freedom, p) of observed counts against expected shares; categories expected
    fewer than ``min_expected`` times are pooled (the test's usual validity rule)."""
    n = sum(observed.values())
    if n == 0:
        return 0.0, 0, 1.0
    cells, pool_o, pool_e = [], 0, 0.0
    for cat, share in expected_shares.items():
        e = share * n
        if e < min_expected:
            pool_o, pool_e = pool_o + observed.get(cat, 0), pool_e + e
        else:
            cells.append((observed.get(cat, 0), e))
    if pool_e > 0:
        cells.append((pool_o, pool_e))
    cells = [(o, e) for o, e in cells if e > 0]
    dof = len(cells) - 1
    if dof <= 0:
        return 0.0, max(dof, 0), 1.0
    from scipy import stats

    obs = [o for o, _ in cells]
    exp = [e * sum(obs) / sum(e for _, e in cells) for _, e in cells]  # scipy wants equal totals
    result = stats.chisquare(obs, exp)
    return float(result.statistic), dof, float(result.pvalue)


def quantile_sketch(values: list[float], size: int = MAX_REFERENCE_VALUES) -> list[float]:
    """``values`` sorted, or ``size`` evenly spaced order statistics of them when there are more."""
    ordered = sorted(values)
    if len(ordered) <= size:
        return ordered
    return [ordered[round(i * (len(ordered) - 1) / (size - 1))] for i in range(size)]


@dataclass
class FeatureDrift:
    feature: str
    n_reference: int
    n_production: int
    reference_median: float
    production_median: float
    psi: float
    statistic: float  # KS D, or chi-square
    p_value: float
    test: str
    status: str  # stable | watch | alert | too_few

    def to_dict(self) -> dict:
        return asdict(self)


def status_of(psi_value: float, p: float, n: int, psi_alert: float = PSI_ALERT) -> str:
    """alert = large (PSI >= psi_alert) and significant (p < 0.01); watch = either; else stable."""
    if n < MIN_SAMPLES:
        return "too_few"
    if psi_value >= psi_alert and p < P_VALUE:
        return "alert"
    return "watch" if psi_value >= PSI_WATCH or p < P_VALUE else "stable"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2]) if ordered else 0.0


def length_drift(name: str, reference: dict, production: list[float], psi_alert: float = PSI_ALERT) -> FeatureDrift:
    """``reference``: {"values": sketch, "n": count}; PSI over the reference's deciles, KS on the values."""
    ref_values = reference["values"]
    edges = decile_edges(ref_values)
    value = psi(bin_shares(production, edges), bin_shares(ref_values, edges))
    d, p = ks_two_sample(ref_values, production)
    return FeatureDrift(name, int(reference["n"]), len(production), _median(ref_values), _median(production),
                        value, d, p, "Kolmogorov-Smirnov", status_of(value, p, len(production), psi_alert))


def label_drift(reference_counts: dict[str, int], production_labels: list[str | None],
                psi_alert: float = PSI_ALERT) -> FeatureDrift:
    """Label mix: PSI over reference labels + '(new label)' + '(no label)'; chi-square over known labels."""
    n_ref = sum(reference_counts.values()) or 1
    ref_share = {k: v / n_ref for k, v in reference_counts.items()}
    mapped = [UNPARSED if lab is None else (lab if lab in ref_share else NEW_LABEL) for lab in production_labels]
    counts = Counter(mapped)
    cats = list(ref_share) + [NEW_LABEL, UNPARSED]
    n = max(1, len(mapped))
    value = psi([counts.get(c, 0) / n for c in cats], [ref_share.get(c, 0.0) for c in cats])
    known = {c: counts.get(c, 0) for c in ref_share}
    stat, _, p = chi_square_gof(known, ref_share)
    if counts.get(NEW_LABEL, 0) + counts.get(UNPARSED, 0) > 0.05 * n:
        p = min(p, P_VALUE / 10)  # > 5 % answers outside the trained label set: significant by itself
    top_ref = max(ref_share, key=ref_share.get) if ref_share else ""
    return FeatureDrift("label mix", n_ref, len(mapped), ref_share.get(top_ref, 0.0), counts.get(top_ref, 0) / n,
                        value, stat, p, f"chi-square (top label '{top_ref}' share: reference vs production)",
                        status_of(value, p, len(mapped), psi_alert))
