"""Drift statistics: production inputs/outputs against the training data's reference distribution.

Lengths (tokens of the user's input, tokens of the answer) are compared with the population stability index
(PSI, over the reference's deciles) and the two-sample Kolmogorov-Smirnov test; the label mix with PSI and a
chi-square goodness-of-fit test. A feature is in **alert** when the shift is both large (PSI >= the alert
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
    """(D, p): the largest gap between the two empirical CDFs, and its asymptotic p-value (Kolmogorov
    distribution with Stephens' small-sample correction; conservative for integer-valued lengths)."""
    a, b = sorted(a), sorted(b)
    n, m = len(a), len(b)
    if not n or not m:
        return 0.0, 1.0
    d, i, j = 0.0, 0, 0
    while i < n and j < m:
        x = min(a[i], b[j])
        while i < n and a[i] == x:
            i += 1
        while j < m and b[j] == x:
            j += 1
        d = max(d, abs(i / n - j / m))
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    return d, kolmogorov_sf(lam)


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) = 2 sum_k (-1)^(k-1) exp(-2 k^2 lam^2), clamped to [0, 1].

    >>> round(kolmogorov_sf(1.36), 3)
    0.049
    """
    if lam < 1e-3:
        return 1.0
    total = sum(2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(1.0, max(0.0, total))


def chi2_sf(x: float, dof: int) -> float:
    """P(chi-square with ``dof`` degrees of freedom > x): the regularised upper incomplete gamma Q(dof/2, x/2).

    >>> round(chi2_sf(3.841, 1), 3)
    0.05
    """
    if dof <= 0:
        return 1.0
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    return 1.0 - _gamma_series(a, z) if z < a + 1 else _gamma_continued_fraction(a, z)


def _gamma_series(a: float, z: float) -> float:
    """Lower regularised gamma P(a, z) by its series (converges fast for z < a + 1)."""
    term = total = 1.0 / a
    k = a
    for _ in range(1000):
        k += 1
        term *= z / k
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-z + a * math.log(z) - math.lgamma(a))


def _gamma_continued_fraction(a: float, z: float) -> float:
    """Upper regularised gamma Q(a, z) by Lentz's continued fraction (z >= a + 1)."""
    tiny = 1e-300
    b = z + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return math.exp(-z + a * math.log(z) - math.lgamma(a)) * h


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
    stat = sum((o - e) ** 2 / e for o, e in cells if e > 0)
    dof = len(cells) - 1
    return stat, dof, chi2_sf(stat, dof)


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
