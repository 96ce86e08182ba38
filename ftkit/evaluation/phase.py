"""The evaluation phase's building blocks: what ``notebooks/05_evaluation.ipynb`` calls, one function per section.

Each section function takes the section's inputs and returns a :class:`ftkit.section.Section` (tables, figures,
findings, and in ``value`` what later sections need); the notebook shows it with ``run.record(section)``. The
rules behind the findings are the small ``*_finding`` functions below, each with its threshold as a named
constant, so ``tests/evaluation/test_phase.py`` checks both sides of every threshold without a model.
``EvaluationResults`` is what results.json holds and what the deployment plan and the report read back.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.phase_results import PhaseResults, described
from ftkit.section import Section, finding

# Thresholds (units beside each). The baseline shares ftkit.metrics.findings.RUNAWAY_WARN (5 %); a fine-tuned
# model is held to a stricter bar because its training data taught it to stop: more than 2 % of its answers
# running to max_new_tokens means the end-of-turn token was not learnt.
FINE_TUNED_RUNAWAY_WARN = 0.02  # share of fine-tuned answers cut at max_new_tokens (0-1)
REGRESSION_SHARE_WARN = 0.05  # share of test examples that regressed (0-1); at least 1 example is always tolerated
FORGETTING_DROP_WARN = 0.1  # drop in general-probe accuracy, before minus after fine-tuning (0-1, i.e. 10 points)
METRIC_DRIFT_TOLERANCE = 1e-9  # |re-scored - recorded| baseline headline value (metric units) that counts as equal


# -- the rules (pure: numbers in, a finding out) ---------------------------------------------------------------------

def tiny_model_finding(is_tiny_random: bool):
    if not is_tiny_random:
        return None
    return finding("warning", "evaluation.tiny_random_model",
                   "The base model is ftkit's randomly initialised TEST model: every number below only shows that the "
                   "pipeline works, not how a real model behaves.", "Use the client's real base model for real results.")


def real_test_note(n_scored: int, excluded: dict) -> str:
    """The test-examples cell: how many, and that they are the client's own."""
    left = ", ".join(f"{n} {source}" for source, n in sorted(excluded.items()))
    return f"{n_scored} (the client's own only" + (f"; left out: {left})" if left else ")")


def real_test_finding(n_scored: int, excluded: dict):
    """Metrics are on the client's own test examples; say so, and how many others were left out (None if none)."""
    if not excluded:
        return None
    left = ", ".join(f"{n} {source}" for source, n in sorted(excluded.items()))
    return finding("info", "evaluation.real_test_only", f"Every metric is on the client's own {n_scored} test "
                   f"examples; {left} test example(s) from other sources were left out of the yardstick.",
                   "Re-run the data audit: synthetic and UAT records now go to the training split only.")


def same_prompts_finding(n_prompts: int, chat_template_sha256: str):
    return finding("info", "evaluation.same_prompts",
                   f"All {n_prompts} prompts are byte-identical to the baseline's (sha256 per example; chat template "
                   f"sha256 {chat_template_sha256[:12] or 'n/a'}), so the comparison is paired.")


def best_prompt_finding(baseline_prompt: dict, fine_tuned_prompt: dict):
    """Which prompt each side of the primary comparison answered under (None when they are the same prompt)."""
    if baseline_prompt["spec_sha256"] == fine_tuned_prompt["spec_sha256"]:
        return None
    return finding("info", "evaluation.best_prompt",
                   f"Primary comparison: the fine-tuned model under its own prompt ({fine_tuned_prompt['name']}, "
                   f"{fine_tuned_prompt['n_shots']} shots, prompts sha256 {fine_tuned_prompt['prompts_sha256'][:12]}) "
                   f"against the base model under its best prompt found on validation ({baseline_prompt['name']}, "
                   f"{baseline_prompt['n_shots']} shots, prompts sha256 {baseline_prompt['prompts_sha256'][:12]}), "
                   f"paired by test example. The same-prompt comparison is the second view below.")


def same_prompt_view_finding(row: dict, metric: str, baseline_prompt: str):
    """The second view's headline: the fine-tuned model against the base model under the same prompt."""
    return finding("info", "evaluation.same_prompt_view",
                   f"Same prompt ({baseline_prompt}) for both: {metric} {row['baseline']:.3f} -> {row['fine_tuned']:.3f} "
                   f"({row['diff']:+.3f}, paired 95 % CI {row['diff_ci'][0]:+.3f} to {row['diff_ci'][1]:+.3f}). "
                   f"The verdict reads the primary comparison (against the base model's best prompt).")


def metric_drift_finding(recorded: float | None, rescored: float, metric: str):
    """A warning when re-scoring the baseline's own predictions no longer gives the value it recorded."""
    if recorded is None or abs(recorded - rescored) <= METRIC_DRIFT_TOLERANCE:
        return None
    return finding("warning", "evaluation.metric_drift",
                   f"Re-scoring the baseline's predictions gives {metric} = {rescored:.4f}, "
                   f"but the baseline recorded {recorded:.4f}: the metric code changed since.", "Re-run the baseline.")


def regressions_finding(wlt: dict, regs: list[dict], n_answers: int, metric: str):
    """info while regressions are at most REGRESSION_SHARE_WARN of the answers (and at least 1 is tolerated)."""
    ok = len(regs) <= max(1, REGRESSION_SHARE_WARN * n_answers)
    return finding("info" if ok else "warning", "evaluation.regressions",
                   f"The fine-tuned model wins {wlt['wins']}, loses {wlt['losses']} and ties {wlt['ties']} of {wlt['n']} "
                   f"examples on {metric}; {len(regs)} regression(s)"
                   + (f", e.g. {', '.join(r['id'] for r in regs[:3])}." if regs else "."),
                   "Review the regressions with the client's domain expert before go-live." if regs else "")


