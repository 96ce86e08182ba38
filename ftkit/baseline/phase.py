"""The baseline phase's building blocks: what ``notebooks/03_baseline.ipynb`` calls, one function per section.

Each section function returns a :class:`ftkit.section.Section` (tables, figures, findings; ``value`` for the
next sections). The metric findings are shared with the evaluation (``ftkit.metrics.findings``, thresholds
``RUNAWAY_WARN``, ``FORMAT_WARN``, ``WIDE_CI``); the section-specific rules are the ``*_finding`` functions
here. ``BaselineResults`` is what results.json holds and what the evaluation reads back.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.phase_results import PhaseResults, described
from ftkit.section import Section, finding


# -- the rules -------------------------------------------------------------------------------------------------------

def split_finding(n_scored: int, n_test: int, limit: int, how: str = ""):
    """A warning when only part of the test split is scored (baseline.max_examples); ``how``: the subset's
    ``ftkit.sampling.Subset.describe()``. CI half-widths shrink with the square root of the examples scored."""
    if n_scored < n_test:
        return finding("warning", "baseline.subset",
                       f"Scoring {how or f'{n_scored} of {n_test} test examples'} (baseline.max_examples = {limit}; "
                       f"the evaluation answers the same ids): confidence intervals are about "
                       f"{(n_test / n_scored) ** 0.5:.1f}x as wide as with the full split.",
                       "Set baseline.max_examples: 0 for the numbers you report to the client.")
    return finding("info", "baseline.test_split", f"Scoring all {n_test} test examples.")


def prompt_finding(shot_ids: list[str], n_prompt_tokens: int, chat_template_sha256: str):
    return finding("info", "baseline.prompt",
                   f"{len(shot_ids)}-shot prompt (shots: {', '.join(shot_ids) or 'none'}), "
                   + (f"{n_prompt_tokens} tokens for the first test example; " if n_prompt_tokens else "")
                   + f"template sha256 {chat_template_sha256[:12] or '(endpoint)'}.")


def tiny_model_finding(model: dict):
    if not model.get("is_tiny_random"):
        return None
    return finding("warning", "baseline.tiny_random_model",
                   f"The base model '{model['name']}' is ftkit's randomly initialised TEST model: its answers are "
                   f"gibberish and every number below only shows that the pipeline works.",
                   "Set base_model.id to the client's real base model for real results.")


def failures_finding(n_below: int, n: int, metric: str, n_shown: int):
    return finding("info", "baseline.failures", f"{n_below} of {n} answers score below 1 on "
                   f"{metric}; the table shows the {n_shown} lowest.")


def candidates_findings(choice: dict, skipped: dict[str, str]) -> list:
    out = [finding("info", "baseline.candidates", f"Recommended base model: {choice['recommended']}: {choice['reason']}")]
    out += [finding("warning", "baseline.candidate_skipped", f"Candidate {model_id} was not scored: {why}")
            for model_id, why in skipped.items()]
    return out


# -- the sections ----------------------------------------------------------------------------------------------------

def settings(run, shots: int = -1, max_examples: int = -1) -> dict:
    """The resolved knobs (notebook parameters override engagement.yaml when >= 0); seeds recorded."""
    c = run.config
    seed = c.data.split.seed
    run.record_seed("few_shot_selection", seed)
    run.record_seed("bootstrap", seed)
    return {"n_shots": c.baseline.shots if shots < 0 else shots,
            "limit": c.baseline.max_examples if max_examples < 0 else max_examples, "seed": seed}


def test_split(run, limit: int) -> Section:
    """value: the data audit's splits plus "scored" (the test examples scored here)."""
    from ftkit.prompting import load_splits
    from ftkit.sampling import stratified_subset

    seed = run.config.data.split.seed
    splits = load_splits(run, limit, seed=seed)
    subset = stratified_subset(splits["test"], limit, seed)  # the same choice load_splits made, described
    sec = Section(value={**splits, "subset": subset.to_dict()})
    sec.table([{"split": name, "examples": len(rows)} for name, rows in splits.items()])
    if subset.is_subset and subset.by:
        sec.table([{subset.by: k, "scored": v} for k, v in subset.strata.items()][:20],
                  caption=f"Scored examples per {subset.by} (first 20 of {len(subset.strata)})")
    return sec.add(split_finding(len(splits["scored"]), len(splits["test"]), limit, subset.describe()))


