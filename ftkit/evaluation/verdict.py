"""Go / no-go: the acceptance criteria of ``engagement.yaml`` checked one by one, with evidence.

``evaluation.acceptance`` is a list of ``{metric, min | max}``. A criterion's metric is looked up in the
registry below (derived measures: regressions, win rates, significance, runaways, forgetting), or else
is a metric of the fine-tuned model from the metric table (``accuracy``, ``json_validity`` ...), or the
paired difference of one (``delta_accuracy``). Every criterion gets a status: ``pass``, ``fail`` or
``not_measured`` (e.g. the human A/B win rate before any rater returned a sheet), the value, its CI where
there is one (``clear`` when the whole CI is on the passing side, ``marginal`` when it straddles the bar),
and a sentence of evidence.

Overall: any fail -> ``no_go``; else anything not measured -> ``pending``; else ``go``. What to do next
(ship, finish the review, iterate on training settings, iterate on data, stop) comes from a short ordered
rule list, so the reasoning is readable in one place.

The ``evidence`` dict the resolvers read is what the evaluation notebook assembles (and stores in
results.json): ``headline_metric``, ``metrics`` (name -> row of ``paired.compare_statistics``),
``regressions`` (list), ``n_examples``, and optionally ``human_ab``, ``judge``, ``stops``, ``forgetting``,
``training``, ``iteration``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from ftkit.errors import ConfigError

# Used when engagement.yaml agrees no criteria: at least "better than the baseline, significantly".
DEFAULT_CRITERIA = ({"metric": "p_value", "max": 0.05}, {"metric": "delta", "min": 0.0})
SIGNIFICANCE = 0.05


@dataclass
class Measurement:
    value: float | None  # None = not measured
    evidence: str
    ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class VerdictMetric:
    name: str
    description: str
    resolve: Callable[[dict], Measurement]


def _headline(ev: dict) -> dict:
    return ev["metrics"][ev["headline_metric"]]


def _p(p: float) -> str:
    from ftkit.evaluation.paired import p_phrase

    return p_phrase(p)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _regressions(ev: dict) -> Measurement:
    regs, n = ev.get("regressions", []), ev.get("n_examples", 0)
    ids = ", ".join(r["id"] for r in regs[:5]) + (" ..." if len(regs) > 5 else "")
    return Measurement(float(len(regs)), f"{len(regs)} of {n} test examples are worse after fine-tuning on "
                       f"{ev['headline_metric']}" + (f" ({ids})" if regs else ""))


def _regression_rate(ev: dict) -> Measurement:
    n = ev.get("n_examples", 0) or 1
    m = _regressions(ev)
    return Measurement(m.value / n, m.evidence)


def _win_rate(source: str, label: str, how: str) -> Callable[[dict], Measurement]:
    def resolve(ev: dict) -> Measurement:
        res = ev.get(source)
        if not res or not res.get("n_items"):
            return Measurement(None, f"no {label} yet: {how}")
        return Measurement(res["win_rate"], f"{label}: fine-tuned preferred on {res['items_won']}, baseline on "
                           f"{res['items_lost']}, tied on {res['items_tied']} of {res['n_items']} items "
                           f"({res.get('n_raters', 1)} rater(s); ties count half)", tuple(res["ci"]))
    return resolve


def _paired_win_rate(ev: dict) -> Measurement:
    row = _headline(ev)
    w = row.get("win_loss_tie")
    if not w:
        return Measurement(None, f"{ev['headline_metric']} has no per-example scores")
    return Measurement(w["win_rate"], f"per example on {ev['headline_metric']}: {w['wins']} wins, {w['losses']} "
                       f"losses, {w['ties']} ties of {w['n']} (ties count half)")


def _delta_of(metric: str | None) -> Callable[[dict], Measurement]:
    def resolve(ev: dict) -> Measurement:
        name = metric or ev["headline_metric"]
        row = ev["metrics"][name]
        return Measurement(row["diff"], f"{name}: fine-tuned {row['fine_tuned']:.3f} vs baseline {row['baseline']:.3f}, "
                           f"difference {row['diff']:+.3f} (95 % paired CI {row['diff_ci'][0]:+.3f} to "
                           f"{row['diff_ci'][1]:+.3f})", tuple(row["diff_ci"]))
    return resolve


def _p_value(ev: dict) -> Measurement:
    from ftkit.evaluation.paired import p_phrase, p_value

    row = _headline(ev)
    test = "McNemar's test" if row.get("mcnemar") else "paired bootstrap"
    p = p_value(row)
    return Measurement(p, f"{ev['headline_metric']} difference {row['diff']:+.3f}, {p_phrase(p)} ({test}, two-sided)")


def _runaway_rate(ev: dict) -> Measurement:
    s = (ev.get("stops") or {}).get("fine_tuned")
    if not s:
        return Measurement(None, "stop behaviour was not checked")
    return Measurement(s["runaways"] / max(1, s["n"]), f"{s['runaways']} of {s['n']} fine-tuned answers ran to "
                       f"max_new_tokens without an end-of-turn")


def _forgetting(ev: dict) -> Measurement:
    f = ev.get("forgetting")
    if not f:
        return Measurement(None, "the forgetting probe was not run")
    return Measurement(f["drop"], f"general probe: {_pct(f['before'])} right before, {_pct(f['after'])} after "
                       f"({len(f['lost'])} lost, {len(f['gained'])} gained of {f['n']}; McNemar p = "
                       f"{f['mcnemar']['p_value']:.3g})")


def _probe_accuracy(ev: dict) -> Measurement:
    f = ev.get("forgetting")
    if not f:
        return Measurement(None, "the forgetting probe was not run")
    return Measurement(f["after"], f"general probe after fine-tuning: {_pct(f['after'])} of {f['n']} right")


REGISTRY: dict[str, VerdictMetric] = {m.name: m for m in (
    VerdictMetric("delta", "headline metric: fine-tuned minus baseline (paired CI)", _delta_of(None)),
    VerdictMetric("p_value", "significance of the headline difference (McNemar or paired bootstrap)", _p_value),
    VerdictMetric("regressions", "count of test examples worse after fine-tuning", _regressions),
    VerdictMetric("regression_rate", "share of test examples worse after fine-tuning", _regression_rate),
    VerdictMetric("win_rate", "human blind A/B win rate of the fine-tuned model (ties half)",
                  _win_rate("human_ab", "human A/B ratings",
                            "send ab_sheet.html or ab_sheet.csv to reviewers, put the filled CSV files into "
                            "evaluation.ab_ratings_dir and re-run the evaluation")),
    VerdictMetric("judge_win_rate", "LLM-as-judge win rate of the fine-tuned model (ties half)",
                  _win_rate("judge", "LLM-judge verdicts", "set evaluation.llm_judge: true with a judge endpoint")),
    VerdictMetric("paired_win_rate", "per-example win rate on the headline metric (ties half)", _paired_win_rate),
    VerdictMetric("runaway_rate", "share of fine-tuned answers that never stopped", _runaway_rate),
    VerdictMetric("forgetting", "drop in general-probe accuracy (before - after)", _forgetting),
    VerdictMetric("probe_accuracy", "general-probe accuracy after fine-tuning", _probe_accuracy),
)}


def resolver(name: str, evidence: dict) -> Callable[[dict], Measurement] | None:
    """The function that measures criterion metric ``name``, or None when there is no such metric."""
    if name in REGISTRY:
        return REGISTRY[name].resolve
    metrics = evidence.get("metrics", {})
    if name in metrics:
        row = metrics[name]
        return lambda ev: Measurement(row["fine_tuned"], f"fine-tuned {name} {row['fine_tuned']:.3f} (95 % CI "
                                      f"{row['fine_tuned_ci'][0]:.3f}-{row['fine_tuned_ci'][1]:.3f}); baseline "
                                      f"{row['baseline']:.3f}", tuple(row["fine_tuned_ci"]))
    if name.startswith("delta_") and name[len("delta_"):] in metrics:
        return _delta_of(name[len("delta_"):])
    return None


def valid_names(evidence: dict) -> list[str]:
    metrics = list(evidence.get("metrics", {}))
    return list(REGISTRY) + metrics + [f"delta_{m}" for m in metrics]


def check_criteria(criteria: list, evidence: dict) -> list[dict]:
    """Criteria as plain dicts; a ConfigError lists every unknown metric name with the valid ones."""
    rows = [_as_dict(c) for c in criteria]
    problems = [f"evaluation.acceptance[{i}].metric: unknown metric {r['metric']!r}"
                for i, r in enumerate(rows) if resolver(r["metric"], evidence) is None]
    if problems:
        problems.append("valid metrics: " + ", ".join(valid_names(evidence)))
        raise ConfigError(problems)
    return rows


def _as_dict(criterion) -> dict:
    d = criterion if isinstance(criterion, dict) else asdict(criterion)
    return {"metric": d["metric"], "min": d.get("min"), "max": d.get("max")}


def rule_text(c: dict) -> str:
    """'>= 0.8', '<= 5' or '0.5 - 0.9'.

    >>> rule_text({"metric": "accuracy", "min": 0.8, "max": None})
    '>= 0.8'
    """
    parts = [f"{sign} {c[key]:g}" for key, sign in (("min", ">="), ("max", "<=")) if c.get(key) is not None]
    return " and ".join(parts)


def _passes(c: dict, x: float) -> bool:
    return (c.get("min") is None or x >= c["min"]) and (c.get("max") is None or x <= c["max"])


def evaluate_criterion(c: dict, evidence: dict) -> dict:
    """One verdict-table row: metric, rule, value, CI, status, margin and the evidence sentence."""
    m = resolver(c["metric"], evidence)(evidence)
    row = {"metric": c["metric"], "rule": rule_text(c), "value": m.value, "ci": list(m.ci) if m.ci else None,
           "status": "not_measured", "margin": "", "evidence": m.evidence}
    if m.value is None:
        return row
    row["status"] = "pass" if _passes(c, m.value) else "fail"
    if m.ci:
        row["margin"] = "clear" if _passes(c, m.ci[0]) == _passes(c, m.ci[1]) == _passes(c, m.value) else "marginal"
    return row


@dataclass
class Verdict:
    verdict: str  # go | no_go | pending
    action: str  # ship | finish_review | stop | train_longer | iterate_on_training | fix_data | larger_model | iterate_on_data
    why: str
    next_steps: list[str]
    criteria: list[dict]
    used_default_criteria: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def overall(rows: list[dict]) -> str:
    """go / no_go / pending from the criteria rows.

    >>> overall([{"status": "pass"}, {"status": "not_measured"}]), overall([{"status": "fail"}, {"status": "pass"}])
    ('pending', 'no_go')
    """
    statuses = {r["status"] for r in rows}
    return "no_go" if "fail" in statuses else "pending" if "not_measured" in statuses else "go"


def decide(criteria: list, evidence: dict, max_iterations: int = 3) -> Verdict:
    """Evaluate every criterion (the defaults when none are agreed) and decide what to do next."""
    defaults = not criteria
    rows = [evaluate_criterion(c, evidence) for c in check_criteria(list(criteria) or list(DEFAULT_CRITERIA), evidence)]
    verdict = overall(rows)
    facts = _facts(evidence, rows, max_iterations)
    for rule in NEXT_ACTION_RULES:
        if rule.applies(verdict, facts):
            why, steps = rule.explain(facts)
            if facts.get("worse_than_previous"):  # whatever the action: an earlier model is measurably better
                why += f" {facts['worse_than_previous']}"
                steps = [f"Prefer iteration {facts['previous_iteration']}'s model (training run {facts['previous_run']}) "
                         f"unless the client's review says otherwise, and find out what in this iteration's data or "
                         f"settings made it worse (see the ledger)."] + steps
            return Verdict(verdict, rule.action, why, steps, rows, defaults, {"facts": facts})
    raise AssertionError("the last next-action rule always applies")  # pragma: no cover


def _facts(ev: dict, rows: list[dict], max_iterations: int) -> dict:
    from ftkit.evaluation.paired import p_value

    head = _headline(ev)
    training = ev.get("training") or {}
    better = 1 if head.get("higher_is_better", True) else -1
    return {
        "metric": ev["headline_metric"], "baseline": head["baseline"], "fine_tuned": head["fine_tuned"],
        "diff": head["diff"], "p": p_value(head),
        "significantly_better": bool(head.get("significant")) and better * head["diff"] > 0,
        "significantly_worse": bool(head.get("significant")) and better * head["diff"] < 0,
        "failed": [r["metric"] for r in rows if r["status"] == "fail"],
        "not_measured": [r["metric"] for r in rows if r["status"] == "not_measured"],
        "overfitting": bool(training.get("overfitting")),
        "val_loss_trend": training.get("val_loss_trend", "unknown"),
        "iteration": int(ev.get("iteration") or 1), "max_iterations": max_iterations,
        "n_regressions": len(ev.get("regressions", [])),
        **loop_facts(ev, max_iterations),
    }


# -- the evidence behind the next action (the improvement loop) -------------------------------------------------
UNDER_TRAINED_EPOCHS = 1.0  # epochs seen (passes over the training split) below which training may be cut short
LATE_FALL = 0.05  # relative drop of validation loss between its last two measurements: still falling at the end
TRAIN_LONGER_EPOCHS = 1.0  # what "train longer" proposes: this many epochs in all, priced at the measured s/step
SUSPECT_SHARE = 0.02  # share (0-1) of scored examples flagged as suspect labels from which fixing them comes first
MIN_WEAK_SLICES = 1  # significantly weak slices from which the errors count as concentrated


def training_progress(training, health: dict) -> dict:
    """Epochs seen, steps, seconds per step and the end of the validation curve, from the evaluated training run's
    typed results (``TrainingResults``) and the evaluation's health summary; {} without them."""
    if training is None:
        return {}
    summary = dict(getattr(training, "summary", {}) or {})
    plan = dict(getattr(training, "plan", {}) or {})
    steps = int(summary.get("steps") or 0)
    losses = list((health or {}).get("val_losses") or [])
    return {"epochs_seen": float(summary.get("epochs") or 0.0), "steps": steps,
            "steps_per_epoch": int(plan.get("steps_per_epoch") or 0),
            "seconds_per_step": float(summary.get("train_seconds") or 0.0) / steps if steps else 0.0,
            "val_losses": losses}


