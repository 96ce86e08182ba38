"""Metric statistics that can be bootstrapped, alone or paired.

Every metric is a ``Statistic``: a per-example array ``stats`` of shape (n, k) plus ``reduce``, which maps
a stack of resampled datasets (b, n, k) to b metric values. Mean-type metrics use k = 1 (the per-example
score); corpus-level metrics keep additive sufficient statistics (macro-F1: tp/fp/fn per class; BLEU and
chrF: sacrebleu's n-gram counts) so a resample is recomputed exactly, as sacrebleu's own paired bootstrap
does. The same arrays let the evaluation phase compare two systems on the *same* resamples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

N_BOOT = 1000
_CHUNK_ELEMENTS = 4_000_000  # resample chunk size bound: b * n * k float64s ~ 32 MB


@dataclass
class Statistic:
    name: str
    stats: np.ndarray  # (n, k) per-example statistics
    reduce: Callable[[np.ndarray], np.ndarray]  # (b, n, k) -> (b,)
    per_example: np.ndarray | None = None  # (n,) per-example score for tables and paired tests; NaN = undefined
    higher_is_better: bool | None = True  # None: neither direction is better (e.g. length ratio, best at 1)
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.stats.shape[0])

    def value(self) -> float:
        if self.n == 0:
            return float("nan")
        return float(self.reduce(self.stats[None])[0])

    def on(self, idx: np.ndarray) -> np.ndarray:
        """Metric values on resamples ``idx`` (b, n) of example indices, computed in memory-bounded chunks."""
        k = self.stats.shape[1]
        step = max(1, _CHUNK_ELEMENTS // max(1, self.n * k))
        return np.concatenate([self.reduce(self.stats[idx[i:i + step]]) for i in range(0, len(idx), step)])


def mean_statistic(name: str, scores, higher_is_better: bool = True, description: str = "") -> Statistic:
    """A metric that is the mean of per-example scores (accuracy, exact match, validity rates, ROUGE-L).

    >>> mean_statistic("acc", [1, 0, 1, 1]).value()
    0.75
    """
    scores = np.asarray(scores, dtype=float)
    return Statistic(name, scores.reshape(-1, 1), lambda a: np.nanmean(a[..., 0], axis=1), scores,
                     higher_is_better, description)


def percentile_statistic(name: str, values, q: float, higher_is_better: bool = False,
                         description: str = "") -> Statistic:
    """A percentile of per-example values (latency p50/p95), linear interpolation as numpy's default.

    >>> percentile_statistic("p50", [1.0, 2.0, 3.0, 10.0], 50).value()
    2.5
    """
    values = np.asarray(values, dtype=float)
    return Statistic(name, values.reshape(-1, 1), lambda a: np.percentile(a[..., 0], q, axis=1), values,
                     higher_is_better, description)


def resample_indices(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n) example indices drawn with replacement; same seed + n = same resamples."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(stat: Statistic, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat`` (NaN, NaN when there are no examples)."""
    if stat.n == 0:
        return float("nan"), float("nan")
    values = stat.on(resample_indices(stat.n, n_boot, seed))
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(values, [tail, 100 - tail]) if np.isfinite(values).any() else (np.nan, np.nan)
    return float(lo), float(hi)


def paired_bootstrap(a: Statistic, b: Statistic, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> dict:
    """Difference a - b of the same metric for two systems on the same examples, with a paired CI.

    Both statistics must be over the same examples in the same order. ``p_not_better`` is the share of
    resamples where a is not better than b (in the metric's direction): a one-sided bootstrap p-value.
    """
    if a.n != b.n:
        raise ValueError(f"paired bootstrap needs the same examples: {a.n} vs {b.n}")
    idx = resample_indices(a.n, n_boot, seed)
    diffs = a.on(idx) - b.on(idx)
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(diffs, [tail, 100 - tail])
    p_not_better = None
    if a.higher_is_better is not None:
        p_not_better = float(np.mean(diffs <= 0 if a.higher_is_better else diffs >= 0))
    return {"metric": a.name, "a": a.value(), "b": b.value(), "diff": a.value() - b.value(),
            "ci_low": float(lo), "ci_high": float(hi), "p_not_better": p_not_better}