def runaway_finding(fine_tuned: dict, baseline: dict, max_new_tokens: int):
    """``fine_tuned``/``baseline``: ftkit.evaluation.stops.runaways() of each model's answers."""
    ok = fine_tuned["rate"] <= FINE_TUNED_RUNAWAY_WARN
    return finding("info" if ok else "warning", "evaluation.runaways",
                   f"{fine_tuned['runaways']} of {fine_tuned['n']} fine-tuned answers ran to max_new_tokens = "
                   f"{max_new_tokens} without stopping (baseline: {baseline['runaways']}).",
                   "" if ok else "Check that training labels include the end-of-turn token (data audit, training label "
                   "check) and retrain.")


def serving_stop_finding(serving: dict):
    """Blocking when the template's end-of-turn id is not among the ids a server stops on."""
    ok = serving["ok"]
    return finding("info" if ok else "blocking", "evaluation.serving_stop",
                   f"The template's end-of-turn token {serving['end_of_turn']!r} (id {serving['end_of_turn_id']}) is "
                   + ("" if ok else "NOT ") + f"among the ids a server stops on ({serving['served_stop_ids']}).",
                   "" if ok else "Set generation_config.eos_token_id to include the end-of-turn id before export.")


def round_trip_finding(trip: dict):
    """Blocking when any prompt + answer renders differently through the serving template."""
    ok = not trip["failures"]
    return finding("info" if ok else "blocking", "evaluation.template_round_trip",
                   f"{trip['checked'] - len(trip['failures'])} of {trip['checked']} prompt + answer pairs render through "
                   f"the serving chat template exactly as generated, ending with {trip['end_of_turn']!r}.",
                   "" if ok else f"Fix the template drift first: {trip['failures'][0]['problem']}")


def forgetting_finding(forget: dict):
    """A warning when general-probe accuracy dropped by more than FORGETTING_DROP_WARN."""
    bad = forget["drop"] > FORGETTING_DROP_WARN
    return finding("warning" if bad else "info", "evaluation.forgetting",
                   f"General probe: {forget['before']:.0%} right before fine-tuning, {forget['after']:.0%} after "
                   f"({len(forget['lost'])} lost, {len(forget['gained'])} gained of {forget['n']}; McNemar p = "
                   f"{forget['mcnemar']['p_value']:.2g}).",
                   "Keep the model to its task, or mix some general instruction data into training." if bad else "")


def training_health_finding(h: dict):
    """info only when validation loss fell and the training phase flagged no overfitting."""
    ok = h["val_loss_trend"] == "falling" and not h["overfitting"]
    return finding("info" if ok else "warning", "evaluation.training_health",
                   f"Validation loss is {h['val_loss_trend']} over {h['n_validations']} validations"
                   + (f" ({h['first_val_loss']:.3f} -> {h['final_val_loss']:.3f})" if h["n_validations"] else "")
                   + ("; the training phase flagged overfitting." if h["overfitting"] else "; no overfitting flagged."),
                   "" if ok else "Revisit epochs / learning rate in the training phase (see its loss curve).")


def iterations_finding(rows: list[dict], metric: str):
    """rows[0] is this iteration, rows[1] the newest earlier one; None without earlier iterations."""
    if len(rows) < 2:
        return None
    prev = rows[1]
    return finding("info", "evaluation.iterations", f"Iteration {rows[0]['iteration']} vs iteration {prev['iteration']}: "
                   f"{metric} {prev[metric]} -> {rows[0][metric]} (difference {prev['newest minus this']}).")


def human_ab_finding(human: dict | None, key: dict, ratings_dir: str):
    if human:
        agree = human["agreement"]
        return finding("info", "evaluation.human_ab",
                       f"{human['n_raters']} rater(s), {human['n_items']} items: the fine-tuned answer is preferred with "
                       f"win rate {human['win_rate']:.2f} (95 % CI {human['ci'][0]:.2f}-{human['ci'][1]:.2f}, ties count "
                       f"half); agreement kappa = {agree['kappa']:.2f} ({agree['band']}).")
    return finding("info", "evaluation.ab_sheet",
                   f"Blind A/B sheet {key['sheet_id']} written with {key['n_items']} items ({key['n_identical_excluded']} "
                   f"examples with identical answers left out); no filled sheets for it in {ratings_dir}/ yet.",
                   f"Send ab/ab_sheet.html to two reviewers; put their CSV files into {ratings_dir}/ and re-run.")


def judge_finding(judged: dict | None):
    if not judged:
        return None
    return finding("info", "evaluation.llm_judge",
                   f"LLM judge {judged['model']}: win rate {judged.get('win_rate', float('nan')):.2f} on "
                   f"{judged['n_items']} items ({len(judged['unparsed'])} unusable replies); prompt sha256 "
                   f"{judged['prompt']['sha256'][:12]}.")


VERDICT_SEVERITY = {"go": "info", "pending": "warning", "no_go": "blocking"}


def verdict_findings(decision) -> list:
    """The default-criteria warning, one finding per failed or marginal criterion, then the verdict itself."""
    out = []
    if decision.used_default_criteria:
        out.append(finding("warning", "evaluation.no_criteria", "No acceptance criteria in engagement.yaml: the default "
                           "(significantly better than the baseline) was used.",
                           "Agree criteria with the client (evaluation.acceptance)."))
    for c in decision.criteria:
        if c["status"] == "fail":
            out.append(finding("blocking", f"evaluation.criterion.{c['metric']}",
                               f"{c['metric']} {c['rule']} failed: {c['evidence']}."))
        elif c["margin"] == "marginal":
            out.append(finding("warning", f"evaluation.criterion.{c['metric']}", f"{c['metric']} {c['rule']} passes, "
                               f"but its 95 % CI {c['ci'][0]:.3f}-{c['ci'][1]:.3f} straddles the bar.",
                               "A larger test set would make this certain."))
    out.append(finding(VERDICT_SEVERITY[decision.verdict], "evaluation.verdict",
                       f"Verdict: {decision.verdict.upper().replace('_', '-')} -> {decision.action.replace('_', ' ')}. "
                       f"{decision.why}"))
    return out


# -- the sections -----------------------------------------------------------------------------------------------------