def prompt_search(run, splits: dict, seed: int, progress: bool = True) -> Section:
    """Candidate prompts scored on the validation split (ftkit.baseline.prompt_search); value: the search record
    (JSON-safe: candidates, scores with CIs, the winner and the served zero-shot prompt), None when off or when
    there is no validation split. prompt_search.json and each candidate's answers
    (prompt_search/candidate_<i>.jsonl, in candidate order) written."""
    from ftkit.baseline import prompt_search as ps
    from ftkit.generation import write_predictions

    config = run.config
    settings = config.baseline.prompt_search
    if not settings.enabled:
        return Section(notes=["Prompt search is off (baseline.prompt_search.enabled: false): the configured prompt "
                              "(baseline.shots) is the baseline."])
    if not splits["validation"]:
        return Section().add(ps.no_validation_finding())
    variants = []
    if settings.variants_file:
        path = run.engagement.path / settings.variants_file
        variants = ps.read_variants(path)
        run.record_input(path)
    run.record_seed("prompt_search_sample", seed)  # the validation sample and the k-shot shots
    cands = ps.candidates(config, splits["train"], variants, settings.variants_file)
    sample = ps.validation_sample(splits["validation"], settings.max_examples, seed)
    scored = ps.score(config, cands, sample, splits["train"] + splits["validation"], progress, seed)
    winner, rows = ps.choose(scored, seed=seed)
    metric = scored[0].report.headline_metric
    for i, (s, row) in enumerate(zip(scored, rows)):  # every candidate's answers are evidence too
        row["predictions"] = f"prompt_search/candidate_{i}.jsonl"
        write_predictions(run.artefact(row["predictions"]), s.predictions)
    record = {"metric": metric, "n_validation": len(sample), "validation_ids": [str(r.get("id")) for r in sample],
              "rule": SEARCH_RULE, "candidates": [c.to_dict() for c in cands], "rows": rows,
              "winner": winner.candidate.to_dict(), "served": cands[0].to_dict()}
    run.write_json("prompt_search.json", record)
    shown = [{"candidate": r["candidate"], "shots": r["shots"], metric: round(r[metric], 3),
              "95% CI": f"{r['ci_low']:.3f}-{r['ci_high']:.3f}",
              "vs zero-shot": f"{r['diff_to_zero_shot']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]",
              "prompt tokens": r["mean_prompt_tokens"], "spec sha256": r["spec_sha256"][:12],
              "winner": "yes" if r["winner"] else ""} for r in rows]
    sec = Section(value=record).table(shown, caption=f"Candidate prompts on {len(sample)} validation examples")
    sec.figures.append(("prompt_search", ps.plot_candidates(rows, metric)))
    return sec.add(ps.validation_size_finding(len(sample)), ps.winner_finding(rows, metric))


SEARCH_RULE = ("highest validation headline metric; ties to fewer mean prompt tokens, then to the earlier candidate "
               "(zero-shot, spelled-out, k-shot, variants)")
SERVED_PREDICTIONS = "predictions_served_prompt.jsonl"  # the base model under the fine-tuned model's prompt


def the_prompt(run, splits: dict, n_shots: int, seed: int, search: dict | None = None) -> Section:
    """value: (PromptSpec, prompt.json dict); prompt.json written; one rendered prompt shown (PII masked).

    With a prompt search (``search``, the value of :func:`prompt_search`) the winner's spec is the prompt, and
    prompt.json also records every candidate and the served (zero-shot) prompt the evaluation gives the
    fine-tuned model."""
    from ftkit import models, prompting

    config = run.config
    bm = config.base_model
    tokenizer = models.load_tokenizer(models.base_model_source(bm)) \
        if config.baseline.backend == "local" else None
    spec = prompting.PromptSpec(**search["winner"]["spec"]) if search else \
        prompting.make_spec(splits["train"], n_shots, config.task.system_prompt, seed=seed)
    prompt = prompting.preview(config, spec, splits["scored"][0], tokenizer)
    if search:
        same = search["winner"]["spec_sha256"] == search["served"]["spec_sha256"]
        prompt["prompt_search"] = {k: search[k] for k in ("metric", "n_validation", "rule", "rows", "candidates")}
        prompt["prompt_search"]["winner"] = search["winner"]["name"]
        prompt["served_prompt"] = {**search["served"], "predictions": "predictions.jsonl" if same else SERVED_PREDICTIONS}
    run.write_json("prompt.json", prompt)
    sec = Section(value=(spec, prompt), notes=[prompting.shown_prompt(prompt)])  # prompt.json keeps the exact text
    return sec.add(prompt_finding(spec.shot_ids, prompt["n_prompt_tokens"], prompt["chat_template_sha256"]))


