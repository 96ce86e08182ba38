"""The training phase's building blocks: what ``notebooks/04_training.ipynb`` calls, one function per section.

Each ``*_findings`` function returns ``(severity, code, message, next_step)`` tuples computed from this
client's numbers, and ``loss_curves``/``outputs`` return a :class:`ftkit.section.Section`; the notebook hands
either to ``run.record``. ``TrainingResults`` is what results.json holds and what later phases read back.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.errors import PhaseFailed
from ftkit.phase_results import PhaseResults, described
from ftkit.training import summary as summ
from ftkit.training.settings import ResolvedSettings, StepPlan

SPLIT_FILES = {"train": "train.jsonl", "validation": "validation.jsonl"}
PADDING_WARN = 0.05  # share (0-1) of processed tokens that are padding above which packing is recommended


def quiet_cpu_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning, before torch is first imported in this process.

    With busy-waiting threads (OpenMP's default) and other processes on the same cores, every parallel region
    waits for a descheduled spinner: measured on 2 shared cores, 8 tiny-model steps took 50 s instead of 1.8 s.
    Passive waiting costs microseconds per region, nothing next to a training step. Set only if unset.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class TrainingInputs:
    """Section 1: the base model, its tokenizer and the resolved hyperparameters."""

    source: object  # ftkit.models.ModelSource
    model: dict  # describe_model(...)
    tokenizer: object
    settings: ResolvedSettings
    eot_id: int | None
    eot_token: str | None
    device: str
    search: dict | None = None  # the hyperparameter search's decision (search.results_view), when it ran

    @property
    def layout_notes(self) -> list[str]:
        """distributed.check_plan's notes on this machine; FtkitError for a layout it cannot run (asked for by
        inputs_findings, so a direct notebook run is refused before anything is tokenized)."""
        from ftkit.training.distributed import check_plan, plan_from_settings
        from ftkit.training.launch import visible_gpus

        return check_plan(plan_from_settings(self.settings, self.settings.accelerate_config), visible_gpus())

    @property
    def tiny(self) -> bool:
        return bool(self.model.get("is_tiny_random"))


def load_inputs(run) -> TrainingInputs:
    """Resolve and describe the base model (recorded in the manifest), load its tokenizer, resolve the settings."""
    quiet_cpu_threads()
    from ftkit.chat_format import template_info
    from ftkit.models import base_model_source, load_tokenizer, pick_device
    from ftkit.chat_plan import prepare_tokenizer
    from ftkit.models.describe import describe_model
    from ftkit.training.settings import resolve_settings

    data_audit = run.upstream("data_audit")
    source = base_model_source(run.config.base_model)
    tokenizer = load_tokenizer(source, padding_side="right")
    plan = prepare_tokenizer(tokenizer, run.config).to_dict()  # the template the audit checked the labels with
    description = {**describe_model(source), "chat_template": plan}  # in the manifest with the model's identity
    run.record_model(description)
    run.write_json("chat_plan.json", plan)
    settings = resolve_settings(run.config.training, data_audit.max_seq_length_suggested, run.config.data.max_seq_length)
    run.record_seed("training", settings.seed)
    if settings.packing and _attention_softcapping(source.path):
        # Gemma 2 caps attention logits (tanh); the padding-free packed attention runs sdpa, which cannot.
        import dataclasses

        settings = dataclasses.replace(settings, packing=False)
        settings.sources["packing"] = "off: this architecture caps attention logits, which packed attention cannot do"
    info = template_info(tokenizer)
    return TrainingInputs(source, description, tokenizer, settings, info.end_of_turn_id, info.end_of_turn, pick_device())


def _attention_softcapping(model_path: str) -> bool:
    """True when the model's config.json sets attention-logit soft-capping (Gemma 2)."""
    import json
    from pathlib import Path

    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False
    return config.get("attn_logit_softcapping") is not None