def settings(run, compare_iterations: int = -1) -> dict:
    """The resolved knobs (a notebook parameter >= 0 overrides engagement.yaml); seeds recorded."""
    ev = run.config.evaluation
    run.record_seed("bootstrap", ev.seed)
    run.record_seed("ab_sheet_order", ev.seed)
    return {"compare_iterations": ev.compare_iterations if compare_iterations < 0 else compare_iterations}


@dataclass
class Compared:
    """Section 1: the baseline run, the training iteration evaluated here and its loaded model."""

    baseline: object  # ftkit.evaluation.baseline_record.BaselineRecord
    iterations: list  # every succeeded training run (ftkit.evaluation.iterations.Iteration)
    current: object  # the iteration evaluated here
    training: object  # its TrainingResults
    ft: object  # ftkit.evaluation.finetuned.FineTuned
    engine: object = None  # ftkit.generation.vllm_backend.VLLMEngine, made by vllm_engine() for a vLLM baseline
    ledger: list = None  # the iteration ledger (iteration_ledger()), read by evidence() for the verdict

    @property
    def headline_metric(self) -> str:
        return self.baseline.headline_metric


def what_is_compared(run) -> Section:
    from ftkit.evaluation import baseline_record, finetuned, iterations

    baseline = baseline_record.load_baseline(run)
    all_iterations = iterations.training_iterations(run.engagement)
    current = iterations.find(all_iterations, run.upstream_dir("training").name)
    training = run.upstream("training")
    ft = finetuned.load_finetuned(run.config, current.run_dir)
    run.record_model({**baseline.results.model, "fine_tuned": ft.description})
    c = Compared(baseline, all_iterations, current, training, ft)
    rows = [
        {"what": "baseline run", "value": f"{baseline.run_id} ({baseline.model_id})"},
        {"what": "fine-tuned model", "value": f"training run {current.run_id} (iteration {current.number} of "
                                              f"{len(all_iterations)}), {ft.kind}, tokenizer from {ft.description['tokenizer_from']}"},
        {"what": "test examples", "value": real_test_note(len(baseline.records), baseline.excluded)},
        *_prompt_rows(baseline),
        {"what": "generation", "value": f"greedy, max_new_tokens = {baseline.max_new_tokens}, batch size {baseline.batch_size}"},
        {"what": "headline metric", "value": c.headline_metric},
    ]
    return Section(value=c).table(rows).add(tiny_model_finding(bool(baseline.results.model.get("is_tiny_random"))),
                                            real_test_finding(len(baseline.records), baseline.excluded))


def _prompt_rows(baseline) -> list[dict]:
    rows = []
    for who, served in (("base model's prompt", False), ("fine-tuned model's prompt", True)):
        p = baseline.prompt_record(served)
        rows.append({"what": who, "value": f"{p['name']}: {p['n_shots']}-shot, system prompt {len(p['system_prompt'])} "
                                           f"characters, prompts sha256 {p['prompts_sha256'][:12]}"})
    return rows if baseline.two_prompts else [{"what": "prompt", "value": rows[0]["value"]}]


def same_prompts(c: Compared) -> Section:
    """value: (prompts, fingerprint); PhaseFailed (from baseline_record.prompts_for) when any prompt differs."""
    from ftkit.evaluation import baseline_record, iterations
    from ftkit.evaluation.presentation import prompt_mismatch_finding

    prompts = baseline_record.prompts_for(c.baseline, c.ft.tokenizer)
    fingerprint = iterations.prompts_fingerprint(c.baseline.served_predictions)  # the fine-tuned model's prompts
    return Section(value=(prompts, fingerprint)).add(
        same_prompts_finding(len(prompts), c.baseline.prompt.get("chat_template_sha256", "")),
        prompt_mismatch_finding(len(c.baseline.served_spec.shots)),
        best_prompt_finding(c.baseline.prompt_record(False), c.baseline.prompt_record(True)))


def vllm_engine(run, c: Compared):
    """The vLLM engine serving the fine-tuned model when the baseline generated with vLLM (else None); made once
    per evaluation and kept on ``c`` for the forgetting probe."""
    if c.baseline.backend != "vllm":
        return None
    if c.engine is None:
        from ftkit.generation.vllm_backend import engine_for_finetuned

        c.engine = engine_for_finetuned(run.config, c.ft)
    return c.engine


def generate(run, c: Compared, prompts: list, progress: bool = True) -> Section:
    """The fine-tuned model's answers (value), written to predictions.jsonl; on the baseline's backend (vLLM with
    the adapter as a LoRARequest when the baseline used vLLM, else transformers)."""
    from ftkit.generation import generate_with, write_predictions

    preds = generate_with(c.baseline.backend, c.ft.model, c.ft.tokenizer, prompts, c.baseline.max_new_tokens,
                          c.baseline.batch_size, progress=progress, engine=vllm_engine(run, c))
    write_predictions(run.artefact("predictions.jsonl"), preds)
    return Section(value=preds, notes=[f"{len(preds)} answers written to predictions.jsonl"])


@dataclass
class Scored:
    """Section 4: both models' metric reports and the paired comparison rows (metric name -> row)."""

    old_report: object
    new_report: object
    rows: dict

    def scores(self, metric: str) -> tuple:
        return (self.old_report.statistics[metric].per_example, self.new_report.statistics[metric].per_example)


def metrics_comparison(c: Compared, new_preds: list, config) -> Section:
    from ftkit import metrics
    from ftkit.evaluation import presentation

    ev = config.evaluation
    old_report = metrics.evaluate(c.baseline.predictions, config.task, n_boot=ev.n_bootstrap, seed=ev.seed)
    new_report = metrics.evaluate(new_preds, config.task, n_boot=ev.n_bootstrap, seed=ev.seed)
    rows = presentation.metric_table(new_report, old_report, n_boot=ev.n_bootstrap, seed=ev.seed)
    quality = [n for n in rows if n not in presentation.NON_QUALITY and n != "runaway_rate"]
    m = c.headline_metric
    sec = Section(value=Scored(old_report, new_report, rows))
    sec.table(presentation.table_rows(rows, ev.n_bootstrap), caption="Baseline vs fine-tuned, 95 % CIs")
    sec.figures.append(("baseline_vs_fine_tuned", presentation.plot_comparison(rows, quality)))
    return sec.add(metric_drift_finding(c.baseline.results.headline_value, rows[m]["baseline"], m),
                   presentation.comparison_finding(rows, m, len(new_preds), ev.n_bootstrap))