def generate(run, splits: dict, spec, progress: bool = True) -> Section:
    """value: the GenerationRun; predictions.jsonl written; model recorded in the manifest."""
    from ftkit import generation

    gen = generation.generate_for_config(run.config, splits["scored"], spec, splits["train"] + splits["validation"],
                                         progress=progress)
    run.record_model(gen.model)
    generation.write_predictions(run.artefact("predictions.jsonl"), gen.predictions)
    speed = generation.throughput(gen.predictions)
    gen.extra["throughput"] = speed
    gen.extra["subset"] = splits.get("subset")  # which test ids were scored and how they were chosen
    sec = Section(value=gen).table([{"model": gen.model["name"], "kind": gen.model["kind"],
                                     "parameters": gen.model.get("parameters"),
                                     "device": gen.model.get("device", "endpoint"), "max_new_tokens": gen.max_new_tokens,
                                     "tokens/s": round(speed["tokens_per_s"], 1), "load s": gen.load_seconds}])
    return sec.add(tiny_model_finding(gen.model))


def score(run, gen, seed: int) -> Section:
    """value: the MetricsReport; metrics.json and per_example_scores.json written."""
    from ftkit import metrics
    from ftkit.metrics import findings, plots

    report = metrics.evaluate(gen.predictions, run.config.task, seed=seed)
    run.write_json("metrics.json", report.to_dict())
    run.write_json("per_example_scores.json", report.per_example())
    sec = Section(value=report).table(report.table_rows())
    sec.figures.append(("metrics", plots.plot_metrics(report)))
    return sec.add(*findings.all_findings(report, gen.model["name"], gen.max_new_tokens))


def served_prompt(run, splits: dict, search: dict | None, report, seed: int, progress: bool = True) -> Section:
    """The base model under the fine-tuned model's prompt (the consultant's zero-shot one) on the same test
    examples, when the prompt search picked another prompt: the evaluation's same-prompt view. value: None, or
    {"name", "spec_sha256", "predictions", "metrics"}; predictions_served_prompt.jsonl written."""
    from ftkit import generation, metrics
    from ftkit.baseline import prompt_search as ps
    from ftkit.prompting import PromptSpec

    if not search or search["winner"]["spec_sha256"] == search["served"]["spec_sha256"]:
        return Section(notes=["The baseline's prompt is the fine-tuned model's prompt: one test run serves both of "
                              "the evaluation's views."])
    served = search["served"]
    gen = generation.generate_for_config(run.config, splits["scored"], PromptSpec(**served["spec"]),
                                         splits["train"] + splits["validation"], progress=progress)
    generation.write_predictions(run.artefact(SERVED_PREDICTIONS), gen.predictions)
    other = metrics.evaluate(gen.predictions, run.config.task, seed=seed)
    run.write_json("metrics_served_prompt.json", other.to_dict())
    m = report.headline_metric
    rows = [{"prompt": f"{name} ({role})", m: round(r.value(m), 3), "95% CI": f"{r.cis[m][0]:.3f}-{r.cis[m][1]:.3f}"}
            for name, role, r in ((search["winner"]["name"], "the baseline", report),
                                  (served["name"], "the fine-tuned model's prompt", other))]
    value = {"name": served["name"], "spec_sha256": served["spec_sha256"], "predictions": SERVED_PREDICTIONS,
             "metrics": other.to_dict()}
    sec = Section(value=value).table(rows, caption=f"Test examples under both prompts ({len(gen.predictions)})")
    return sec.add(ps.served_check_finding(report.value(m), other.value(m), m, len(gen.predictions),
                                         search["winner"]["name"]))


def failures(report, gen) -> Section:
    """value: the lowest-scoring answers (with their references)."""
    from ftkit import metrics
    from ftkit.metrics import plots

    sec = Section()
    if report.details.get("confusion"):
        title = f"Confusion matrix: {report.details.get('label_field') or 'label'}"
        sec.figures.append(("confusion_matrix", plots.plot_confusion(report.details["confusion"], title)))
    rows = metrics.failure_examples(report, gen.predictions, k=8)
    sec.value = rows
    sec.table(rows, caption="Lowest-scoring answers")
    below = sum(1 for s in report.statistics[report.headline_metric].per_example if s < 1)
    return sec.add(failures_finding(below, len(report.ids), report.headline_metric, len(rows)))


