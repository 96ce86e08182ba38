"""Metrics every task gets: stop behaviour, length vs reference, latency, output tokens."""
from __future__ import annotations

import numpy as np

from ftkit.metrics.bootstrap import Statistic, mean_statistic, percentile_statistic


def _length_ratio(outputs: list[str], references: list[str]) -> Statistic:
    """Total answer characters / total reference characters (1.0 = same length; > 1 = wordier)."""
    stats = np.array([[len(o), len(r)] for o, r in zip(outputs, references)], dtype=float).reshape(-1, 2)

    def reduce(resampled: np.ndarray) -> np.ndarray:  # (b, n, 2) -> (b,)
        sums = resampled.sum(axis=1)
        return np.divide(sums[:, 0], sums[:, 1], out=np.full(len(sums), np.nan), where=sums[:, 1] > 0)

    with np.errstate(divide="ignore", invalid="ignore"):
        per_example = np.where(stats[:, 1] > 0, stats[:, 0] / np.maximum(stats[:, 1], 1), np.nan)
    return Statistic("length_ratio", stats, reduce, per_example, None,
                     "answer length / reference length in characters (1 = same length)")


def statistics(predictions: list) -> list[Statistic]:
    outputs = [p.output for p in predictions]
    references = [p.reference for p in predictions]
    return [
        mean_statistic("runaway_rate", [float(p.hit_max_new_tokens) for p in predictions], higher_is_better=False,
                       description="answers cut off at max_new_tokens without stopping"),
        _length_ratio(outputs, references),
        mean_statistic("mean_output_tokens", [p.n_output_tokens for p in predictions], higher_is_better=False,
                       description="generated tokens per answer"),
        percentile_statistic("latency_p50_s", [p.latency_s for p in predictions], 50,
                             description="median seconds per request/batch"),
        percentile_statistic("latency_p95_s", [p.latency_s for p in predictions], 95,
                             description="95th percentile seconds per request/batch"),
    ]