def same_prompt_view(c: Compared, new_preds: list, config) -> Section:
    """The second view: the fine-tuned model against the base model under the SAME prompt (the fine-tuned model's,
    answered by the baseline phase), paired by test example. value: None when the baseline's best prompt is that
    prompt (the primary comparison already is the same-prompt one), else {"prompt", "metrics": name -> row}."""
    from ftkit import metrics
    from ftkit.evaluation import presentation

    if not c.baseline.two_prompts:
        return Section(notes=["The base model's prompt is the fine-tuned model's prompt: the comparison above already "
                              "is the same-prompt comparison."])
    ev = config.evaluation
    old_report = metrics.evaluate(c.baseline.served_predictions, config.task, n_boot=ev.n_bootstrap, seed=ev.seed)
    new_report = metrics.evaluate(new_preds, config.task, n_boot=ev.n_bootstrap, seed=ev.seed)
    rows = presentation.metric_table(new_report, old_report, n_boot=ev.n_bootstrap, seed=ev.seed)
    prompt = c.baseline.prompt_record(True)
    sec = Section(value={"prompt": prompt, "metrics": rows})
    sec.table(presentation.table_rows(rows, ev.n_bootstrap),
              caption=f"Second view: both models under the fine-tuned model's prompt ({prompt['name']}), 95 % CIs")
    return sec.add(same_prompt_view_finding(rows[c.headline_metric], c.headline_metric, prompt["name"]))


def regressions(c: Compared, s: Scored, n_answers: int, config) -> Section:
    """value: {"win_loss_tie", "regressions"}."""
    from ftkit.evaluation import paired

    ev, m = config.evaluation, c.headline_metric
    old_scores, new_scores = s.scores(m)
    wlt = s.rows[m].get("win_loss_tie") or paired.win_loss_tie(new_scores, old_scores)
    regs = paired.regressions(s.new_report.ids, old_scores, new_scores, s.rows[m]["higher_is_better"] is not False,
                              margin=ev.regression_margin)
    mcnemar_rows = [{"metric": n, "both right": r["mcnemar"]["both_right"], "baseline only": r["mcnemar"]["old_only"],
                     "fine-tuned only": r["mcnemar"]["new_only"], "both wrong": r["mcnemar"]["both_wrong"],
                     "test": r["mcnemar"]["method"], "p": paired.fmt_p(r["mcnemar"]["p_value"], ev.n_bootstrap)}
                    for n, r in s.rows.items() if r.get("mcnemar") and n not in ("runaway_rate",)]
    sec = Section(value={"win_loss_tie": wlt, "regressions": regs})
    sec.table([{"on": m, **{k: wlt[k] for k in ("wins", "losses", "ties", "n")},
                "win rate (ties half)": round(wlt["win_rate"], 3)}])
    if mcnemar_rows:
        sec.table(mcnemar_rows, caption="McNemar's test on right/wrong metrics (discordant pairs decide)")
    sec.table(regs[:20], caption=f"Regressions on {m} ({len(regs)})")
    return sec.add(regressions_finding(wlt, regs, n_answers, m))


def error_analysis(run, c: Compared, s: Scored, new_preds: list) -> Section:
    """Where the fine-tuned model fails: the headline metric by slice (BH-adjusted tests, ftkit.evaluation.slices),
    per-label P/R/F1 with CIs and the confusion matrix (labels), accuracy per JSON field (structured output), and
    whether the test set (or the baseline's subset of it) is large enough for the decision. value: slices.json."""
    sec = error_analysis_of(run.config, c.baseline.records, c.baseline.predictions, new_preds, s,
                            c.baseline.results.generation.get("subset"))
    run.write_json("slices.json", sec.value)
    return sec


def error_analysis_of(config, records: list, old_preds: list, new_preds: list, s: Scored, subset: dict | None
                      ) -> Section:
    """:func:`error_analysis` without the run: the scored test ``records`` and both models' predictions (same order),
    their ``Scored`` reports and the baseline's recorded ``subset`` (``ftkit.sampling.Subset.to_dict()``)."""
    from ftkit.evaluation import slices
    from ftkit.metrics import per_label, plots

    m = s.new_report.headline_metric
    ev, task = config.evaluation, config.task
    label_field = task.label_field if task.type == "structured_output" else ""
    dims, unknown, keys = slices.dimensions(records, [p.n_input_tokens for p in old_preds], ev.slices, label_field)
    rep = slices.analyse(dims, s.old_report.statistics[m], s.new_report.statistics[m], ev.n_bootstrap, ev.seed)
    rep.unknown, rep.available = unknown, keys
    subset = subset or {}
    n, n_test = len(new_preds), int(subset.get("of") or len(new_preds))
    checks = slices.decision_checks(ev.acceptance, s.rows, m)
    value = {"slices": rep.to_dict(), "subset": {k: v for k, v in subset.items() if k != "ids"} or None,
             "decision": checks, "per_label": None, "top_confusions": None, "fields": None}
    sec = Section(value=value)
    sec.table(slices.table_rows(rep), caption=f"{m} by slice, 95 % CIs; tests adjusted with {slices.CORRECTION}; "
                                              f"slices under {slices.MIN_SLICE_SIZE} examples are not ranked")
    details, top = s.new_report.details, []
    if details.get("confusion"):
        rows = per_label.per_label(details["reference_labels"], details["predicted_labels"],
                                   list(details["per_class"]), ev.n_bootstrap, ev.seed)
        top = per_label.top_confusions(details["confusion"])
        value.update(per_label=rows, top_confusions=top)
        worst = sorted((r for r in rows if r["support"]), key=lambda r: (r["f1"] or 0.0, r["label"]))[:20]
        sec.table([{"label": r["label"], "support": r["support"], "predicted": r["predicted"],
                    **{k: "-" if r[k] is None else f"{r[k]:.2f}" + (
                        f" [{r[k + '_ci'][0]:.2f}, {r[k + '_ci'][1]:.2f}]" if r[k + "_ci"] else "")
                       for k in ("precision", "recall", "f1")}} for r in worst],
                  caption=f"Per label, fine-tuned, 95 % bootstrap CIs (the {len(worst)} lowest F1 of {len(rows)})")
        sec.table([{"what happened": per_label.confusion_sentence(r), **r} for r in top],
                  caption="Most frequent confusions (red in the figure)")
        title = f"Fine-tuned confusion matrix: {details.get('label_field') or 'label'}"
        sec.figures.append(("confusion_matrix_fine_tuned", plots.plot_confusion(details["confusion"], title)))
    if task.type == "structured_output":
        value["fields"] = slices.field_accuracy_rows(old_preds, new_preds, ev.n_bootstrap, ev.seed)
        sec.table(value["fields"], caption="Accuracy per JSON field (numbers compared as numbers)")
    how = f"{subset.get('n')} of {n_test} test examples, a seeded sample stratified by {subset.get('stratified_by')}" \
        if subset.get("stratified_by") and n < n_test else ""
    return sec.add(slices.weak_slices_finding(rep, m), slices.slice_regressions_finding(rep, m),
                   slices.unknown_slices_finding(unknown, keys), slices.confusions_finding(top, n),
                   slices.decision_size_finding(checks, n, n_test, how))


