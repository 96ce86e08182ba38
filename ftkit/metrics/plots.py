"""Figures for metric reports: confusion matrix and metric values with their 95 % CIs (matplotlib)."""
from __future__ import annotations

import math


def plot_confusion(confusion: dict, title: str = "Confusion matrix"):
    """Counts per (reference row, predicted column), annotated; the diagonal is correct."""
    import matplotlib.pyplot as plt

    matrix, rows, cols = confusion["matrix"], confusion["labels"], confusion["columns"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cols), 1.0 + 0.6 * len(rows)))
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    top = max((max(r) for r in matrix if r), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > top / 2 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_metrics(report, names: list[str] | None = None, title: str = "Metrics with 95% bootstrap CIs"):
    """Horizontal bars of the 0-1 rate metrics with CI whiskers (BLEU/chrF are scaled from 0-100)."""
    import matplotlib.pyplot as plt

    metrics = report.metrics()
    names = [n for n in (names or list(metrics)) if n in metrics and _is_rate(n, metrics[n])]
    scale = {n: 100.0 if n in ("bleu", "chrf") else 1.0 for n in names}
    values = [_nan0(metrics[n]["value"]) / scale[n] for n in names]
    lows = [max(0.0, v - _nan0(metrics[n]["ci_low"]) / scale[n]) for v, n in zip(values, names)]
    highs = [max(0.0, _nan0(metrics[n]["ci_high"]) / scale[n] - v) for v, n in zip(values, names)]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.0))
    ax.barh(range(len(names)), values, xerr=[lows, highs], color="#4C78A8", capsize=3)
    ax.set_yticks(range(len(names)), [f"{n} (/100)" if scale[n] > 1 else n for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("value (0-1)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _is_rate(name: str, metric: dict) -> bool:
    # Rates live in [0, 1]; latency, token counts and the length ratio have other scales.
    return name in ("bleu", "chrf") or (not name.startswith(("latency", "mean_", "length_")))


def _nan0(value) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
