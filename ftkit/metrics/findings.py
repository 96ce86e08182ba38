"""Plain-language findings computed from a MetricsReport (baseline and evaluation phases share them).

Each function returns ``(severity, code, message, next_step)`` tuples or None; section functions add them to their
``Section`` (``ftkit.section``), which ``run.record`` shows and records.
Thresholds are named constants so a consultant can see (and a test can pin) where a warning starts.
"""
from __future__ import annotations

import math

RUNAWAY_WARN = 0.05  # more than 5 % of answers never stopping is a template/stop-token problem worth fixing
FORMAT_WARN = 0.95  # below 95 % format compliance a production parser would reject answers regularly
WIDE_CI = 0.20  # a 95 % CI wider than 20 points on a 0-1 metric: the test set is too small to decide on


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def headline(report, model: str, prefix: str = "baseline") -> tuple:
    h = report.headline
    return ("info", f"{prefix}.headline",
            f"{model} scores {h['name']} = {h['value']:.3f} (95 % CI {h['ci_low']:.3f}-{h['ci_high']:.3f}) "
            f"on {len(report.ids)} test examples.",
            "The evaluation phase compares the fine-tuned model with this on the same examples (paired bootstrap).")


def stop_behaviour(report, max_new_tokens: int, prefix: str = "baseline") -> tuple:
    rate = report.value("runaway_rate")
    count = round(rate * len(report.ids))
    if rate > RUNAWAY_WARN:
        return ("warning", f"{prefix}.runaway",
                f"{count} of {len(report.ids)} answers ({_pct(rate)}) never stopped and were cut at "
                f"max_new_tokens = {max_new_tokens}.",
                "Check the chat template's end-of-turn token; fine-tuning on answers that end with it teaches "
                "the model to stop.")
    return ("info", f"{prefix}.runaway", f"{count} of {len(report.ids)} answers ({_pct(rate)}) hit "
            f"max_new_tokens = {max_new_tokens}; the model stops on its own.", "")


def format_compliance(report, prefix: str = "baseline") -> tuple:
    rate = report.value("format_compliance")
    if rate < FORMAT_WARN:
        return ("warning", f"{prefix}.format", f"Only {_pct(rate)} of answers follow the required format exactly.",
                "Format is what fine-tuning fixes most reliably; include the exact format in every training answer.")
    return ("info", f"{prefix}.format", f"{_pct(rate)} of answers follow the required format exactly.", "")


def precision_of_estimate(report, prefix: str = "baseline") -> tuple | None:
    h = report.headline
    width = h["ci_high"] - h["ci_low"]
    if math.isnan(width) or width <= WIDE_CI or h["name"] in ("bleu", "chrf"):
        return None
    return ("warning", f"{prefix}.small_test_set",
            f"The 95 % CI of {h['name']} is {width:.2f} wide with {len(report.ids)} test examples: differences "
            f"smaller than that cannot be told apart from noise.",
            "Score the full test split (baseline.max_examples: 0) or add test examples before a go/no-go.")


def weakest_class(report, prefix: str = "baseline") -> tuple | None:
    per_class = report.details.get("per_class") or {}
    scored = [(label, c["recall"]) for label, c in per_class.items() if c.get("recall") is not None]
    if len(scored) < 2:
        return None
    label, recall = min(scored, key=lambda x: (x[1], x[0]))
    support = per_class[label]["support"]
    return ("info", f"{prefix}.weakest_class",
            f"The weakest class is '{label}': {_pct(recall)} of its {support} test examples are recognised.",
            f"Check that the training split has enough clear '{label}' examples.")


def all_findings(report, model: str, max_new_tokens: int, prefix: str = "baseline") -> list[tuple]:
    found = [headline(report, model, prefix), stop_behaviour(report, max_new_tokens, prefix),
             format_compliance(report, prefix), precision_of_estimate(report, prefix), weakest_class(report, prefix)]
    return [f for f in found if f]


def tell_client(report, model: str, n_shots: int, tiny_random: bool) -> str:
    """What to tell the client about the baseline, in two or three sentences."""
    h = report.headline
    prompt = f"a {n_shots}-shot prompt" if n_shots else "a zero-shot prompt"
    text = (f"Without fine-tuning, {model} with {prompt} reaches {h['name']} {h['value']:.2f} (95 % CI "
            f"{h['ci_low']:.2f}-{h['ci_high']:.2f}) on {len(report.ids)} held-out examples, and "
            f"{_pct(report.value('format_compliance'))} of its answers are in the required format. "
            f"This is the bar a fine-tuned model has to clear.")
    if tiny_random:
        text = ("These numbers come from ftkit's randomly initialised test model, not a real model: they only "
                "show the pipeline works. ") + text
    return text


def next_steps(report, slug: str, recommended: str | None = None, current: str = "") -> list[str]:
    steps = [f"Run the training phase: `ftkit run {slug} --phase training`."]
    if recommended and recommended != current:
        steps.insert(0, f"Consider base_model.id: {recommended} (see the candidate comparison), then re-run "
                        f"the baseline.")
    if report.value("format_compliance") < FORMAT_WARN:
        steps.append("Make sure every training answer is in the exact required format (the baseline misses it).")
    if report.value("runaway_rate") > RUNAWAY_WARN:
        steps.append("Check that training examples end with the end-of-turn token so the model learns to stop.")
    return steps
