"""Tables, figures, findings and client wording of the evaluation, computed from its numbers.

Kept apart from the statistics so the notebook's cells stay one or two calls each and the wording can be
tested: every sentence here is built from values, never static prose.
"""
from __future__ import annotations

# Per-batch timings and output length are not quality metrics: shown in the table, never in a verdict default.
NON_QUALITY = ("latency_p50_s", "latency_p95_s", "mean_output_tokens", "length_ratio")


def metric_table(new_report, old_report, n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """name -> ``paired.compare_statistics`` row for every metric both ``MetricsReport``s have."""
    from ftkit.evaluation.paired import compare_statistics

    return {name: compare_statistics(new_report.statistics[name], old, n_boot=n_boot, seed=seed)
            for name, old in old_report.statistics.items() if name in new_report.statistics}


def table_rows(rows: dict[str, dict], n_boot: int = 1000) -> list[dict]:
    """The baseline-vs-fine-tuned table: values with 95 % CIs, paired difference, test and p-value."""
    from ftkit.evaluation.paired import fmt_p, p_value

    out = []
    for name, r in rows.items():
        direction = {True: "higher", False: "lower", None: "closer to 1"}[r["higher_is_better"]]
        test = "McNemar" if r.get("mcnemar") else "paired bootstrap"
        out.append({"metric": name, "better": direction,
                    "baseline": f"{r['baseline']:.3f} [{r['baseline_ci'][0]:.3f}, {r['baseline_ci'][1]:.3f}]",
                    "fine-tuned": f"{r['fine_tuned']:.3f} [{r['fine_tuned_ci'][0]:.3f}, {r['fine_tuned_ci'][1]:.3f}]",
                    "difference": f"{r['diff']:+.3f} [{r['diff_ci'][0]:+.3f}, {r['diff_ci'][1]:+.3f}]",
                    "p": fmt_p(p_value(r), n_boot), "test": test,
                    "significant": "yes" if r["significant"] else "no"})
    return out


def user_text(record: dict) -> str:
    """The last user turn of a record: what a reviewer reads as "the input".

    >>> user_text({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
    ...                         {"role": "assistant", "content": "yo"}]})
    'hi'
    """
    users = [m.get("content", "") for m in record.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""


def side_by_side(records: list[dict], old_preds: list, new_preds: list, old_scores, new_scores, k: int = 8,
                 metric: str = "score") -> list[dict]:
    """Up to ``k`` examples for the report: the biggest gains, then the regressions, then unchanged ones
    (so the client sees what improved, what got worse and what stayed), each with both answers."""
    import numpy as np

    old = np.nan_to_num(np.asarray(old_scores, dtype=float), nan=0.0)
    new = np.nan_to_num(np.asarray(new_scores, dtype=float), nan=0.0)
    delta = new - old
    gains = [i for i in np.argsort(-delta, kind="stable") if delta[i] > 0]
    losses = [i for i in np.argsort(delta, kind="stable") if delta[i] < 0]
    same = [i for i in range(len(delta)) if delta[i] == 0]
    n_loss = min(len(losses), max(1, k // 4)) if losses else 0
    n_gain = min(len(gains), k // 2)
    picked = gains[:n_gain] + losses[:n_loss]
    picked += same[:max(0, k - len(picked))]
    picked += [i for i in gains[n_gain:] + losses[n_loss:] if i not in picked][:max(0, k - len(picked))]
    return [{"id": new_preds[i].id, "input": _shown(user_text(records[i])), "reference": _shown(new_preds[i].reference),
             "baseline": _shown(old_preds[i].output), "fine-tuned": _shown(new_preds[i].output),
             f"{metric} (base → ft)": f"{old[i]:.2f} → {new[i]:.2f}",
             "change": "better" if delta[i] > 0 else "worse" if delta[i] < 0 else "same"} for i in picked[:k]]


def _shown(text: str) -> str:
    """What a report may show of a client input or a model answer: PII masked (the data audit's masker; a model
    can echo an e-mail address it was given), then clipped. Predictions files keep the raw text for scoring."""
    from ftkit.data.pii import mask

    return _clip(mask(text or ""))


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def plot_comparison(rows: dict[str, dict], names: list[str]):
    """Grouped bars of baseline vs fine-tuned with 95 % CI whiskers for ``names`` (0-1 metrics)."""
    import matplotlib.pyplot as plt  # no matplotlib.use(): the kernel's inline backend stays active
    import numpy as np

    names = [n for n in names if n in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 3.6))
    for offset, who, colour in ((-0.2, "baseline", "#9aa5b1"), (0.2, "fine_tuned", "#2f6fde")):
        vals = np.array([rows[n][who] for n in names], dtype=float)
        cis = np.array([rows[n][f"{who}_ci"] for n in names], dtype=float).reshape(-1, 2)
        err = np.vstack([np.clip(vals - cis[:, 0], 0, None), np.clip(cis[:, 1] - vals, 0, None)])
        ax.bar(x + offset, vals, 0.4, yerr=err, capsize=3, color=colour, label=who.replace("_", "-"))
    ax.set_xticks(x, [n.replace("_", "\n") for n in names])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (95 % CI)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Baseline vs fine-tuned on the same test examples")
    fig.tight_layout()
    return fig


def comparison_finding(rows: dict[str, dict], headline: str, n: int, n_boot: int = 1000) -> tuple:
    """(severity, code, message, next_step) on the headline metric's paired difference."""
    from ftkit.evaluation.paired import p_phrase, p_value

    r = rows[headline]
    p = p_value(r)
    text = (f"On {n} test examples {headline} went from {r['baseline']:.3f} to {r['fine_tuned']:.3f} "
            f"({r['diff']:+.3f}, 95 % paired CI {r['diff_ci'][0]:+.3f} to {r['diff_ci'][1]:+.3f}, {p_phrase(p, n_boot)}).")
    if r["significant"] and r["diff"] * (1 if r["higher_is_better"] is not False else -1) > 0:
        return "info", "evaluation.better", "Significantly better: " + text, ""
    if r["significant"]:
        return ("blocking", "evaluation.worse", "Significantly WORSE than the baseline: " + text,
                "Do not ship; check the training data and the template round trip below.")
    return ("warning", "evaluation.not_significant", "Not significantly different from the baseline: " + text,
            "A bigger test set narrows the interval; better training data moves the number.")


def tell_client(v, rows: dict[str, dict], headline: str, n: int, forgetting: dict | None, runaway: dict | None,
                baseline_prompt: str = "the same prompt") -> str:
    """What to tell the client, from the verdict and the numbers (``baseline_prompt``: which prompt the base
    model answered under, e.g. "its best prompt (3-shot)")."""
    r = rows[headline]
    base = (f"On {n} held-out test examples the fine-tuned model scores {r['fine_tuned']:.1%} {headline.replace('_', ' ')} "
            f"against {r['baseline']:.1%} for the base model with {baseline_prompt}")
    better = r["diff"] * (1 if r["higher_is_better"] is not False else -1) > 0
    sig = (" (not a significant difference)." if not r["significant"] else
           " (a statistically significant gain)." if better else " (significantly worse).")
    passed = sum(c["status"] == "pass" for c in v.criteria)
    crit = f" It meets {passed} of the {len(v.criteria)} agreed acceptance criteria"
    outcome = {"go": "; we recommend going ahead with deployment.",
               "pending": "; human review of the blind A/B sheet is still needed before a final decision.",
               "no_go": "; it is not ready: " + v.why}[v.verdict]
    extra = ""
    if forgetting and forgetting.get("drop", 0) > 0.1:
        extra += (f" Off-task general questions got worse ({forgetting['before']:.0%} -> {forgetting['after']:.0%} "
                  f"right): keep the model to its task.")
    if runaway and runaway.get("runaways"):
        extra += f" {runaway['runaways']} of {runaway['n']} answers did not stop on their own."
    return base + sig + crit + outcome + extra


def prompt_mismatch_finding(n_shots: int) -> tuple | None:
    """A warning when the baseline prompt carries few-shot examples: training uses the zero-shot conversation
    (system + user), which is also what the model will be served with."""
    if n_shots <= 0:
        return None
    return ("warning", "evaluation.few_shot_prompt",
            f"The baseline prompt has {n_shots} few-shot example(s), so the fine-tuned model is evaluated with them "
            f"too (same prompts, a paired comparison), although it was trained, and will be served, on the zero-shot "
            f"conversation: this measures it off its training format and can understate it.",
            "Set baseline.shots: 0 and re-run the baseline and this phase to compare in the serving format (the "
            "few-shot baseline stays on record for the prompt-engineering comparison).")
