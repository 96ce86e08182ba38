"""The deployment plan's building blocks: what ``notebooks/06_deployment_plan.ipynb`` calls, one function per section.

Each section function returns a :class:`ftkit.section.Section` (tables, figures, findings; ``value`` for the
next sections). The rules are the ``*_finding`` functions below, so ``tests/deployment/test_phase.py`` checks
both sides of each without a model. ``DeploymentPlanResults`` is what results.json holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.phase_results import PhaseResults, described
from ftkit.section import Section, finding

GO = "go"  # the evaluation verdict under which the plan is for production
MALFORMED_STATUS = 400  # the HTTP status the UAT endpoint must answer a malformed request with
STOPPED = "stop"  # OpenAI finish_reason of an answer that ended at end-of-turn (not max_tokens)


# -- the rules -------------------------------------------------------------------------------------------------------

def verdict_finding(verdict: str):
    if verdict == GO:
        return finding("info", "deployment.verdict", "The evaluation verdict is go: this plan is for a production "
                       "deployment.")
    return finding("warning", "deployment.verdict", f"The evaluation verdict is '{verdict}': this plan prepares "
                   "the deployment, but the model must not serve users yet.", "Follow the evaluation's next steps and "
                   "re-run this phase after a go.")


def test_model_finding(base: dict):
    if not base["is_tiny_random"]:
        return None
    return finding("warning", "deployment.test_model", base["note"], "Use a real base model for client work.")


def export_finding(exported):
    """Blocking when any comparison stage of the export-equivalence check failed."""
    last = exported.comparisons[-1]
    if exported.passed:
        return finding("info", "deployment.export_equivalent", f"The {exported.kind} export ({exported.dtype}, "
                       f"{exported.size_mb:,.1f} MB) answers like the evaluated model: mean KL {last.mean_kl:.1e} nats "
                       f"per token (tolerance {last.kl_tolerance:.0e}), top-1 agreement {last.top1_agreement:.1%}, "
                       f"greedy answers identical on {last.greedy_identical} of {last.n_prompts} prompts.")
    failed = [c.stage for c in exported.comparisons if not c.passed]
    return finding("blocking", "deployment.export_not_equivalent", f"The export differs from the evaluated model at: "
                   f"{', '.join(failed)} (mean KL {last.mean_kl:.1e}, template identical: {last.template_identical}).",
                   "Do not hand it over: export in fp16/fp32 (deployment.serving_dtype) or ship the adapter "
                   "(deployment.export_merged: false) and re-run this phase.")


def uat_finding(smoke: list[dict], slug: str):
    """info only when every answered request stopped at end-of-turn and the malformed one (last) was refused."""
    answered = [r for r in smoke if r["status"] == 200]
    stopped = sum(r["finish_reason"] == STOPPED for r in answered)
    ok = stopped == len(answered) and smoke[-1]["status"] == MALFORMED_STATUS
    return finding("info" if ok else "warning", "deployment.uat_endpoint",
                   f"The UAT endpoint answered {len(answered)} real requests over HTTP ({stopped} stopped at "
                   f"end-of-turn, {len(answered) - stopped} hit max_tokens) and refused a malformed one with HTTP "
                   f"{smoke[-1]['status']}.", f"Issue each tester a token (ftkit serve {slug} --issue-token NAME), then start it: "
                   f"ftkit serve {slug} --port 8000")


def configs_finding(family, n_configs: int, stop_strings: list[str]):
    if family:
        return finding("info", "deployment.configs", f"{n_configs} serving configs written with the {family.name} chat "
                       f"template and stop tokens {', '.join(stop_strings)}; commands in serving/README.md.")
    return finding("warning", "deployment.ollama_template", "The chat template is not a known family: the Ollama "
                   "Modelfile has no TEMPLATE.", "Write it by hand from serving/chat_template.jinja and check that "
                   "answers stop.")


def monitoring_findings(months: int, mplan: dict, reference: dict, slug: str, base_model_id: str) -> list:
    out = [finding("info", "deployment.retraining", f"Retrain every {months} months (next due "
                   f"{mplan['retraining']['next_due']}) or on a drift alert: `ftkit monitor {slug} --log FILE` compares "
                   f"logs with {reference['n']:,} training examples (median input "
                   f"{reference['features']['input_tokens']['summary']['p50']:.0f} tokens, {len(reference['labels'])} "
                   f"labels).")]
    if not mplan["base_model_pinned"]:
        out.append(finding("warning", "deployment.unpinned_base", f"base_model.revision is empty: '{base_model_id}' "
                           "can change under the deployed adapter.", "Pin base_model.revision to the commit used in "
                           "training."))
    return out


# -- the sections ----------------------------------------------------------------------------------------------------

def evaluation_summary(ev) -> dict:
    """The verdict and per-metric rows (fine-tuned, baseline, difference, CI) of the typed EvaluationResults."""
    rows = [{"metric": name, "fine_tuned": row["fine_tuned"], "baseline": row.get("baseline"), "diff": row.get("diff"),
             "diff_ci": row.get("diff_ci"), "significant": row.get("significant"), "n": row.get("n")}
            for name, row in ev.metrics.items() if isinstance(row, dict) and isinstance(row.get("fine_tuned"), (int, float))]
    return {"verdict": ev.decision, "headline_metric": ev.headline_metric, "metrics": rows,
            "n_test": next((r["n"] for r in rows if r.get("n")), None)}


@dataclass
class Upstream:
    training: object  # TrainingResults
    evaluation: object  # EvaluationResults
    train_records: list
    test_records: list


def upstream(run) -> Upstream:
    from ftkit.prompting import read_records

    return Upstream(run.upstream("training"), run.upstream("evaluation"),
                    read_records(run.upstream_file("data_audit", "train.jsonl")),
                    read_records(run.upstream_file("data_audit", "test.jsonl")))


def handed_over(run, up: Upstream) -> Section:
    """Section 1: the trained model, the base model (recorded) and the verdict. value: (trained, base, summary)."""
    from ftkit.deployment import artefacts
    from ftkit.models.describe import describe_model

    bm = run.config.base_model
    trained = artefacts.find_trained_model(run.upstream_dir("training"), bm.id, bm.revision)
    for path in artefacts.input_files(trained):
        run.record_input(path)
    base = describe_model(bm.id, bm.revision)
    run.record_model(base)
    summary = evaluation_summary(up.evaluation)
    sec = Section(value=(trained, base, summary)).table([
        {"item": "fine-tuned model", "value": trained.label}, {"item": "method", "value": run.config.training.method},
        {"item": "base revision", "value": base["revision"] or "(not pinned)"},
        {"item": "evaluation verdict", "value": summary["verdict"]}])
    return sec.add(verdict_finding(summary["verdict"]), test_model_finding(base))


def export_check(run, trained, up: Upstream, check_max_new_tokens: int) -> Section:
    """Section 2: merge/export and the export-equivalence check. value: the Export."""
    from ftkit.deployment import export

    d = run.config.deployment
    exported = export.export_model(trained, run.run_dir, d.serving_dtype, up.test_records, run.config.task.system_prompt,
                                   d.equivalence_prompts, check_max_new_tokens, merge=d.export_merged)
    return Section(value=exported).table(export.comparison_rows(exported)).add(export_finding(exported))


@dataclass
class Served:
    served: object  # the TrainedModel served (the export when there is one)
    tokenizer: object
    chat_model: object  # ftkit.deployment.server.LocalChatModel
    smoke: list


def uat_endpoint(run, trained, up: Upstream, enabled: bool, check_max_new_tokens: int) -> Section:
    """Section 3: the UAT endpoint started on 127.0.0.1 and sent real requests (when enabled). value: Served."""
    from ftkit.deployment import artefacts, export, server
    from ftkit.deployment.commands import served_model_name

    config, slug = run.config, run.engagement.slug
    served = artefacts.export_of(run.run_dir) or trained
    model, tokenizer = artefacts.load_trained(served, device="cpu")
    context_length = config.deployment.context_length or config.training.max_seq_length or config.data.max_seq_length
    chat_model = server.LocalChatModel(model, tokenizer, served_model_name(slug), context_length)
    if not enabled:
        return Section(value=Served(served, tokenizer, chat_model, []))
    prompts = export.sample_prompts(up.test_records, config.task.system_prompt, tokenizer, 2)
    smoke = server.smoke_test(chat_model, [p.messages for p in prompts], check_max_new_tokens)
    return Section(value=Served(served, tokenizer, chat_model, smoke)).table(smoke).add(uat_finding(smoke, slug))


@dataclass
class Sized:
    plan: object  # ftkit.deployment.sizing.SizingPlan
    workload: object
    prices: object


def sizing(run, exported, base: dict, tokenizer, up: Upstream) -> Section:
    """Section 4: memory and the cheapest GPU that holds it. value: Sized."""
    from ftkit.deployment import cost, sizing as sz

    config = run.config
    shape = sz.model_shape(exported.folder if exported.kind != "adapter" else base["path"], config.base_model.revision)
    workload = sz.workload_from_records(config, tokenizer, up.train_records, sz.serving_context_length(config, shape))
    prices = cost.load_prices(cost.default_prices_path(run.engagement.path))
    run.record_input(prices.path)
    plan = sz.size_deployment(shape, config.deployment.serving_dtype, workload, prices.gpus, config.deployment.gpu)
    sec = Section(value=Sized(plan, workload, prices),
                  notes=[f"assumption: {a}" for a in plan.chosen.throughput.assumptions])
    sec.table([sz.option_row(o) for o in plan.options], caption=f"GPUs that fit {plan.memory.total_gib:.2f} GiB")
    return sec.add(finding("info", "deployment.sizing", sz.sizing_sentence(plan)))


def costs(run, s: Sized) -> Section:
    """Section 5: self-hosted vs managed per month, and the break-even chart. value: CostComparison."""
    from ftkit.deployment import cost

    d = run.config.deployment
    c = cost.compare_costs(s.plan.chosen, s.prices, s.workload, d.always_on,
                           run.config.compliance.allow_external_providers)
    sec = Section(value=c).table(cost.cost_rows(c))
    sec.figures.append(("break_even", cost.plot_break_even(s.plan.chosen, s.prices, s.workload, d.always_on)))
    sec.add(finding("info", "deployment.cost", cost.cost_sentence(c)))
    return _with_training_cost(run, c, sec)


def _with_training_cost(run, c, sec: Section) -> Section:
    """The measured training cost (cost ledger) beside managed fine-tuning prices (data audit), a year of each."""
    from ftkit import cost_ledger
    from ftkit.deployment import training_cost as tc

    training_dir = run.upstream_dir("training")
    measured = cost_ledger.measured_training_cost(run.engagement, training_dir.name)
    if measured is not None:
        run.record_input(training_dir / cost_ledger.COST_FILE)
    audit = run.upstream("data_audit").cost or {}
    c.training = tc.ownership(c.to_dict(), audit.get("managed") or [], audit.get("self_hosted") or [], measured,
                              run.config.deployment.retrain_every_months)
    sec.table(tc.ownership_rows(c.training), caption="Training and serving together: self-hosted (measured training) "
                                                     "vs managed fine-tuning")
    return sec.add(tc.ownership_finding(c.training))


def serving(run, srv: Served, exported, trained, s: Sized, base: dict, up: Upstream) -> Section:
    """Section 6: vLLM, Ollama, TGI and Python configs with commands. value: (reference statistics, configs)."""
    from ftkit.deployment import monitoring, serving_configs
    from ftkit.generation import derive_max_new_tokens

    config = run.config
    reference = monitoring.build_reference(up.train_records, srv.tokenizer, config.task.type, config.task.label_field,
                                           tokenizer_ref=run.engagement.relative(srv.served.tokenizer_dir
                                                                                 or srv.served.weights_dir))
    max_tokens = derive_max_new_tokens(config.baseline.max_new_tokens, reference["features"]["output_tokens"]["values"])
    ctx = serving_configs.context_for(config, srv.chat_model.name, exported.to_dict(), trained, s.plan, srv.tokenizer,
                                      max_tokens, base)
    configs = serving_configs.generate_configs(ctx)
    serving_configs.write_configs(ctx, run.run_dir, configs)
    sec = Section(value=(reference, configs)).table([{"option": c.title, "file": c.file, "command": c.command}
                                                     for c in configs])
    return sec.add(configs_finding(ctx.family, len(configs), ctx.stop_strings))


def monitoring_plan(run, reference: dict, base: dict, trained, exported, verdict: str) -> Section:
    """Section 7: reference statistics, alerts, retraining cadence, pins. value: the plan (dict)."""
    from ftkit.deployment import model_card, monitoring, monitoring_plan as mp
    from ftkit.fsutil import atomic_write_text

    slug = run.engagement.slug
    run.write_json(monitoring.REFERENCE_FILE, reference)
    versions = model_card.version_pins(base, trained, exported.to_dict(), exported.chat_template_sha256)
    mplan = mp.monitoring_plan(run.config, reference, versions, verdict)
    atomic_write_text(run.artefact("monitoring/monitoring_plan.md"), mp.render_plan(mplan, slug))
    return Section(value=mplan).table(mplan["alerts"]).add(*monitoring_findings(
        run.config.deployment.retrain_every_months, mplan, reference, slug, run.config.base_model.id))


def handover(run, summary: dict, exported, base: dict, reference: dict, srv: Served, configs, s: Sized, c,
             mplan: dict) -> Section:
    """Section 8: the model card next to the export and the handover document."""
    from ftkit.deployment import cost, model_card, sizing as sz

    config, slug = run.config, run.engagement.slug
    card = model_card.build_model_card(config, summary, exported.to_dict(), base, reference, srv.chat_model.name)
    card.save(str(exported.folder / "README.md"))
    path = model_card.write_handover(run.run_dir, {
        "model_name": srv.chat_model.name, "client": config.client.name or slug, "slug": slug,
        "verdict": summary["verdict"], "export": exported.to_dict(), "configs": configs,
        "sizing_sentence": sz.sizing_sentence(s.plan), "cost_sentence": cost.cost_sentence(c),
        "retrain_months": config.deployment.retrain_every_months, "next_due": mplan["retraining"]["next_due"]})
    sec = Section(notes=[f"Model card: {run.engagement.relative(exported.folder / 'README.md')}; handover: "
                         f"{run.engagement.relative(path)}"])
    return sec.add(finding("info", "deployment.handover", f"Model card with {len(summary['metrics'])} evaluation "
                           f"metric(s) and a handover document listing {len(model_card.delivered_files(run.run_dir))} "
                           f"delivered files with their sha256."))


# -- typed results ---------------------------------------------------------------------------------------------------

@dataclass
class DeploymentPlanResults(PhaseResults):
    """The deployment plan (results.json ``results``), read by the consolidated report."""

    PHASE = "deployment_plan"
    SCHEMA_VERSION = 1

    evaluation: dict = described("the evaluation verdict and metric rows this plan was made under")
    export: dict = described("exported model: kind, dtype, size (MB), equivalence comparisons (KL in nats/token)")
    uat_smoke_test: list = described("the UAT endpoint's requests: status, finish_reason (empty when skipped)")
    sizing: dict = described("memory (GiB), GPU options and the chosen one, throughput estimate (tokens/s)")
    cost: dict = described("self-hosted vs managed per month, break-even volume", "USD per month; requests/month")
    price_sources: list = described("the dated price table's sources")
    serving_configs: list = described("key, file and command of every serving config")
    monitoring_plan: dict = described("alerts, retraining cadence (months), pins, rollback")
    model_name: str = described("the name the model is served under")

    @property
    def ready_to_go_live(self) -> bool:
        """Evaluation says go and the export passed its equivalence check."""
        return self.evaluation["verdict"] == GO and bool(self.export["passed"])

    def headline_row(self) -> dict:
        return {"serving": f"{self.sizing['gpu_label']}, {self.sizing['memory']['dtype']}",
                "monthly_cost_usd": round(self.cost["self_hosted"]["usd"], 2)}


def results(summary: dict, exported, srv: Served, s: Sized, c, configs, mplan: dict) -> DeploymentPlanResults:
    return DeploymentPlanResults(
        evaluation=summary, export=exported.to_dict(), uat_smoke_test=srv.smoke, sizing=s.plan.to_dict(),
        cost=c.to_dict(), price_sources=s.prices.sources(),
        serving_configs=[{"key": x.key, "file": x.file, "command": x.command} for x in configs],
        monitoring_plan=mplan, model_name=srv.chat_model.name)


def summary_line(r: DeploymentPlanResults, s: Sized, c) -> str:
    return (f"{r.export['kind']} export {'passed' if r.export['passed'] else 'FAILED'} the equivalence check; serve on "
            f"{s.plan.chosen.label}; cheapest option at {s.workload.monthly_requests:,} requests/month: {c.cheapest}.")


def what_to_tell_the_client(r: DeploymentPlanResults, s: Sized, c) -> str:
    from ftkit.deployment import cost, sizing as sz

    if r.ready_to_go_live:
        return f"The fine-tuned model is ready to deploy. {sz.sizing_sentence(s.plan)} {cost.cost_sentence(c)}"
    return (f"The deployment is prepared but not ready to go live: evaluation says '{r.evaluation['verdict']}' and the "
            f"export check {'passed' if r.export['passed'] else 'FAILED'}. {cost.cost_sentence(c)}")


def next_steps(r: DeploymentPlanResults, slug: str) -> list[str]:
    if r.ready_to_go_live:
        return [f"Give the client's testers the UAT page: ftkit serve {slug} --issue-token NAME for each, then "
                f"ftkit serve {slug} --port 8000; collect their corrections with ftkit data from-uat",
                "Hand over this run folder (export/, serving/, monitoring/, handover.md) and run one serving command on "
                "the client's infrastructure", "Put request logging in place and schedule `ftkit monitor` weekly",
                f"Retrain by {r.monitoring_plan['retraining']['next_due']} or on a drift alert"]
    return ["Follow the evaluation's next steps; re-run this phase after a go verdict",
            "Agree the serving option and budget with the client using the cost comparison"]
