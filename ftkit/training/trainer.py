"""Train with transformers' ``Trainer`` and peft: the model, the method, the callbacks, the outputs.

``run_training(job, train_sequences, eval_sequences)`` is the whole training step of the phase. It runs in the
notebook's kernel for one process, and in every worker of ``accelerate launch`` for more (see ``launch``), so
it takes a JSON-serialisable ``TrainingJob`` and returns a plain dict.

What it adds to a stock Trainer:
- ``ftkit_packed`` attention and the padding-free collator when packing (see ``packing``);
- validation every ``eval_steps``, at each epoch end, before the first step and at the last step; the best
  checkpoint (lowest validation loss) is the one kept; early stopping on validation loss;
- ftkit's own metrics log (``metrics.jsonl``, one JSON line per log event, flushed as written) whatever
  ``report_to`` says, and one progress line per event;
- a marker in each checkpoint once it is complete, carrying the fingerprint resume matches on;
- exact counts of processed, real and label tokens, wall time and peak memory.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.errors import FtkitError, MissingDependency

PROGRESS_PREFIX = "ftkit-progress "
TRACKERS = {"tensorboard": ("tensorboard", "pip install tensorboard"), "mlflow": ("mlflow", "pip install mlflow"),
            "wandb": ("wandb", "pip install wandb")}


@dataclass
class TrainingJob:
    """Everything one training process needs (JSON-serialisable for ``accelerate launch`` workers)."""

    model_path: str  # resolved local folder or hub id
    settings: dict  # ResolvedSettings.to_dict()
    plan: dict  # StepPlan.to_dict()
    run_dir: str
    fingerprint: str
    eot_id: int | None
    model_revision: str = ""
    trust_remote_code: bool = False
    resume_from: str = ""  # a checkpoint folder of an interrupted run
    progress: bool = True
    stream_json: bool = False  # workers print machine-readable progress lines for the launcher
    extra: dict = field(default_factory=dict)
    run_name: str = ""  # the experiment trackers' run name: "<client>-<run id>" (default: the run folder's name)

    @property
    def output_dir(self) -> Path:
        return Path(self.run_dir) / "checkpoints"

    @property
    def metrics_log(self) -> Path:
        return Path(self.run_dir) / "metrics.jsonl"

    @property
    def logging_dir(self) -> Path:
        """Where trackers write inside the run folder (TensorBoard event files; MLflow's SQLite store beside it)."""
        return Path(self.run_dir) / "logs"

    @property
    def tracking_name(self) -> str:
        """``run_name``, else ``<client>-<run id>`` from the run folder (engagements/<client>/phases/<p>/runs/<id>)."""
        if self.run_name:
            return self.run_name
        client = _client_of(self.run_dir)
        return f"{client}-{Path(self.run_dir).name}" if client else Path(self.run_dir).name

    @property
    def final_dir(self) -> Path:
        return Path(self.run_dir) / ("model" if self.settings["method"] == "full" else "adapter")

    @property
    def is_trial(self) -> bool:
        """A search trial (``extra["trial"]``): validation loss only; no checkpoints, no saved adapter."""
        return bool(self.extra.get("trial"))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TrainingJob":
        return cls(**json.loads(text))


# -- model ------------------------------------------------------------------------------------------------------

def check_tracker(report_to: str) -> list[str]:
    """transformers' ``report_to`` list; MissingDependency with the pip command when the tracker is absent."""
    if report_to in ("", "none"):
        return []
    import importlib.util

    package, hint = TRACKERS[report_to]
    if importlib.util.find_spec(package) is None:
        raise MissingDependency(package, f"training.report_to: {report_to}", hint)
    return [report_to]


def mlflow_tracking_uri(job: TrainingJob) -> str:
    """training.mlflow_tracking_uri, or a SQLite store in the run folder (MLflow 3 refuses plain file stores)."""
    return job.settings.get("mlflow_tracking_uri") or f"sqlite:///{(job.logging_dir / 'mlflow.db').resolve()}"


def tracker_callbacks(job: TrainingJob) -> tuple[list, dict]:
    """(callbacks, what they record) for ``training.report_to``.

    transformers' own TensorBoard and MLflow callbacks do the logging; they are configured here instead of through
    ``report_to`` because their defaults write where ftkit loses them: TensorBoard under ``output_dir/runs`` (the
    checkpoints folder, removed once training succeeded) and MLflow wherever the process's working directory is.
    Here: event files in ``<run>/logs/``; MLflow runs in ``<run>/logs/mlflow.db`` (or mlflow_tracking_uri), in the
    experiment ``ftkit-<client>``, artifacts in ``<run>/logs/mlartifacts``; the run name ties both to the run id.
    """
    report_to = job.settings.get("report_to", "none")
    check_tracker(report_to)
    if report_to == "tensorboard":
        from transformers.integrations import TensorBoardCallback

        callback = TensorBoardCallback()
        callback.logging_dir = str(job.logging_dir)  # read in on_train_begin, instead of output_dir/runs/<date>
        return [callback], {"report_to": report_to, "logging_dir": str(job.logging_dir), "run_name": job.tracking_name}
    if report_to == "mlflow":
        return [_mlflow_callback(job)], {"report_to": report_to, "tracking_uri": mlflow_tracking_uri(job),
                                         "experiment": _experiment_name(job), "run_name": job.tracking_name}
    if report_to == "wandb":  # transformers' default callback; W&B keeps runs on its own servers
        from transformers.integrations import WandbCallback

        return [WandbCallback()], {"report_to": report_to, "run_name": job.tracking_name}
    return [], {"report_to": "none"}


def _client_of(run_dir: str) -> str:
    """The engagement folder's name of a phase run folder, or "" when ``run_dir`` is not laid out like one."""
    path = Path(run_dir).resolve()
    parents = path.parents
    return parents[3].name if len(parents) > 3 and parents[0].name == "runs" and parents[2].name == "phases" else ""


def _experiment_name(job: TrainingJob) -> str:
    client = _client_of(job.run_dir)
    return f"ftkit-{client}" if client else "ftkit"


def _mlflow_callback(job: TrainingJob):
    from unittest import mock

    from transformers.integrations import MLflowCallback

    class RunFolderMLflow(MLflowCallback):
        """MLflowCallback pointed at this run's store and experiment before it reads its settings."""

        def setup(self, args, state, model):
            if state.is_world_process_zero:
                import mlflow

                uri, name = mlflow_tracking_uri(job), _experiment_name(job)
                job.logging_dir.mkdir(parents=True, exist_ok=True)
                mlflow.set_tracking_uri(uri)
                if mlflow.get_experiment_by_name(name) is None and not job.settings.get("mlflow_tracking_uri"):
                    mlflow.create_experiment(name, artifact_location=(job.logging_dir / "mlartifacts").resolve().as_uri())
                # MLflowCallback.setup reads these from the environment; scoped to this call, not left behind
                with mock.patch.dict(os.environ, {"MLFLOW_EXPERIMENT_NAME": name, "MLFLOW_TRACKING_URI": uri}):
                    return super().setup(args, state, model)
            return super().setup(args, state, model)

    return RunFolderMLflow()


def job_source(job: TrainingJob):
    """The job's base model as one ModelSource (path, revision, trust_remote_code), rebuilt in the worker."""
    from ftkit.models.resolve import resolve_model

    return resolve_model(job.model_path, job.model_revision, trust_remote_code=job.trust_remote_code)


def load_training_model(job: TrainingJob, device: str):
    """The base model for training: fp32 on CPU, bf16/fp16 on GPU; 4-bit NF4 through bitsandbytes for QLoRA."""
    from ftkit.models.loading import load_model, pick_dtype

    dtype = pick_dtype(device)
    if job.settings["method"] != "qlora":
        return load_model(job_source(job), device=device, dtype=dtype)
    return _load_4bit(job, device, dtype)


def _load_4bit(job: TrainingJob, device: str, dtype):
    # ftkit.models.loading.load_model takes no quantization_config; this mirrors it (safetensors only, offline-aware)
    # with bitsandbytes' 4-bit NF4 (double quantisation: the per-block absmax constants are quantised too).
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependency("bitsandbytes", "training.method: qlora (4-bit base model)", "pip install bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ftkit.models.loading import _check_safetensors, _hub_kwargs, _wrap_load_error

    source = job_source(job)
    _check_safetensors(source)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(
            source.path, quantization_config=quant, dtype=dtype, device_map={"": device}, use_safetensors=True,
            trust_remote_code=source.trust_remote_code, **_hub_kwargs(source))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise _wrap_load_error(source, err) from None


def apply_method(model, settings: dict):
    """Wrap for LoRA/QLoRA (peft) or unfreeze everything (full). Returns (model, trainable, total parameters)."""
    if settings["method"] == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        n = sum(p.numel() for p in model.parameters())
        return model, n, n
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if settings["method"] == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings["gradient_checkpointing"])
    targets = settings["target_modules"]
    config = LoraConfig(r=settings["lora_r"], lora_alpha=settings["lora_alpha"], lora_dropout=settings["lora_dropout"],
                        target_modules=targets if targets != "all-linear" else "all-linear", task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, config)
    except ValueError as err:
        raise FtkitError(f"training.target_modules {targets!r} does not match this model's layers ({err}). Leave it "
                         f"empty for all linear layers, or use names such as q_proj, v_proj.") from None
    trainable, total = model.get_nb_trainable_parameters()
    return model, trainable, total


# -- callbacks ----------------------------------------------------------------------------------------------------

def _callbacks(job: TrainingJob, has_eval: bool):
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        """ftkit's own metrics log, always written, and the progress lines."""

        def __init__(self):
            self.started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            entry = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                     "time_s": round(time.perf_counter() - self.started, 2),
                     **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            with open(job.metrics_log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
            _progress(job, entry, state.max_steps)

    class EvalSchedule(TrainerCallback):
        """Validation at each epoch end and at the last step too (not twice at the same step)."""

        def __init__(self):
            self.last_eval = -1

        def on_evaluate(self, args, state, control, **kwargs):
            self.last_eval = state.global_step

        def _force(self, state, control):
            if state.global_step != self.last_eval:
                control.should_evaluate = True
                control.should_save = not job.is_trial  # a search trial keeps no checkpoint
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            return self._force(state, control)

        def on_step_end(self, args, state, control, **kwargs):
            return self._force(state, control) if state.global_step >= state.max_steps else control

    class Marker(TrainerCallback):
        """Mark a checkpoint complete (after the Trainer wrote all of it) with the fingerprint resume needs."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                from ftkit.training.resume import write_marker

                write_marker(Path(args.output_dir) / f"checkpoint-{state.global_step}", job.fingerprint,
                             state.global_step, Path(job.run_dir).name)

    return [MetricsLog()] + ([] if job.is_trial else [Marker()]) + ([EvalSchedule()] if has_eval else [])


def _progress(job: TrainingJob, entry: dict, max_steps: int) -> None:
    if "loss" not in entry and "eval_loss" not in entry:
        return  # the Trainer's end-of-training totals: nothing to show
    if job.stream_json:
        print(PROGRESS_PREFIX + json.dumps(entry), flush=True)
    elif job.progress:
        print(format_progress(entry, max_steps), flush=True)


def format_progress(entry: dict, max_steps: int) -> str:
    """One human line per log event.

    >>> format_progress({"step": 5, "epoch": 0.5, "time_s": 12.0, "loss": 1.23456, "learning_rate": 2e-4}, 10)
    'step 5/10 (epoch 0.50, 12 s): loss 1.2346, lr 2.0e-04'
    """
    parts = [f"{k.replace('eval_', 'validation ')} {entry[k]:.4f}" for k in ("loss", "eval_loss") if k in entry]
    if "learning_rate" in entry:
        parts.append(f"lr {entry['learning_rate']:.1e}")
    return f"step {entry['step']}/{max_steps} (epoch {entry['epoch']:.2f}, {entry['time_s']:.0f} s): " + ", ".join(parts)


# -- the Trainer ------------------------------------------------------------------------------------------------

def _trainer_class():
    from transformers import Trainer

    class FtkitTrainer(Trainer):
        """A stock Trainer that also counts the tokens it trains on (exactly, per process)."""

        tokens = {"processed": 0, "real": 0, "labels": 0}

        def training_step(self, model, inputs, num_items_in_batch=None):
            ids = inputs["input_ids"]
            mask = inputs.get("attention_mask")
            targets = inputs["shift_labels"] if "shift_labels" in inputs else inputs["labels"][:, 1:]
            self.tokens = {"processed": self.tokens["processed"] + ids.numel(),
                           "real": self.tokens["real"] + int(mask.sum() if mask is not None else ids.numel()),
                           "labels": self.tokens["labels"] + int((targets != -100).sum())}
            return super().training_step(model, inputs, num_items_in_batch)

    return FtkitTrainer


# TrainingArguments that only change logging, speed or bookkeeping: when the installed transformers does not know
# one, training is still the same training, so it is left out with a warning naming it (recorded in the summary).
# Any other unknown name changes what is trained and stops the run.
OPTIONAL_ARGUMENTS = ("eval_on_start", "restore_callback_states_from_checkpoint", "logging_first_step",
                      "disable_tqdm", "dataloader_num_workers", "save_only_model", "ddp_find_unused_parameters",
                      "data_seed", "run_name")


def _compatible(cls, kwargs: dict) -> tuple[dict, list[str]]:
    """(kwargs for the installed transformers, names left out). Renamed arguments get their older spelling; an
    unknown optional one (OPTIONAL_ARGUMENTS) is left out with a warning; any other unknown one is an FtkitError."""
    import inspect
    import warnings

    known = set(inspect.signature(cls.__init__).parameters)
    out = dict(kwargs)
    if "activation_checkpointing" not in known and "gradient_checkpointing" in known:  # renamed in late 5.x
        out["gradient_checkpointing"] = out.pop("activation_checkpointing")
        out["gradient_checkpointing_kwargs"] = out.pop("activation_checkpointing_kwargs")
    if "train_sampling_strategy" not in known and "group_by_length" in known:
        out["group_by_length"] = out.pop("train_sampling_strategy") == "group_by_length"
    unknown = [k for k in out if k not in known]
    essential = [k for k in unknown if k not in OPTIONAL_ARGUMENTS]
    if essential:
        import transformers

        raise FtkitError(f"The installed transformers {transformers.__version__} does not know the training "
                         f"argument(s) {', '.join(essential)} that ftkit sets, so training would silently differ. "
                         f"Install a transformers version ftkit supports (see pyproject.toml) and re-run.")
    for name in unknown:
        warnings.warn(f"transformers does not know TrainingArguments({name}=...); training runs without it.",
                      stacklevel=2)
    return {k: v for k, v in out.items() if k in known}, unknown


def training_arguments(job: TrainingJob, device: str, has_eval: bool):
    """The TrainingArguments of this job (the names the installed transformers ignored: ``.ftkit_ignored``)."""
    import torch
    from transformers import TrainingArguments

    s, plan = job.settings, job.plan
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    # ftkit's FSDP config checkpoints activations itself (fsdp_activation_checkpointing); transformers refuses both
    checkpointing = s["gradient_checkpointing"] and s.get("distributed") != "fsdp"
    kwargs, ignored = _compatible(TrainingArguments, _argument_values(job, device, has_eval, bf16, checkpointing))
    args = TrainingArguments(**kwargs)
    args.ftkit_ignored = ignored
    return args


def _argument_values(job: TrainingJob, device: str, has_eval: bool, bf16: bool, checkpointing: bool) -> dict:
    s, plan = job.settings, job.plan
    return dict(
        output_dir=str(job.output_dir), per_device_train_batch_size=s["batch_size"],
        per_device_eval_batch_size=s["batch_size"], gradient_accumulation_steps=s["gradient_accumulation_steps"],
        learning_rate=s["learning_rate"], weight_decay=s["weight_decay"], lr_scheduler_type="cosine",
        warmup_steps=plan["warmup_steps"], max_steps=plan["total_steps"], num_train_epochs=max(1.0, s["epochs"]),
        eval_strategy="steps" if has_eval else "no", eval_steps=plan["eval_steps"],
        eval_on_start=has_eval and not job.resume_from, save_strategy="no" if job.is_trial else "steps",
        save_steps=plan["eval_steps"], save_total_limit=2, load_best_model_at_end=has_eval and not job.is_trial, metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None, restore_callback_states_from_checkpoint=True,
        logging_strategy="steps", logging_steps=max(1, min(plan["eval_steps"], plan["total_steps"] // 50 or 1)),
        logging_first_step=True, report_to="none", run_name=job.tracking_name, seed=s["seed"], data_seed=s["seed"],
        use_cpu=device == "cpu", bf16=bf16, fp16=device == "cuda" and not bf16,
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        train_sampling_strategy="random" if s["packing"] else "group_by_length",
        dataloader_num_workers=0, remove_unused_columns=False, label_names=["labels"], prediction_loss_only=True,
        disable_tqdm=True, ddp_find_unused_parameters=False, save_only_model=False)


def one_device_per_process(args) -> int:
    """Never ``nn.DataParallel``: a single, non-distributed process trains on exactly one GPU.

    transformers sets ``n_gpu`` to every visible GPU when one process runs without torch.distributed, and the
    Trainer then wraps the model in ``nn.DataParallel``, which splits ftkit's padding-free packed batches (one row)
    at arbitrary token positions. The Trainer does this same override itself for model-parallel models.
    Returns the number of GPUs the process would otherwise have used. (More GPUs are used by more processes:
    ``training.distributed``; ``distributed.check_plan`` turns the unused ones into a finding.)
    """
    getattr(args, "device", None)  # set up devices first (cached), so nothing resets n_gpu after this
    visible = getattr(args, "_n_gpu", 0)
    if args.world_size <= 1 and visible > 1:
        args._n_gpu = 1
    return visible


def build_trainer(job: TrainingJob, model, tokenizer, train_sequences, eval_sequences, device: str, extra_callbacks=()):
    from transformers import EarlyStoppingCallback, PrinterCallback

    from ftkit.training.packing import SequenceDataset, make_collator

    s = job.settings
    has_eval = bool(eval_sequences)
    callbacks = _callbacks(job, has_eval)
    trackers, job.extra["tracking"] = tracker_callbacks(job)
    callbacks += trackers + list(extra_callbacks)
    if has_eval and s["early_stopping_patience"] > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=s["early_stopping_patience"]))
    args = training_arguments(job, device, has_eval)
    one_device_per_process(args)
    trainer = _trainer_class()(
        model=model, args=args, train_dataset=SequenceDataset(train_sequences),
        eval_dataset=SequenceDataset(eval_sequences) if has_eval else None,
        data_collator=make_collator(s["packing"], tokenizer, job.eot_id), processing_class=tokenizer,
        callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # ftkit's MetricsLog prints one readable line per event instead
    return trainer


# -- the whole training step ---------------------------------------------------------------------------------------

def run_training(job: TrainingJob, train_sequences, eval_sequences, callbacks=(), base_model=None) -> dict:
    """Load, wrap, train, save the final adapter/model + tokenizer. Returns the outcome (on every process).

    ``callbacks``: more TrainerCallbacks (the search's pruning callback); a trial job saves nothing.
    ``base_model``: an already loaded, never wrapped base model to train a deep copy of (the search loads it once
    for all its trials instead of once per trial)."""
    import torch

    from ftkit.models.loading import load_tokenizer, pick_device

    torch.manual_seed(job.settings["seed"])
    device = pick_device()
    tokenizer = load_tokenizer(job_source(job), padding_side="right")
    from ftkit.chat_plan import fit_embeddings, install_template

    install_template(tokenizer, job.extra.get("chat_template"), job.extra.get("added_tokens"))  # as the phase prepared
    if base_model is not None:
        import copy

        model = copy.deepcopy(base_model)
    else:
        model = load_training_model(job, device)
    fit_embeddings(model, tokenizer)  # added turn tokens: resized rows, saved with the adapter by peft
    if job.settings["packing"]:
        model.set_attn_implementation(packed_attention(device))
    model, trainable, total = apply_method(model, job.settings)
    trainer = build_trainer(job, model, tokenizer, train_sequences, eval_sequences, device, callbacks)
    from ftkit.training.distributed import check_distributed_type

    check_distributed_type(job.settings.get("distributed", "none"), _distributed_type(trainer))
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=job.resume_from or None)
    seconds = time.perf_counter() - started
    tokens = _sum_over_processes(trainer, trainer.tokens)
    if not job.is_trial:
        _save_final(trainer, tokenizer, job.final_dir)
    state = trainer.state
    return {"global_step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
            "train_seconds": seconds, "train_loss": result.training_loss, "tokens": tokens,
            "trainable_parameters": trainable, "total_parameters": total, "device": device,
            "processes": trainer.args.world_size, "best_checkpoint": state.best_model_checkpoint or "",
            "best_val_loss": state.best_metric, "stopped_early": state.global_step < state.max_steps,
            "peak_memory_gb": peak_memory_gb(device), "log_history": state.log_history,
            "distributed": job.settings.get("distributed", "none"),
            "distributed_type": _distributed_type(trainer), "tracking": job.extra.get("tracking", {}),
            "training_arguments_ignored": list(getattr(trainer.args, "ftkit_ignored", []))}


def _distributed_type(trainer) -> str:
    """What accelerate actually set up (NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED), the evidence of the mode."""
    kind = getattr(getattr(trainer, "accelerator", None), "distributed_type", None)
    return str(getattr(kind, "value", kind or "NO"))


def packed_attention(device: str) -> str:
    """flash-attention 2 on CUDA when installed (varlen kernels read the example boundaries natively), else
    ftkit's per-example sdpa (``ftkit.training.packing``)."""
    import importlib.util

    from ftkit.training.packing import register_packed_attention

    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return register_packed_attention()


def _sum_over_processes(trainer, tokens: dict) -> dict:
    if trainer.args.world_size <= 1:
        return dict(tokens)
    import torch

    values = torch.tensor([tokens["processed"], tokens["real"], tokens["labels"]], dtype=torch.float64,
                          device=trainer.args.device)
    total = trainer.accelerator.reduce(values, reduction="sum").tolist()
    return {"processed": int(total[0]), "real": int(total[1]), "labels": int(total[2])}


def _save_final(trainer, tokenizer, folder: Path) -> None:
    """The adapter (adapter_model.safetensors + adapter_config.json) or the full model, with the tokenizer and
    its chat template alongside: the template training used is the one the model must be served with."""
    # every process calls save_model (FSDP and ZeRO-3 gather the sharded weights collectively); only rank 0 writes
    trainer.save_model(str(folder))
    if trainer.is_world_process_zero():
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.padding_side = "left"  # what generation (baseline, evaluation, serving) expects
        tokenizer.save_pretrained(str(folder))


def peak_memory_gb(device: str) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, peak resident set size on CPU."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 1024 ** 3
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes (macOS: bytes)
    return kb / (1024 ** 3 if sys.platform == "darwin" else 1024 ** 2)


def threads_for(processes: int) -> int:
    """CPU threads per process so that processes x threads does not oversubscribe the cores."""
    return max(1, (os.cpu_count() or 1) // max(1, processes))