def candidates(run, splits: dict, spec, report, gen, enabled: bool = True, progress: bool = True,
               seed: int = 0) -> Section:
    """Score base_model.candidates with the same prompt on the same examples; value: the choice (or None)."""
    from ftkit.baseline import selection

    config = run.config
    if not (enabled and config.base_model.candidates):
        return Section(notes=["No candidates configured (base_model.candidates is empty): only the base model was "
                              "scored."])
    others, skipped = selection.score_candidates(config, config.base_model.candidates, splits["scored"], spec,
                                                 splits["train"] + splits["validation"], progress, seed)
    main = selection.Candidate(config.base_model.id, gen.model.get("parameters"), report,
                               gen.model.get("is_tiny_random", False))
    choice = selection.recommend([main] + others, seed=seed)
    sec = Section(value=choice).table(choice["rows"], caption=f"Candidates on {report.headline_metric}")
    return sec.add(*candidates_findings(choice, skipped))


# -- typed results ---------------------------------------------------------------------------------------------------

@dataclass
class BaselineResults(PhaseResults):
    """What the baseline hands to the evaluation and the report (results.json ``results``)."""

    PHASE = "baseline"
    SCHEMA_VERSION = 2  # 2: prompt_search

    model: dict = described("the base model as described (name, kind, parameters, revision, is_tiny_random)")
    prompt: dict = described("n_shots, shot_ids, system_prompt, chat_template_sha256 (prompt.json has the text)")
    generation: dict = described("backend, max_new_tokens (tokens), batch_size, n_examples, throughput "
                                 "(tokens/s), load_seconds (s), subset (the scored test ids and how they were "
                                 "chosen: ftkit.sampling.Subset.to_dict())")
    metrics: dict = described("MetricsReport.to_dict(): every metric with its 95 % bootstrap CI", "metric units")
    failure_examples: list = described("the lowest-scoring answers with their references")
    candidates: dict | None = described("candidate comparison and recommendation; None when none were scored")
    files: dict = described("artefacts of this run, relative to the run folder")
    prompt_search: dict | None = described(
        "baseline.prompt_search: metric, n_validation, rule, rows (each candidate's validation score, 95 % CI, paired "
        "difference to zero-shot, spec and prompt hashes), winner, served (the fine-tuned model's prompt) and test "
        "(the base model under the served prompt on the test examples; None when the winner is that prompt); "
        "None when off", "metric units", default=None)

    @property
    def headline_metric(self) -> str:
        return self.metrics["headline"]["name"]

    @property
    def headline_value(self) -> float:
        return self.metrics["headline"]["value"]

    def headline_row(self) -> dict:
        h = self.metrics["headline"]
        row = {"model": self.model["name"], "headline_metric": h["name"], "headline_value": h["value"],
               "ci_low": h["ci_low"], "ci_high": h["ci_high"], "n_test": self.metrics["n"]}
        if self.prompt_search:  # the prompt the search chose (status table and the report's phase headline)
            row["best_prompt"] = self.prompt_search["winner"]["name"]
        return row


def results(run, prompt: dict, gen, report, failure_rows: list, choice, search: dict | None = None,
            served: dict | None = None) -> BaselineResults:
    config = run.config
    files = {"prompt_search": "prompt_search.json"} if search else {}
    files.update({"served_prompt_predictions": SERVED_PREDICTIONS} if served else {})
    searched = {**{k: v for k, v in search.items() if k not in ("candidates", "validation_ids")}, "test": served} \
        if search else None
    return BaselineResults(prompt_search=searched,
        model={k: v for k, v in gen.model.items() if k != "files"},
        prompt={k: prompt[k] for k in ("n_shots", "shot_ids", "system_prompt", "chat_template_sha256")},
        generation={"backend": config.baseline.backend, "max_new_tokens": gen.max_new_tokens,
                    "batch_size": config.baseline.batch_size, "n_examples": len(gen.predictions),
                    "throughput": gen.extra["throughput"], "load_seconds": gen.load_seconds,
                    "subset": gen.extra.get("subset")},
        metrics=report.to_dict(), failure_examples=failure_rows, candidates=choice,
        files={"predictions": "predictions.jsonl", "prompt": "prompt.json", "metrics": "metrics.json",
               "per_example_scores": "per_example_scores.json", **files})


def summary(report, r: BaselineResults) -> str:
    from ftkit.metrics import findings

    return findings.headline(report, r.model["name"])[2]


def what_to_tell_the_client(report, r: BaselineResults) -> str:
    from ftkit.metrics import findings

    return findings.tell_client(report, r.model["name"], r.prompt["n_shots"], r.model.get("is_tiny_random", False))


def next_steps(run, report, r: BaselineResults) -> list[str]:
    from ftkit.metrics import findings

    choice = r.candidates
    return findings.next_steps(report, run.engagement.slug, choice and choice["recommended"], run.config.base_model.id)
