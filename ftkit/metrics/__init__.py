"""Metrics by task type, each with a 95 % bootstrap confidence interval and per-example scores.

``evaluate(predictions, task)`` picks the task's metrics from a registry (``TASK_METRICS``), adds the
metrics every task gets (format compliance, runaway rate, length ratio, latency), and returns a
``MetricsReport``: values + CIs for results.json, per-example score vectors (aligned with ``ids``) for
failure analysis, and the ``Statistic`` objects the evaluation phase pairs with its own
(``paired_bootstrap``) to compare base and fine-tuned models on the same resamples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ftkit.errors import ConfigError
from ftkit.metrics import classification, common, free_text, structured
from ftkit.metrics.bootstrap import N_BOOT, Statistic, bootstrap_ci, paired_bootstrap

__all__ = ["HEADLINE", "MetricsReport", "N_BOOT", "Statistic", "TASK_METRICS", "bootstrap_ci", "evaluate",
           "metric_names", "paired_bootstrap"]


def _text_task(module) -> Callable:
    def compute(predictions: list, task) -> tuple[list[Statistic], dict]:
        return module.statistics([p.output for p in predictions], [p.reference for p in predictions], task)
    return compute


TASK_METRICS: dict[str, Callable[[list, object], tuple[list[Statistic], dict]]] = {
    "classification": classification.task_statistics,
    "structured_output": _text_task(structured),
    "free_text": _text_task(free_text),
    "chat": _text_task(free_text),
}
HEADLINE = {"classification": "accuracy", "structured_output": "field_accuracy", "free_text": "rouge_l",
            "chat": "rouge_l"}
# The names evaluate() reports per task type, known before anything runs: `ftkit run` checks the acceptance
# criteria against them in its pre-flight. tests/test_metrics.py compares them with what evaluate() returns.
TASK_METRIC_NAMES = {
    "classification": ("accuracy", "macro_f1", "format_compliance"),
    "structured_output": ("json_validity", "schema_compliance", "field_accuracy", "exact_match", "format_compliance"),
    "free_text": ("rouge_l", "bleu", "chrf", "exact_match", "format_compliance"),
    "chat": ("rouge_l", "bleu", "chrf", "exact_match", "format_compliance"),
}
LABEL_FIELD_METRIC_NAMES = ("label_accuracy", "label_macro_f1")  # structured_output with task.label_field
COMMON_METRIC_NAMES = ("runaway_rate", "length_ratio", "mean_output_tokens", "latency_p50_s", "latency_p95_s")
_PER_EXAMPLE_DETAILS = ("predicted_labels", "reference_labels")
_DIRECTION = {True: "higher", False: "lower", None: "closer to 1"}


@dataclass
class MetricsReport:
    task_type: str
    headline_metric: str
    ids: list[str]
    statistics: dict[str, Statistic]
    cis: dict[str, tuple[float, float]]
    details: dict = field(default_factory=dict)

    def value(self, name: str) -> float:
        return self.statistics[name].value()

    @property
    def headline(self) -> dict:
        lo, hi = self.cis[self.headline_metric]
        return {"name": self.headline_metric, "value": self.value(self.headline_metric), "ci_low": lo, "ci_high": hi}

    def metrics(self) -> dict[str, dict]:
        return {name: {"value": s.value(), "ci_low": self.cis[name][0], "ci_high": self.cis[name][1],
                       "higher_is_better": s.higher_is_better, "description": s.description}
                for name, s in self.statistics.items()}

    def per_example(self) -> dict[str, list]:
        """Per-example scores aligned with ``ids`` (NaN -> None in JSON)."""
        out = {"ids": list(self.ids)}
        out.update({n: s.per_example.tolist() for n, s in self.statistics.items() if s.per_example is not None})
        out.update({k: self.details[k] for k in _PER_EXAMPLE_DETAILS if k in self.details})
        return out

    def table_rows(self) -> list[dict]:
        """One row per metric: value and CI, for notebooks and reports."""
        return [{"metric": n, "value": m["value"], "95% CI": f"{m['ci_low']:.3g} – {m['ci_high']:.3g}",
                 "better": _DIRECTION[m["higher_is_better"]], "what it is": m["description"]}
                for n, m in self.metrics().items()]

    def to_dict(self) -> dict:
        """What results.json holds (per-example vectors are a separate artefact: ``per_example()``)."""
        details = {k: v for k, v in self.details.items() if k not in _PER_EXAMPLE_DETAILS}
        return {"task_type": self.task_type, "n": len(self.ids), "headline": self.headline,
                "metrics": self.metrics(), **details}


def metric_names(task) -> list[str]:
    """The metrics ``evaluate(predictions, task)`` will report, in its order, without scoring anything."""
    if task.type not in TASK_METRIC_NAMES:
        raise ConfigError(f"task.type: {task.type!r} has no metrics; valid types: {', '.join(TASK_METRICS)}")
    label = LABEL_FIELD_METRIC_NAMES if task.type == "structured_output" and task.label_field else ()
    return [*TASK_METRIC_NAMES[task.type], *label, *COMMON_METRIC_NAMES]


def evaluate(predictions: list, task, n_boot: int = N_BOOT, seed: int = 0) -> MetricsReport:
    """Score ``predictions`` (``ftkit.generation.Prediction`` rows) for ``task`` (``TaskSettings``)."""
    if task.type not in TASK_METRICS:
        raise ConfigError(f"task.type: {task.type!r} has no metrics; valid types: {', '.join(TASK_METRICS)}")
    task_stats, details = TASK_METRICS[task.type](predictions, task)
    stats = {s.name: s for s in task_stats + common.statistics(predictions)}
    cis = {name: bootstrap_ci(s, n_boot, seed) for name, s in stats.items()}
    return MetricsReport(task.type, HEADLINE[task.type], [p.id for p in predictions], stats, cis, details)


def failure_examples(report: MetricsReport, predictions: list, k: int = 8, max_chars: int = 300) -> list[dict]:
    """The ``k`` examples with the lowest headline score (runaways first among ties), for the report."""
    scores = report.statistics[report.headline_metric].per_example
    order = sorted(range(len(predictions)), key=lambda i: (
        np.nan_to_num(scores[i], nan=-1.0) if scores is not None else 0.0, not predictions[i].hit_max_new_tokens, i))
    return [{"id": predictions[i].id, report.headline_metric: None if scores is None else float(scores[i]),
             "output": _clip(predictions[i].output, max_chars), "reference": _clip(predictions[i].reference, max_chars),
             "cut off": predictions[i].hit_max_new_tokens} for i in order[:k]]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