def side_by_side(c: Compared, s: Scored, new_preds: list, config) -> Section:
    from ftkit.evaluation import presentation

    old_scores, new_scores = s.scores(c.headline_metric)
    examples = presentation.side_by_side(c.baseline.records, c.baseline.predictions, new_preds, old_scores, new_scores,
                                   k=config.evaluation.examples_shown, metric=c.headline_metric)
    return Section(value=examples).table(examples, caption="Baseline and fine-tuned answers to the same test inputs")


def stopping(c: Compared, prompts: list, new_preds: list) -> Section:
    """value: {"baseline", "fine_tuned", "serving", "round_trip"}."""
    from ftkit.evaluation import stops

    res = {"baseline": stops.runaways(c.baseline.predictions), "fine_tuned": stops.runaways(new_preds)}
    serving = stops.serving_stops(c.ft.model, c.ft.tokenizer)
    trip = stops.round_trip(c.ft.tokenizer, prompts, [p.output for p in new_preds])
    sec = Section(value={**res, "serving": serving, "round_trip": trip})
    sec.table([{"model": who, "answers": r["n"], "runaways": r["runaways"], "rate": f"{r['rate']:.1%}"}
               for who, r in res.items()])
    sec.table(res["fine_tuned"]["examples"][:5], caption="Fine-tuned runaways (end of the answer)")
    return sec.add(runaway_finding(res["fine_tuned"], res["baseline"], c.baseline.max_new_tokens),
                   serving_stop_finding(serving), round_trip_finding(trip))


def forgetting_probe(run, c: Compared, enabled: bool = True, progress: bool = True) -> Section:
    """value: ftkit.evaluation.forgetting.compare() result, or None when skipped."""
    if not enabled:
        return Section(notes=["Forgetting probe skipped (run_probe = False)."])
    from ftkit.evaluation import finetuned, forgetting
    from ftkit.generation import generate_local

    ev = run.config.evaluation
    probes = forgetting.load_probes(run.engagement.path / ev.probe_set if ev.probe_set else None)
    if ev.probe_set:
        run.record_input(run.engagement.path / ev.probe_set)
    probe_prompts = forgetting.probe_prompts(probes, c.ft.tokenizer)
    engine = vllm_engine(run, c) if c.ft.kind == "adapter" else None  # before = the engine without the adapter
    if engine is not None:
        before = engine.generate(probe_prompts, ev.probe_max_new_tokens, adapter=False)
        after = engine.generate(probe_prompts, ev.probe_max_new_tokens, adapter=True)
    else:
        with finetuned.base_behaviour(c.ft, run.config) as base_model:
            before = generate_local(base_model, c.ft.tokenizer, probe_prompts, ev.probe_max_new_tokens,
                                    c.baseline.batch_size, progress=progress)
        after = generate_local(c.ft.model, c.ft.tokenizer, probe_prompts, ev.probe_max_new_tokens,
                               c.baseline.batch_size, progress=progress)
    forget = forgetting.compare(probes, [p.output for p in before], [p.output for p in after])
    run.write_json("forgetting_probe.json", forget)
    sec = Section(value=forget)
    sec.table([{k: r[k] for k in ("id", "prompt", "expected", "before", "after")} for r in forget["lost"][:10]],
              caption=f"Probes answered right before and wrong after ({len(forget['lost'])})")
    return sec.add(forgetting_finding(forget))


def training_health(run, c: Compared) -> Section:
    """value: ftkit.evaluation.health.summarise() of the evaluated training run (typed TrainingResults)."""
    from ftkit.evaluation import health
    from ftkit.fsutil import read_json

    history_path = c.current.run_dir / "loss_history.json"
    history = run.upstream_file("training", "loss_history.json") if history_path.is_file() else None
    h = health.summarise(c.training, read_json(history) if history else [])
    sec = Section(value=h).table([{k: h[k] for k in ("n_validations", "first_val_loss", "best_val_loss",
                                                     "final_val_loss", "val_loss_trend", "overfitting")}])
    return sec.add(training_health_finding(h))