def late_fall(losses: list[float]) -> float:
    """Relative drop between the last two validation losses (0 with fewer than two).

    >>> round(late_fall([6.69, 2.5, 1.52]), 3), late_fall([1.0])
    (0.392, 0.0)
    """
    if len(losses) < 2 or not losses[-2]:
        return 0.0
    return (losses[-2] - losses[-1]) / losses[-2]


def loop_facts(ev: dict, max_iterations: int) -> dict:
    """What the next-action rules read about training progress, the data and earlier iterations. Every key is
    optional in ``ev``: ``training_progress`` (:func:`training_progress`), ``weak_slices`` (names of slices
    significantly below the overall figure, from the slice analysis), ``suspects`` ({"n", "n_scored"}, from the
    suspect-label step) and ``ledger`` (``ftkit.evaluation.iterations.ledger_rows``)."""
    from ftkit.evaluation.iterations import stalled_iterations

    tp = ev.get("training_progress") or {}
    losses = list(tp.get("val_losses") or [])
    suspects = ev.get("suspects") or {}
    n_scored = int(suspects.get("n_scored") or 0)
    ledger = ev.get("ledger") or []
    stalled = stalled_iterations(ledger) if ledger else []
    scored = [r for r in ledger if r.get("value") is not None]
    now = scored[-1] if scored else {}
    previous = next((r for r in ledger if r["iteration"] == now.get("iteration", 0) - 1), {})
    worse = bool(now.get("vs_previous_significant")) and now.get("vs_previous") is not None and \
        not _gain(now, now["vs_previous"])
    return {"epochs_seen": tp.get("epochs_seen"), "steps": tp.get("steps", 0), "seconds_per_step": tp.get("seconds_per_step", 0.0),
            "steps_per_epoch": tp.get("steps_per_epoch", 0), "val_losses": losses, "late_fall": late_fall(losses),
            "weak_slices": list(ev.get("weak_slices") or []), "n_suspects": int(suspects.get("n") or 0),
            "n_scored": n_scored, "suspect_share": int(suspects.get("n") or 0) / n_scored if n_scored else 0.0,
            "slices_measured": ev.get("weak_slices") is not None, "suspects_measured": bool(suspects),
            "ledger": bool(ledger), "stalled": stalled, "previous_run": previous.get("training_run", ""),
            "previous_iteration": previous.get("iteration", 0),
            "worse_than_previous": (f"Iteration {now['iteration']} is significantly worse than iteration "
                                    f"{now['iteration'] - 1} on the same test set: {_ledger_line(now)}." if worse else ""),
            "stalled_evidence": [_ledger_line(r) for r in ledger if r["iteration"] in stalled]}