def inputs_findings(s: TrainingInputs) -> list[tuple]:
    out = []
    if s.tiny:
        out.append(("warning", "training.tiny_random_model", "The base model is ftkit's randomly initialised TEST model "
                    "(tiny Llama, random weights): this run only shows that the training pipeline works; its losses "
                    "and its adapter mean nothing.", "Set base_model.id to the client's real base model."))
    cached = getattr(s.tokenizer, "_ftkit_chat_plan", None)
    if cached:  # the template the labels are built with, and what it does with the system prompt
        out.append(("info", "training.chat_template", cached[1].summary(), ""))
    st = s.settings
    decided = ", ".join("target_modules = all linear layers" if k == "target_modules" else f"{k} = {getattr(st, k)} ({why})"
                        for k, why in st.sources.items())
    decided = decided or "every value from engagement.yaml"
    out.append(("info", "training.settings", f"Method {st.method} on {s.device}; {decided}.", ""))
    out += [("warning", "training.devices", note, "") for note in s.layout_notes]
    if st.world_size > 1:
        out.append(("info", "training.distributed", f"Training runs as {st.distributed} in {st.world_size} processes "
                    f"({st.num_processes} per machine on {st.num_machines} machine(s)) through accelerate launch.", ""))
    if st.method == "qlora" and s.device == "cpu":
        out.append(("info", "training.qlora_cpu", "QLoRA on the CPU works (bitsandbytes dequantises each 4-bit weight "
                    "per matmul) but is slower than LoRA; it saves memory, which matters on a GPU.", ""))
    return out


# -- 2. data -------------------------------------------------------------------------------------------------------

@dataclass
class Data:
    """Section 2: tokenized splits, the training sequences, label checks, packing and the step plan."""

    train: object  # TokenizedSplit
    validation: object
    train_sequences: list
    eval_sequences: list
    label_check: dict
    packing: dict
    plan: StepPlan
    hashes: dict = field(default_factory=dict)

    def table(self) -> list[dict]:
        return [self.train.report(), self.validation.report()]


def prepare_data(run, s: TrainingInputs) -> Data:
    """Read the audited splits, tokenize with assistant-only labels, check them, pack, plan the steps."""
    from ftkit.training.dataset import check_sequences, read_split, subset, tokenize_split
    from ftkit.training.packing import build_sequences, packing_report
    from ftkit.training.settings import plan_steps

    st = s.settings
    hashes, splits = {}, {}
    for name, filename in SPLIT_FILES.items():
        path = run.upstream_file("data_audit", filename)
        hashes[filename] = run.record_input(path)
        splits[name] = tokenize_split(s.tokenizer, read_split(path), st.max_seq_length, name,
                                      system_prompt=run.config.task.system_prompt)
    train, validation = splits["train"], subset(splits["validation"], st.eval_max_examples)
    if not train.examples:
        raise PhaseFailed(f"No training example is left after tokenizing the {train.n_records} training records "
                          f"(max_seq_length {st.max_seq_length}). Check the data audit's label coverage findings.")
    train_seqs = build_sequences(train.examples, st.max_seq_length, st.packing, st.seed)
    eval_seqs = build_sequences(validation.examples, st.max_seq_length, st.packing, st.seed)
    check = check_sequences(train_seqs, s.eot_id, "train")
    packing = packing_report(train_seqs, st.max_seq_length, st.packing, st.batch_size).to_dict()
    return Data(train, validation, train_seqs, eval_seqs, check, packing, plan_steps(st, len(train_seqs)), hashes)


def data_findings(d: Data, s: TrainingInputs) -> list[tuple]:
    t, st = d.train, s.settings
    out = [("info", "training.labels", f"Every one of the {len(d.train_sequences):,} training sequences has trainable "
            f"labels, and all {d.label_check['examples']:,} examples train their end-of-turn token "
            f"{s.eot_token!r}; {100 * t.n_label_tokens / max(1, t.n_tokens):.1f} % of tokens are targets "
            f"(assistant turns only; labels never masked by pad id).", "")]
    dropped = len(t.dropped_cut_answer) + len(t.dropped_no_labels)
    if dropped or t.truncated:
        out.append(("warning", "training.dropped", f"{dropped:,} training examples were left out "
                    f"({len(t.dropped_cut_answer):,} whose answer would be cut at max_seq_length {st.max_seq_length:,}, {len(t.dropped_no_labels):,} "
                    f"with nothing to learn) and {len(t.truncated):,} reach max_seq_length.",
                    f"Raise training.max_seq_length above {st.max_seq_length:,} if the long examples matter."))
    p = d.packing
    how = (f"packed {p['examples']:,} examples into {p['sequences']:,} sequences of up to {p['max_seq_length']:,} tokens "
           f"({p['examples_per_sequence']} per sequence), attention kept inside each example"
           if p["mode"] == "packed" else f"{p['sequences']:,} length-grouped examples, padded per batch")
    out.append(("info" if p["padding_fraction"] <= PADDING_WARN else "warning", "training.packing",
                f"{how}: {100 * p['real_token_fraction']:.1f} % of processed tokens are real "
                f"({100 * p['padding_fraction']:.1f} % padding).",
                "" if p["padding_fraction"] <= PADDING_WARN else "Set training.packing: true."))
    plan = d.plan
    out.append(("info", "training.plan", f"{plan.total_steps:,} optimizer steps of {plan.sequences_per_step} sequences "
                f"({plan.steps_per_epoch:,} per epoch); validation on {len(d.validation.examples):,} examples every "
                f"{plan.eval_steps} steps and at each epoch end.", ""))
    return out


