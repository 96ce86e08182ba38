"""Choose a base model: compare candidates scored on the same test examples with the same prompt.

Rule: rank by the headline metric; every candidate whose paired bootstrap difference to the best includes
0 is "as good as the best" on this evidence, and among those the smallest model wins (cheaper to train
and serve). The comparison table and the reasoning are recorded in results.json.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Candidate:
    model_id: str
    parameters: int | None
    report: object  # ftkit.metrics.MetricsReport
    is_tiny_random: bool = False


def recommend(candidates: list[Candidate], n_boot: int = 1000, seed: int = 0) -> dict:
    """{"recommended", "reason", "rows"}: one row per candidate with headline value, CI, difference to the best."""
    from ftkit.metrics import paired_bootstrap

    if not candidates:
        return {"recommended": None, "reason": "no candidates were scored", "rows": []}
    metric = candidates[0].report.headline_metric
    value = lambda c: c.report.value(metric)  # noqa: E731
    best = max(candidates, key=lambda c: (value(c), -(c.parameters or 0)))
    rows, ties = [], []
    for c in candidates:
        paired = paired_bootstrap(c.report.statistics[metric], best.report.statistics[metric], n_boot, seed)
        lo, hi = c.report.cis[metric]
        tied = c is best or paired["ci_high"] >= 0  # not significantly worse than the best
        ties += [c] if tied else []
        rows.append({"model": c.model_id, "parameters": c.parameters, metric: value(c), "ci_low": lo, "ci_high": hi,
                     "diff_to_best": paired["diff"], "diff_ci_low": paired["ci_low"],
                     "diff_ci_high": paired["ci_high"], "as_good_as_best": tied,
                     "tiny_random_test_model": c.is_tiny_random})
    choice = min(ties, key=lambda c: (c.parameters if c.parameters is not None else float("inf"), -value(c)))
    if choice is best:
        reason = f"{best.model_id} has the highest {metric} ({value(best):.3f})"
    else:
        reason = (f"{choice.model_id} is not significantly worse than {best.model_id} on {metric} "
                  f"({value(choice):.3f} vs {value(best):.3f}, paired 95 % CI includes 0) and is smaller")
    if len(ties) > 1 and choice is best:
        reason += f"; {len(ties) - 1} other candidate(s) are statistically tied with it"
    return {"metric": metric, "recommended": choice.model_id, "reason": reason + ".", "rows": rows}


def score_candidates(config, model_ids: list[str], records: list[dict], spec, length_records: list[dict],
                     progress: bool = False, seed: int = 0) -> tuple[list[Candidate], dict[str, str]]:
    """(scored candidates, {model id: why it was skipped}): every model in ``model_ids`` generates with the
    same prompt on the same records and is scored the same way.

    One model is in memory at a time. A candidate that cannot be loaded (not cached, offline) is skipped
    with its reason, so one missing model does not sink the comparison.
    """
    import gc

    from ftkit.errors import FtkitError
    from ftkit.generation import generate_for_config
    from ftkit.metrics import evaluate

    scored, skipped = [], {}
    for model_id in dict.fromkeys(model_ids):
        try:
            run = generate_for_config(config, records, spec, length_records, model_id=model_id, progress=progress)
        except FtkitError as err:
            skipped[model_id] = str(err)
            continue
        report = evaluate(run.predictions, config.task, seed=seed)
        scored.append(Candidate(model_id, run.model.get("parameters"), report, bool(run.model.get("is_tiny_random"))))
        del run
        gc.collect()
    return scored, skipped