def _gain(row: dict, diff: float) -> bool:
    return diff > 0 if row.get("higher_is_better", True) else diff < 0


def _ledger_line(r: dict) -> str:
    if r.get("vs_previous") is not None and r["iteration"] > 1:
        return (f"iteration {r['iteration']}: {r['metric']} {r['value']:.3f}, {r['vs_previous']:+.3f} vs iteration "
                f"{r['iteration'] - 1} ({_p(r['vs_previous_p'])})")
    return f"iteration {r['iteration']}: {r['metric']} {r['value']:.3f}, {r['vs_baseline']:+.3f} vs the baseline ({_p(r['vs_baseline_p'])})"


def under_trained(f: dict) -> bool:
    """Validation loss still falling at the end of a run that saw little of an epoch."""
    return f.get("epochs_seen") is not None and f["epochs_seen"] < UNDER_TRAINED_EPOCHS and f["late_fall"] >= LATE_FALL


def stalled(f: dict) -> bool:
    """``max_iterations`` iterations in a row without a significant gain (needs the ledger; else the old count)."""
    if f.get("ledger"):
        return len(f["stalled"]) >= f["max_iterations"]
    return not f["significantly_better"] and f["iteration"] >= f["max_iterations"]


def concentrated_errors(f: dict) -> bool:
    return len(f["weak_slices"]) >= MIN_WEAK_SLICES or (f["n_scored"] > 0 and f["suspect_share"] >= SUSPECT_SHARE)