# -- 2b. hyperparameter search -------------------------------------------------------------------------------------

def hyperparameter_search(run, s: TrainingInputs, d: Data, progress: bool = True):
    """Section 2b: ``training.search`` (ftkit.training.search). value: (inputs, data) to train with."""
    from ftkit.training.search import search_section

    fingerprint, _ = find_resume(run, s, d, allowed=False)  # the study's key starts from the trajectory's
    return search_section(run, s, d, fingerprint, progress)


# -- 3. memory -----------------------------------------------------------------------------------------------------

def memory_check(s: TrainingInputs, d: Data) -> dict:
    """Estimate memory, compare it with what is available, and refuse (PhaseFailed) with a suggested setting."""
    from ftkit.training.memory import (ModelShape, available_memory_gb, check_fits, estimate_memory,
                                       suggest_setting)

    from ftkit.training.distributed import plan_from_settings
    from ftkit.training.memory import shard_estimate

    shape = ModelShape.from_folder(s.source.path) if Path(s.source.path).is_dir() else None
    if shape is None:
        return {"estimate": None, "available_gb": None, "why": "model config not available locally"}
    per_process = 1 if s.device != "cpu" else s.settings.num_processes  # CPU processes share the host memory
    label_share = d.train.n_label_tokens / max(1, d.train.n_tokens)
    dtype_bytes = 4 if s.device == "cpu" else 2

    def est(st: ResolvedSettings):
        tokens = st.batch_size * st.max_seq_length
        plan = plan_from_settings(st)
        # ftkit's FSDP config checkpoints activations per decoder layer (templates/accelerate/fsdp.yaml)
        checkpointing = st.gradient_checkpointing or (st.distributed == "fsdp" and not st.accelerate_config)
        one = estimate_memory(shape, st.method, tokens, int(tokens * label_share) + st.batch_size, dtype_bytes,
                              checkpointing, st.lora_r, st.target_modules, s.device)
        return shard_estimate(one, plan.sharding, plan.world_size, shape, dtype_bytes)

    available, where = available_memory_gb(s.device, s.settings.memory_limit_gb)
    estimate = est(s.settings)
    fits = lambda st: est(st).total_gb * per_process <= available  # noqa: E731
    suggestion = None if fits(s.settings) else suggest_setting(fits, s.settings)
    check_fits(estimate, available, where, suggestion[0] if suggestion else None, processes=per_process)
    return {"estimate": estimate, "available_gb": available, "why": where, "processes_sharing": per_process}


def memory_rows(m: dict) -> list[dict]:
    return m["estimate"].rows() if m["estimate"] else []


def memory_findings(m: dict) -> list[tuple]:
    e = m["estimate"]
    if e is None:
        return [("info", "training.memory_estimate", f"No memory estimate: {m['why']}.", "")]
    total = e.total_gb * m["processes_sharing"]
    sharded = {"zero2": "gradients and optimizer states", "full": "weights, gradients and optimizer states"}
    how = f", {sharded[e.sharding]} sharded over {e.world_size} processes" if e.sharding in sharded else ""
    where = f" per device" if m["processes_sharing"] == 1 and e.world_size > 1 else ""
    return [("info", "training.memory_estimate", f"Estimated peak memory {total:.2f} GB{where} ({e.method}, "
             f"{e.tokens_per_batch:,} tokens per micro-batch, {e.trainable:,} trainable parameters{how}) of "
             f"{m['available_gb']:.1f} GB available ({m['why']}): it fits.", "")]


# -- 4. resume -----------------------------------------------------------------------------------------------------

