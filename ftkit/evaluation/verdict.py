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
    action: str  # ship | finish_review | iterate_on_training | iterate_on_data | stop
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
    }


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
    return (f"After {f['iteration']} iteration(s) the fine-tuned model is still not significantly better than the "
            f"prompted baseline on {f['metric']} ({f['fine_tuned']:.3f} vs {f['baseline']:.3f}, {_p(f['p'])}).",
            ["Stop fine-tuning for now: ship the prompted baseline or revisit the suitability answers.",
             "Only resume with substantially more or better data, or a larger base model."])


def _retrain(f: dict) -> tuple[str, list[str]]:
    cause = ("validation loss rose while training loss fell (overfitting)" if f["overfitting"]
             else f"validation loss did not fall (trend: {f['val_loss_trend']})")
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


NEXT_ACTION_RULES: tuple[NextActionRule, ...] = (
    NextActionRule("ship", lambda v, f: v == "go", _ship),
    NextActionRule("finish_review", lambda v, f: v == "pending", _finish_review),
    NextActionRule("stop", lambda v, f: not f["significantly_better"] and f["iteration"] >= f["max_iterations"], _stop),
    NextActionRule("iterate_on_training", lambda v, f: f["overfitting"] or f["val_loss_trend"] in ("rising", "flat"),
                   _retrain),
    NextActionRule("iterate_on_data", lambda v, f: True, _more_data),
)