def longer_training_cost(f: dict) -> tuple[int, float]:
    """(more optimizer steps, estimated minutes) to reach TRAIN_LONGER_EPOCHS epochs at the measured s/step.

    >>> longer_training_cost({"steps": 40, "epochs_seen": 0.07, "steps_per_epoch": 0, "seconds_per_step": 6.0})
    (531, 53.1)
    """
    per_epoch = f.get("steps_per_epoch") or (f["steps"] / f["epochs_seen"] if f.get("epochs_seen") else 0)
    more = max(0, int(round(TRAIN_LONGER_EPOCHS * per_epoch)) - int(f["steps"]))
    return more, round(more * f["seconds_per_step"] / 60, 1)


@dataclass(frozen=True)
class NextActionRule:
    action: str
    applies: Callable[[str, dict], bool]
    explain: Callable[[dict], tuple[str, list[str]]]


def _ship(f: dict) -> tuple[str, list[str]]:
    return (f"Every acceptance criterion passes; {f['metric']} went from {f['baseline']:.3f} to {f['fine_tuned']:.3f} "
            f"({_p(f['p'])}).",
            ["Run the deployment plan phase for this model.",
             "Share the verdict table and the side-by-side examples with the client for sign-off."]
            + ([f"Review the {f['n_regressions']} regression(s) with the client before go-live."]
               if f["n_regressions"] else []))