def find_resume(run, s: TrainingInputs, d: Data, allowed: bool = True):
    """(fingerprint, ResumePoint | None): the newest matching checkpoint of an interrupted earlier run."""
    from ftkit.training.resume import checkpoint_files, find_resume_point
    from ftkit.training.settings import fingerprint

    template = hashlib.sha256((s.tokenizer.chat_template or "").encode("utf-8")).hexdigest()
    fp = fingerprint(s.settings, d.hashes, s.model.get("files_sha256") or s.model.get("id", ""), template)
    point = find_resume_point(run.engagement, fp, exclude_run=run.run_id) if allowed else None
    if point is not None:
        for path in checkpoint_files(point):
            run.record_input(path)
    return fp, point


def resume_findings(point, allowed: bool) -> list[tuple]:
    if point is not None:
        return [("info", "training.resumed", f"Resumed from step {point.step} of interrupted run {point.run_id} "
                 f"(status {point.run_status}); its checkpoint holds the weights, optimizer, scheduler and data "
                 f"position, so steps 1-{point.step} were not repeated.", "")]
    why = "resume was turned off (resume = False)" if not allowed else \
        "no interrupted earlier run has a checkpoint with the same settings, data and base model"
    return [("info", "training.fresh_start", f"Training starts from step 0: {why}.", "")]


# -- 5. train ------------------------------------------------------------------------------------------------------

def train(run, s: TrainingInputs, d: Data, fp: str, point, progress: bool = True) -> dict:
    """Train in this kernel (one process) or through ``accelerate launch`` (more)."""
    from ftkit.training.distributed import plan_from_settings
    from ftkit.training.trainer import TrainingJob, run_training

    job = TrainingJob(s.source.path, s.settings.to_dict(), d.plan.to_dict(),
                      str(run.run_dir), fp, s.eot_id, model_revision=s.source.revision,
                      trust_remote_code=s.source.trust_remote_code, resume_from=str(point.checkpoint) if point else "",
                      progress=progress)
    # The worker re-loads the tokenizer: give it the prepared template and any added tokens (ftkit.chat_plan).
    job.extra["chat_template"] = s.tokenizer.chat_template
    cached_plan = getattr(s.tokenizer, "_ftkit_chat_plan", None)  # (key, ChatPlan) set by prepare_tokenizer
    job.extra["added_tokens"] = list(cached_plan[1].added_tokens) if cached_plan else []
    plan = plan_from_settings(s.settings, _config_path(run, s.settings.accelerate_config))
    if plan.launched:
        from ftkit.training.launch import launch

        return launch(job, d.train_sequences, d.eval_sequences, plan)
    return run_training(job, d.train_sequences, d.eval_sequences)


def _config_path(run, path: str) -> str:
    if not path:
        return ""
    full = (run.engagement.path / path).resolve()
    run.record_input(full) if full.is_file() else None
    return str(full)


# -- 6. loss history -----------------------------------------------------------------------------------------------