def earlier_iterations(run, c: Compared, s: Scored, fingerprint: str, limit: int, progress: bool = True) -> Section:
    """value: one row per iteration, this one first, with the paired difference to each earlier one."""
    from ftkit import metrics
    from ftkit.evaluation import iterations, paired

    ev, m = run.config.evaluation, c.headline_metric
    earlier = iterations.earlier(c.iterations, c.current.run_id, limit)
    rows = [{"iteration": c.current.number, "training run": c.current.run_id,
             "how trained": iterations.what_changed(c.current), m: f"{s.rows[m]['fine_tuned']:.3f}",
             "newest minus this": "-", "source": "this run"}]
    for it in earlier:
        preds, source = iterations.predictions_of(run, it, c.baseline, fingerprint, progress)
        it_report = metrics.evaluate(preds, run.config.task, n_boot=ev.n_bootstrap, seed=ev.seed)
        cmp = paired.compare_statistics(s.new_report.statistics[m], it_report.statistics[m], ev.n_bootstrap, ev.seed)
        rows.append({"iteration": it.number, "training run": it.run_id, "how trained": iterations.what_changed(it),
                     m: f"{cmp['baseline']:.3f}",
                     "newest minus this": f"{cmp['diff']:+.3f} [{cmp['diff_ci'][0]:+.3f}, {cmp['diff_ci'][1]:+.3f}]",
                     "source": source, "diff": cmp["diff"], "diff_ci": list(cmp["diff_ci"]),
                     "p": paired.p_value(cmp), "significant": bool(cmp.get("significant"))})
    return Section(value=rows).table(rows, caption=f"Iterations on {m}").add(iterations_finding(rows, m))


LEDGER_FIGURE = "iteration_ledger"


def ledger_findings(rows: list[dict]) -> list:
    """One line per iteration on the headline metric, and a warning when some were measured on another test set."""
    scored = [r for r in rows if r.get("value") is not None]
    if not scored:
        return [finding("info", "evaluation.ledger", f"{len(rows)} iteration(s); none evaluated yet.")]
    m = scored[-1]["metric"]
    line = "; ".join(f"{r['iteration']}: {r['value']:.3f}" + (f" ({r['vs_previous']:+.3f} vs {r['iteration'] - 1}, "
                                                               f"p = {r['vs_previous_p']:.2g})"
                                                               if r.get("vs_previous") is not None else "")
                     for r in scored)
    out = [finding("info", "evaluation.ledger", f"Iterations on {m} (test set): {line}.")]
    other = [r["iteration"] for r in scored if not r["comparable"]]
    if other:
        out.append(finding("warning", "evaluation.ledger_not_comparable",
                           f"Iteration(s) {', '.join(map(str, other))} were evaluated on another test set (a review "
                           f"sheet changed test answers or examples since): their figures are not on the same "
                           f"yardstick as iteration {scored[-1]['iteration']}'s.",
                           "Compare them through this run's paired differences (re-scored on the current test set)."))
    return out


def ledger_table(rows: list[dict]) -> list[dict]:
    """The ledger as shown (the notebook and the consolidated report)."""
    def diff(r, key):
        v = r.get(key)
        if v is None:
            return "-"
        ci = r.get(f"{key}_ci") or [v, v]
        p = r[f"{key}_p"]
        return f"{v:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}], " + ("p < 0.001" if p < 0.001 else f"p = {p:.2g}")

    out = []
    for r in rows:
        ch = r.get("changes")
        out.append({"iteration": r["iteration"], "training run": r["training_run"],
                    "data audit (data sha256)": f"{r['data_audit_run']} ({r['data_sha256'][:10]})",
                    "records added, removed, corrected": ("-" if ch is None else f"+{ch['added']}, -{ch['removed']}, {ch['corrected']}")
                    + (f" ({r['test_corrected']} test answers corrected)" if r.get("test_corrected") else ""),
                    "settings changed": "; ".join(r["settings_changed"]) or "-",
                    "val loss": "-" if r.get("val_loss") is None else f"{r['val_loss']:.3f}",
                    r.get("metric") or "test metric": "not evaluated" if r.get("value") is None else
                    f"{r['value']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]" if r.get("ci") else f"{r['value']:.3f}",
                    "vs previous": diff(r, "vs_previous"), "vs baseline": diff(r, "vs_baseline"),
                    "same test set": "yes" if r.get("comparable") else "no" if r.get("value") is not None else "-"})
    return out


def ledger_figure(rows: list[dict]):
    """The headline metric per iteration with its 95 % CI; the baseline as a line; hollow = another test set."""
    import matplotlib.pyplot as plt

    scored = [r for r in rows if r.get("value") is not None]
    fig, ax = plt.subplots(figsize=(6, 3))
    for r in scored:
        lo, hi = (r["ci"] or [r["value"], r["value"]])
        ax.errorbar([r["iteration"]], [r["value"]], yerr=[[r["value"] - lo], [hi - r["value"]]], fmt="o", capsize=4,
                    color="#2980b9", mfc="#2980b9" if r["comparable"] else "white")
    if scored:
        ax.axhline(scored[-1]["baseline"], color="#7f8c8d", ls="--", label="baseline (newest test set)")
        ax.set_ylabel(scored[-1]["metric"])
        ax.legend(fontsize=8)
    ax.set_xticks([r["iteration"] for r in rows])
    ax.set_xlim(0.5, len(rows) + 0.5)
    ax.set_xlabel("iteration (training run)")
    ax.set_title("Iteration ledger: headline test metric, 95 % CI")
    fig.tight_layout()
    return fig


def iteration_ledger(run, c: Compared, s: Scored, new_preds: list, iteration_rows: list) -> Section:
    """Every iteration (succeeded training run) with its data, settings, validation loss and test metric, this one
    included (value: the rows, also kept on ``c`` for the verdict: see ftkit.evaluation.iterations.ledger_rows)."""
    from ftkit.evaluation import iterations

    columns = iterations.evaluation_row({"fine_tuned_metrics": s.new_report.to_dict(), "metrics": s.rows,
                                         "iterations": iteration_rows, "iteration": c.current.number},
                                        iterations.test_set_hash(new_preds))
    rows = iterations.ledger_rows(run.engagement, {"training_run": c.current.run_id, "columns": columns,
                                                   "evaluation_run": run.run_id})
    c.ledger = rows
    sec = Section(value=rows).table(ledger_table(rows), caption="Iteration ledger")
    sec.figures.append((LEDGER_FIGURE, ledger_figure(rows)))
    return sec.add(*ledger_findings(rows))