def _finish_review(f: dict) -> tuple[str, list[str]]:
    return (f"No criterion failed, but {', '.join(f['not_measured'])} is not measured yet.",
            ["Send the blind A/B sheet (ab/ab_sheet.html) to at least two reviewers; put their filled CSV files "
             "into the ratings folder (evaluation.ab_ratings_dir) and re-run the evaluation."])


def _stop(f: dict) -> tuple[str, list[str]]:
    if f.get("ledger"):
        return (f"{len(f['stalled'])} iteration(s) in a row without a significant gain (evaluation.max_iterations is "
                f"{f['max_iterations']}): " + "; ".join(f["stalled_evidence"]) + ".",
                ["Stop iterating: ship the best iteration if it passes, else the prompted baseline, or revisit the "
                 "suitability answers.", "Only resume with substantially more or better data, or a larger base model."])
    return (f"After {f['iteration']} iteration(s) the fine-tuned model is still not significantly better than the "
            f"prompted baseline on {f['metric']} ({f['fine_tuned']:.3f} vs {f['baseline']:.3f}, {_p(f['p'])}).",
            ["Stop fine-tuning for now: ship the prompted baseline or revisit the suitability answers.",
             "Only resume with substantially more or better data, or a larger base model."])


def _retrain(f: dict) -> tuple[str, list[str]]:
    cause = ("validation loss rose while training loss fell (overfitting)" if f["overfitting"]
             else f"validation loss did not fall (trend: {f['val_loss_trend']})")
    if f.get("val_losses"):
        cause += (f"; validation loss {' -> '.join(f'{v:.2f}' for v in f['val_losses'][-4:])} over "
                  f"{f['epochs_seen']:.2f} epoch(s) in {f['steps']} steps")
    return (f"Criteria failed ({', '.join(f['failed'])}) and training was unhealthy: {cause}.",
            ["Retrain with fewer epochs or a lower learning rate (overfitting), or more steps (no learning).",
             "Re-run the evaluation on the new training run; earlier iterations are compared automatically."])