def history(run, point) -> dict:
    """The loss history (earlier run's log up to the resume step + this run's), written to loss_history.json."""
    from ftkit.training.resume import earlier_history

    entries = earlier_history(point) if point else []
    log = run.run_dir / "metrics.jsonl"
    if log.is_file():
        import json

        entries += [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    hist = summ.loss_history(entries, {"run_id": point.run_id, "step": point.step} if point else None)
    run.write_json("loss_history.json", hist)
    return hist


# -- 7. outputs ----------------------------------------------------------------------------------------------------

def finalise(run, s: TrainingInputs, d: Data, m: dict, outcome: dict, hist: dict) -> dict:
    """training_summary.json and hyperparameters.json; checkpoints removed once the final output is saved."""
    final_dir = run.run_dir / ("model" if s.settings.method == "full" else "adapter")
    if not final_dir.is_dir():
        raise PhaseFailed(f"Training finished but {final_dir.name}/ was not written; see the cell output above.")
    estimate = m["estimate"].total_gb * m["processes_sharing"] if m.get("estimate") else 0.0
    summary = summ.training_summary(outcome, hist, estimate, s.settings.method, final_dir)
    run.write_json("training_summary.json", summary)
    run.write_json("hyperparameters.json", {"settings": s.settings.to_dict(), "plan": d.plan.to_dict(),
                                            "sources": s.settings.sources})
    # A succeeded run's checkpoints are never resumed from; the final output replaces them (and keeps the
    # evidence folder small and quick to hash).
    shutil.rmtree(run.run_dir / "checkpoints", ignore_errors=True)
    return summary


# -- 6-7 as sections (the contract of ftkit.section) ---------------------------------------------------------------

def loss_curves(run, s: TrainingInputs, d: Data, m: dict, outcome: dict, point):
    """Section 6: loss history, overfitting flag, loss figure; outputs finalised. value: (history, overfit, summary)."""
    from ftkit.section import Section

    hist = history(run, point)
    overfit = summ.overfitting(hist)
    figure = summ.loss_figure(hist, f"{s.settings.method}: {run.config.base_model.id}")
    training_summary = finalise(run, s, d, m, outcome, hist)
    sec = Section(value=(hist, overfit, training_summary), figures=[("loss", figure)])
    return sec.add(*summ.loss_findings(training_summary, overfit))


def outputs(training_summary: dict, packing: dict):
    """Section 7: the training summary table and the throughput findings."""
    from ftkit.section import Section

    sec = Section().table([{"": k, "value": v} for k, v in training_summary.items() if k != "resumed_from"])
    return sec.add(*summ.throughput_findings(training_summary, packing))


# -- typed results -------------------------------------------------------------------------------------------------

@dataclass
class TrainingResults(PhaseResults):
    """What training hands to the evaluation, the deployment plan and the report (results.json ``results``)."""

    PHASE = "training"
    SCHEMA_VERSION = 2  # 2: search

    summary: dict = described("training_summary.json: steps, losses (nats/token), train_minutes (min), "
                              "tokens_per_second, peak memory (GB), output_folder")
    overfitting: dict = described("flag (bool), best_step, best/last validation loss (nats/token)")
    settings: dict = described("the resolved hyperparameters (ResolvedSettings.to_dict())")
    plan: dict = described("optimizer steps per epoch, total steps, eval every N steps")
    packing: dict = described("packing mode, sequences, real-token and padding fractions (0-1)")
    label_check: dict = described("per-batch label check: examples whose end-of-turn token is trained")
    splits: list = described("train and validation split reports: records, examples, tokens, label tokens")
    memory: dict | None = described("memory estimate (GB) by component; None without a local model config")
    resumed_from: dict | None = described("the interrupted run and step resumed from; None for a fresh start")
    fingerprint: str = described("sha256 of settings, data, base model and template (resume key)")
    base_model: dict = described("id, kind, revision, files_sha256, is_tiny_random")
    files: dict = described("artefacts of this run, relative to the run folder")
    search: dict | None = described("training.search: trials finished/pruned, best and default validation loss "
                                    "(nats/token), best params, applied, cost (USD, device-hours); None when off",
                                    default=None)

    @property
    def overfitting_flag(self) -> bool:
        return bool(self.overfitting["flag"])

    @property
    def n_train_examples(self) -> int:
        return int(self.splits[0]["examples"])

    @property
    def is_tiny_random(self) -> bool:
        return bool(self.base_model.get("is_tiny_random"))

    def headline_row(self) -> dict:
        s = self.summary
        return {"method": self.settings["method"], "final_val_loss": s["final_val_loss"],
                "train_minutes": s["train_minutes"], "initial_val_loss": s["initial_val_loss"], "steps": s["steps"],
                "overfitting": self.overfitting["flag"],
                "resumed_from_step": self.resumed_from["step"] if self.resumed_from else None}


def results(s: TrainingInputs, d: Data, m: dict, point, fp: str, overfit: dict, training_summary: dict) -> TrainingResults:
    return TrainingResults(
        summary=training_summary, overfitting=overfit, settings=s.settings.to_dict(), plan=d.plan.to_dict(),
        packing=d.packing, label_check=d.label_check, splits=d.table(),
        memory=m["estimate"].to_dict() if m["estimate"] else None,
        resumed_from=point.to_dict() if point else None, fingerprint=fp,
        base_model={k: s.model.get(k) for k in ("id", "kind", "revision", "files_sha256", "is_tiny_random")},
        files={"output": training_summary["output_folder"], "loss_history": "loss_history.json",
               "training_summary": "training_summary.json", "hyperparameters": "hyperparameters.json",
               "metrics_log": "metrics.jsonl", "loss_figure": "figures/loss.png"}, search=s.search)


def summary_line(r: TrainingResults, base_model_id: str) -> str:
    return summ.one_line(r.summary, base_model_id)


def what_to_tell_the_client(r: TrainingResults, base_model_id: str) -> str:
    return summ.tell_client(r.summary, r.overfitting, base_model_id, r.n_train_examples, r.is_tiny_random)


def next_steps(r: TrainingResults, slug: str) -> list[str]:
    return summ.next_steps(r.summary, r.overfitting, slug, r.is_tiny_random)