def ab_review(run, c: Compared, new_preds: list) -> Section:
    """The blind A/B sheet, any filled ratings, and the optional LLM judge. value: what results.json records."""
    from ftkit.evaluation import ab_sheet, judge
    from ftkit.evaluation.presentation import user_text

    ev = run.config.evaluation
    n_boot, seed = ev.n_bootstrap, ev.seed
    pairs = [ab_sheet.PairItem(p.id, user_text(r), o.output, p.output)
             for r, o, p in zip(c.baseline.records, c.baseline.predictions, new_preds)]
    sheet_rows, key = ab_sheet.build_sheet(pairs, ev.ab_items, seed=seed,
                                           context={"training_run": c.current.run_id, "baseline_run": c.baseline.run_id})
    files = ab_sheet.write_sheet(run.artefact("ab"), sheet_rows, key,
                                 title=f"{run.config.client.name or run.engagement.slug}: blind A/B review")
    ratings, rating_files, other_sheets = ab_sheet.collect(run.engagement.path / ev.ab_ratings_dir, key)
    for path in rating_files:
        run.record_input(path)
    human = ab_sheet.analyse(ratings, key, n_boot=n_boot, seed=seed) if ratings else None
    judged = None
    if ev.llm_judge:
        refs = {p.id: p.reference for p in new_preds}
        judged = judge.run_judge(judge.client_for(run.config), sheet_rows, key, refs, c.baseline.spec.system_prompt,
                                 n_boot, seed)
        run.write_json("ab/llm_judge.json", judged)
    sec = Section(value={"ab": {"sheet_id": key["sheet_id"], "n_items": key["n_items"],
                                "files": {k: f"ab/{v.name}" for k, v in files.items()}, "human": human,
                                "other_sheets": other_sheets}, "judge": judged})
    if human:
        sec.table(human["per_rater"], caption="Per rater")
    if other_sheets:
        sec.notes.append(f"Files in {ev.ab_ratings_dir}/ for other sheets (earlier models), not used: "
                         f"{', '.join(other_sheets)}")
    return sec.add(human_ab_finding(human, key, ev.ab_ratings_dir), judge_finding(judged))


def suspect_labels(run, c: Compared, new_preds: list, progress: bool = True) -> Section:
    """The examples whose given answer the fine-tuned model most confidently rejects, ranked, with a review sheet
    (``suspects/suspect_labels.csv`` + ``.html``); rules and scoring in ``ftkit.evaluation.suspects``."""
    from ftkit.evaluation import suspects

    return suspects.section(run, c, new_preds, progress)


def acceptance(config, evidence: dict) -> Section:
    """Each acceptance criterion with its value and CI, and the verdict (value: ftkit.evaluation.verdict.Verdict).

    ``evidence``: what ftkit.evaluation.verdict.decide reads (see :func:`evidence`).
    """
    from ftkit.evaluation import verdict

    ev = config.evaluation
    decision = verdict.decide(ev.acceptance, evidence, max_iterations=ev.max_iterations)
    rows = [{"criterion": f"{c['metric']} {c['rule']}", "value": "-" if c["value"] is None else round(c["value"], 4),
             "95% CI": f"{c['ci'][0]:.3f}-{c['ci'][1]:.3f}" if c["ci"] else "", "status": c["status"],
             "margin": c["margin"], "evidence": c["evidence"]} for c in decision.criteria]
    return Section(value=decision).table(rows, caption="Acceptance criteria").add(*verdict_findings(decision))


def evidence(c: Compared, s: Scored, n_answers: int, regs: dict, ab: dict, stops: dict, forget, health: dict,
             slices: dict | None = None, suspects: dict | None = None) -> dict:
    """What the verdict's criteria can be measured on, from the sections' values (``slices``: the error analysis'
    value, ``suspects``: the suspect-label step's; each None when that section did not run)."""
    return {"headline_metric": c.headline_metric, "metrics": s.rows, "regressions": regs["regressions"],
            "n_examples": n_answers, "human_ab": ab["ab"]["human"], "judge": ab["judge"],
            "stops": {k: stops[k] for k in ("baseline", "fine_tuned")}, "forgetting": forget, "training": health,
            "iteration": c.current.number, **loop_evidence(c, health), **data_evidence(slices, suspects)}


def data_evidence(slices: dict | None, suspects: dict | None) -> dict:
    """``weak_slices``: the slices significantly below the overall figure (BH-adjusted), and ``suspects``: the
    out-of-sample examples cleanlab flags among those scored, for the verdict's "fix those data" rule. A section that
    did not run (or a loss-only suspect ranking, which flags nothing) adds nothing, so that rule stays off.

    >>> data_evidence({"slices": {"rows": [{"slice": "channel=email", "below_overall": True},
    ...                                    {"slice": "channel=chat", "below_overall": False}]}},
    ...               {"n_cleanlab_issues": 3, "n_out_of_sample": 40})
    {'weak_slices': ['channel=email'], 'suspects': {'n': 3, 'n_scored': 40}}
    """
    out: dict = {}
    rows = ((slices or {}).get("slices") or {}).get("rows")
    if rows is not None:
        out["weak_slices"] = [r["slice"] for r in rows if r.get("below_overall")]
    if suspects and suspects.get("n_cleanlab_issues") is not None and suspects.get("n_out_of_sample"):
        out["suspects"] = {"n": int(suspects["n_cleanlab_issues"]), "n_scored": int(suspects["n_out_of_sample"])}
    return out


def loop_evidence(c: Compared, health: dict) -> dict:
    """The improvement loop's evidence for the next action: training progress (epochs seen, s/step, the end of the
    validation curve) and the iteration ledger. The slice analysis and the suspect-label step add ``weak_slices``
    (names) and ``suspects`` ({"n", "n_scored"}) to the evidence dict when they run (ftkit.evaluation.verdict.loop_facts)."""
    from ftkit.evaluation.verdict import training_progress

    return {"training_progress": training_progress(c.training, health), "ledger": c.ledger or []}