def _more_data(f: dict) -> tuple[str, list[str]]:
    trend = (f"fine-tuning works ({f['metric']} {f['baseline']:.3f} -> {f['fine_tuned']:.3f}, significant)"
             if f["significantly_better"] else
             f"the fine-tuned model is not yet significantly better ({f['metric']} {f['baseline']:.3f} -> "
             f"{f['fine_tuned']:.3f}, {_p(f['p'])})")
    return (f"Criteria failed ({', '.join(f['failed'])}); {trend}.",
            ["Study the regressions and the failing examples: which classes/inputs go wrong?",
             "Add or correct training examples for those cases (ask the client), re-run the data audit and training.",
             f"Iteration {f['iteration']} of at most {f['max_iterations']}: re-evaluate after retraining."])


def _train_longer(f: dict) -> tuple[str, list[str]]:
    more, minutes = longer_training_cost(f)
    curve = " -> ".join(f"{v:.2f}" for v in f["val_losses"][-4:])
    return (f"Criteria failed ({', '.join(f['failed'])}) but training was cut short: it saw {f['epochs_seen']:.2f} "
            f"epoch(s) in {f['steps']} steps and validation loss was still falling at the end ({curve}; "
            f"{100 * f['late_fall']:.0f} % in the last interval).",
            [f"Train longer: {more} more steps reach {TRAIN_LONGER_EPOCHS:g} epoch(s), about {minutes:g} min at the "
             f"measured {f['seconds_per_step']:.1f} s/step (raise training.max_steps or set training.epochs).",
             "Re-run training and the evaluation; the ledger compares the iterations."])


def _fix_data(f: dict) -> tuple[str, list[str]]:
    parts = []
    if f["weak_slices"]:
        parts.append(f"{len(f['weak_slices'])} slice(s) significantly below the overall figure "
                     f"({', '.join(f['weak_slices'][:5])})")
    if f["n_suspects"]:
        parts.append(f"{f['n_suspects']} of {f['n_scored']} examples ({100 * f['suspect_share']:.1f} %) look "
                     f"mislabelled")
    return (f"Criteria failed ({', '.join(f['failed'])}); training converged and the errors are concentrated: "
            + "; ".join(parts) + ".",
            (["Have the client review suspect_labels.csv (decision keep / fix / drop), list it in data.corrections "
              "and re-run the data audit, training and evaluation."] if f["n_suspects"] else []) +
            ([f"Collect or correct examples for {', '.join(f['weak_slices'][:3])}."] if f["weak_slices"] else []))


def _larger_model(f: dict) -> tuple[str, list[str]]:
    spread = ([] if not f["slices_measured"] else ["no slice is significantly weaker"]) + \
        ([] if not f["suspects_measured"] else [f"{f['n_suspects']} of {f['n_scored']} examples look mislabelled"])
    return (f"Criteria failed ({', '.join(f['failed'])}); the fine-tuned model is not significantly better than the "
            f"baseline ({_p(f['p'])}) although training converged (validation loss "
            f"{' -> '.join(f'{v:.2f}' for v in f['val_losses'][-3:])}, {f['epochs_seen']:.2f} epochs), and the errors "
            f"are spread evenly: {', '.join(spread)}. More of the same data will not help much.", ["Try a larger base model, or a different approach (retrieval, a rules layer for the failing "
                       "field), and re-run the baseline and training."])


def _converged(f: dict) -> bool:
    """Enough evidence to call training converged: the run saw at least an epoch or the curve stopped falling."""
    return f.get("epochs_seen") is not None and len(f["val_losses"]) >= 2 and not under_trained(f)


NEXT_ACTION_RULES: tuple[NextActionRule, ...] = (
    NextActionRule("ship", lambda v, f: v == "go", _ship),
    NextActionRule("finish_review", lambda v, f: v == "pending", _finish_review),
    NextActionRule("stop", lambda v, f: stalled(f), _stop),
    NextActionRule("train_longer", lambda v, f: under_trained(f), _train_longer),
    NextActionRule("iterate_on_training", lambda v, f: f["overfitting"] or f["val_loss_trend"] in ("rising", "flat"),
                   _retrain),
    NextActionRule("fix_data", lambda v, f: _converged(f) and concentrated_errors(f), _fix_data),
    NextActionRule("larger_model", lambda v, f: _converged(f) and (f["slices_measured"] or f["suspects_measured"])
                   and not f["significantly_better"], _larger_model),
    NextActionRule("iterate_on_data", lambda v, f: True, _more_data),
)
