"""Figures for metric reports: confusion matrix and metric values with their 95 % CIs (matplotlib)."""
from __future__ import annotations

import math


ANNOTATE_MAX_LABELS = 20  # above this many labels only the highlighted cells carry their count (else unreadable)
CELL_INCHES_MANY = 0.16  # figure inches per label row/column when there are many labels (77 -> ~12 in, 6 pt ticks)


def plot_confusion(confusion: dict, title: str = "Confusion matrix", highlight: int | None = None):
    """Counts per (reference row, predicted column), labels sorted; the diagonal is correct. The ``highlight``
    (default ``per_label.TOP_CONFUSIONS``) largest off-diagonal cells are boxed in red with their count, so the
    figure stays readable at banking77's 77 intents, where only those cells are annotated."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    from ftkit.metrics.per_label import TOP_CONFUSIONS, sorted_confusion, top_confusions

    confusion = sorted_confusion(confusion)
    matrix, rows, cols = confusion["matrix"], confusion["labels"], confusion["columns"]
    top = top_confusions(confusion, TOP_CONFUSIONS if highlight is None else highlight)
    many = len(cols) > ANNOTATE_MAX_LABELS
    if many:
        size = (2.5 + CELL_INCHES_MANY * len(cols), 2.0 + CELL_INCHES_MANY * len(rows))
    else:
        size = (1.6 + 0.8 * len(cols), 1.2 + 0.6 * len(rows))
    fig, ax = plt.subplots(figsize=size)
    arr = np.asarray(matrix, dtype=float)
    masked = np.ma.masked_where(arr <= 0, arr)  # empty cells white; log colours so 1-2 confusions still show
    ax.imshow(masked, cmap="Blues", aspect="auto", norm=LogNorm(vmin=1, vmax=max(1.0, arr.max(initial=1.0))),
              interpolation="nearest")
    biggest = arr.max(initial=0.0)
    if not many:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center",
                        color="white" if count > biggest / 2 else "black")
    for cell in top:
        i, j = rows.index(cell["reference"]), cols.index(cell["answered"])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        if many:
            ax.text(j, i, str(cell["count"]), ha="center", va="center", color="red", fontsize=6, fontweight="bold")
    font = 6 if many else 9
    ax.set_xticks(range(len(cols)), cols, rotation=90 if many else 30, ha="center" if many else "right",
                  fontsize=font)
    ax.set_yticks(range(len(rows)), rows, fontsize=font)
    ax.set_xlabel("answered (predicted)")
    ax.set_ylabel("reference")
    ax.set_title(f"{title}" + (f" (red: the {len(top)} most frequent confusions)" if top else ""))
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