# -- typed results ----------------------------------------------------------------------------------------------------

@dataclass
class EvaluationResults(PhaseResults):
    """What the evaluation phase hands to the deployment plan and the report (results.json ``results``)."""

    PHASE = "evaluation"
    SCHEMA_VERSION = 2  # 2: prompts, same_prompt

    training_run: str = described("run id of the training run evaluated")
    iteration: int = described("its iteration number (1 = first succeeded training run)")
    baseline_run: str = described("run id of the baseline compared with")
    prompts_sha256: str = described("sha256 over the per-example prompt hashes (same prompts as the baseline)")
    generation: dict = described("max_new_tokens (tokens), batch_size, decoding")
    metrics: dict = described("metric name -> paired comparison row (baseline, fine_tuned, diff, CIs, p)",
                              "metric units; CIs 95 %")
    fine_tuned_metrics: dict = described("the fine-tuned model's MetricsReport.to_dict()")
    regressions: list = described("test examples the baseline answered better (id, scores)")
    side_by_side: list = described("examples shown with both answers")
    stops: dict = described("runaways of both models, serving stop ids, template round trip", "rate: share 0-1")
    forgetting: dict | None = described("general-probe accuracy before/after (None when skipped)", "share 0-1")
    training_health: dict = described("validation-loss trend and overfitting flag of the evaluated run")
    iterations: list = described("this iteration and earlier ones on the headline metric")
    ab: dict = described("blind A/B sheet id, items, files and human ratings (None until filled sheets arrive)")
    judge: dict | None = described("LLM-judge result, None when evaluation.llm_judge is off")
    verdict: dict = described("go / no_go / pending, action, why, next steps and every criterion row")
    files: dict = described("artefacts of this run, relative to the run folder")
    slices: dict | None = described("error analysis (slices.json): headline metric by slice with BH-adjusted tests, "
                                    "per-label P/R/F1, top confusions, per-field accuracy, decision CIs; None before "
                                    "it existed", "metric units; CIs 95 %", default=None)
    prompts: dict = described("each side's prompt: baseline (the base model's, its best with baseline.prompt_search) "
                              "and fine_tuned (trained and served with): name, n_shots, system_prompt, spec_sha256, "
                              "prompts_sha256", default_factory=dict)
    same_prompt: dict | None = described("second view: both models under the fine-tuned model's prompt (prompt, "
                                         "metrics: name -> paired row); None when the baseline used that prompt",
                                         "metric units; CIs 95 %", default=None)
    ledger: list = described("the iteration ledger: per training run its data audit and data sha256, records "
                             "added/removed/corrected, settings changed, validation loss, test metric with CI, paired "
                             "differences vs the previous iteration and the baseline with p", default_factory=list)

    @property
    def headline_metric(self) -> str:
        return _headline_metric_of(self)

    @property
    def decision(self) -> str:
        """'go', 'no_go' or 'pending'."""
        return self.verdict["verdict"]

    def headline_row(self) -> dict:
        from ftkit.evaluation.paired import p_value

        m = _headline_metric_of(self)
        row = self.metrics[m]
        return {"verdict": self.verdict["verdict"], "headline_metric": m, "delta": row["diff"],
                "baseline": row["baseline"], "fine_tuned": row["fine_tuned"], "p_value": p_value(row),
                "action": self.verdict["action"], "n_test": self.n_test}

    @property
    def n_test(self) -> int:
        """Test examples both models answered."""
        return int(self.fine_tuned_metrics["n"])


def _headline_metric_of(r: EvaluationResults) -> str:
    return r.fine_tuned_metrics["headline"]["name"]


def results(run, c: Compared, s: Scored, fingerprint: str, new_preds: list, regs: dict, examples: list,
            stops: dict, forget, health: dict, iteration_rows: list, ab: dict, decision,
            slices: dict | None = None, same_prompt: dict | None = None) -> EvaluationResults:
    baseline = c.baseline
    return EvaluationResults(
        prompts={"baseline": baseline.prompt_record(False), "fine_tuned": baseline.prompt_record(True)},
        same_prompt=same_prompt,
        training_run=c.current.run_id, iteration=c.current.number, baseline_run=baseline.run_id,
        prompts_sha256=fingerprint, generation={"max_new_tokens": baseline.max_new_tokens, "batch_size": baseline.batch_size,
                                                "decoding": "greedy"},
        metrics=s.rows, fine_tuned_metrics=s.new_report.to_dict(), regressions=regs["regressions"],
        side_by_side=examples, stops=stops, forgetting=forget, training_health=health, iterations=iteration_rows,
        ab=ab["ab"], judge=ab["judge"], verdict=decision.to_dict(), ledger=list(c.ledger or []),
        files={"predictions": "predictions.jsonl", "ab_sheet": "ab/ab_sheet.html",
               **({"slices": "slices.json"} if slices else {})}, slices=slices)


def summary(r: EvaluationResults) -> str:
    from ftkit.evaluation.slices import weakest_sentence

    weakest = weakest_sentence((r.slices or {}).get("slices"))
    return f"Verdict {r.verdict['verdict']}: {r.verdict['why']}" + (f" {weakest}" if weakest else "")


def what_to_tell_the_client(r: EvaluationResults) -> str:
    from ftkit.evaluation import presentation
    from ftkit.evaluation.verdict import Verdict

    sides = r.prompts or {}
    two = sides and sides["baseline"]["spec_sha256"] != sides["fine_tuned"]["spec_sha256"]
    return presentation.tell_client(Verdict(**r.verdict), r.metrics, _headline_metric_of(r), r.n_test, r.forgetting,
                              r.stops["fine_tuned"], f"its best prompt ({sides['baseline']['name']})" if two else
                              "the same prompt")


def next_steps(r: EvaluationResults) -> list[str]:
    return list(r.verdict["next_steps"])
