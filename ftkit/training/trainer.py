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

    @property
    def output_dir(self) -> Path:
        return Path(self.run_dir) / "checkpoints"

    @property
    def metrics_log(self) -> Path:
        return Path(self.run_dir) / "metrics.jsonl"

    @property
    def final_dir(self) -> Path:
        return Path(self.run_dir) / ("model" if self.settings["method"] == "full" else "adapter")

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


def load_training_model(job: TrainingJob, device: str):
    """The base model for training: fp32 on CPU, bf16/fp16 on GPU; 4-bit NF4 through bitsandbytes for QLoRA."""
    from ftkit.models.loading import load_model, pick_dtype

    dtype = pick_dtype(device)
    if job.settings["method"] != "qlora":
        return load_model(job.model_path, job.model_revision, job.trust_remote_code, device=device, dtype=dtype)
    return _load_4bit(job, device, dtype)


def _load_4bit(job: TrainingJob, device: str, dtype):
    # ftkit.models.loading.load_model takes no quantization_config; this mirrors it (safetensors only, offline-aware)
    # with bitsandbytes' 4-bit NF4 (double quantisation: the per-block absmax constants are quantised too).
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependency("bitsandbytes", "training.method: qlora (4-bit base model)", "pip install bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ftkit.models.loading import _check_safetensors, _hub_kwargs, _wrap_load_error
    from ftkit.models.resolve import resolve_model

    source = resolve_model(job.model_path, job.model_revision)
    _check_safetensors(source)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(
            source.path, quantization_config=quant, dtype=dtype, device_map={"": device}, use_safetensors=True,
            trust_remote_code=job.trust_remote_code, **_hub_kwargs(source))
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
                control.should_evaluate = control.should_save = True
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

    return [MetricsLog(), Marker()] + ([EvalSchedule()] if has_eval else [])


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


def _compatible(cls, kwargs: dict) -> dict:
    """Map argument names the installed transformers 5.x does not know to their older spelling."""
    import inspect

    known = set(inspect.signature(cls.__init__).parameters)
    out = dict(kwargs)
    if "activation_checkpointing" not in known:  # renamed in late 5.x
        out["gradient_checkpointing"] = out.pop("activation_checkpointing")
        out["gradient_checkpointing_kwargs"] = out.pop("activation_checkpointing_kwargs")
    if "train_sampling_strategy" not in known:
        out["group_by_length"] = out.pop("train_sampling_strategy") == "group_by_length"
    return {k: v for k, v in out.items() if k in known}


def training_arguments(job: TrainingJob, device: str, has_eval: bool):
    import torch
    from transformers import TrainingArguments

    s, plan = job.settings, job.plan
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    return TrainingArguments(**_compatible(TrainingArguments, dict(
        output_dir=str(job.output_dir), per_device_train_batch_size=s["batch_size"],
        per_device_eval_batch_size=s["batch_size"], gradient_accumulation_steps=s["gradient_accumulation_steps"],
        learning_rate=s["learning_rate"], weight_decay=s["weight_decay"], lr_scheduler_type="cosine",
        warmup_steps=plan["warmup_steps"], max_steps=plan["total_steps"], num_train_epochs=max(1.0, s["epochs"]),
        eval_strategy="steps" if has_eval else "no", eval_steps=plan["eval_steps"],
        eval_on_start=has_eval and not job.resume_from, save_strategy="steps", save_steps=plan["eval_steps"],
        save_total_limit=2, load_best_model_at_end=has_eval, metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False if has_eval else None, restore_callback_states_from_checkpoint=True,
        logging_strategy="steps", logging_steps=max(1, min(plan["eval_steps"], plan["total_steps"] // 50 or 1)),
        logging_first_step=True, report_to=check_tracker(s["report_to"]), seed=s["seed"], data_seed=s["seed"],
        use_cpu=device == "cpu", bf16=bf16, fp16=device == "cuda" and not bf16,
        activation_checkpointing=s["gradient_checkpointing"],
        activation_checkpointing_kwargs={"use_reentrant": False} if s["gradient_checkpointing"] else None,
        train_sampling_strategy="random" if s["packing"] else "group_by_length",
        dataloader_num_workers=0, remove_unused_columns=False, label_names=["labels"], prediction_loss_only=True,
        disable_tqdm=True, ddp_find_unused_parameters=False, save_only_model=False)))


def build_trainer(job: TrainingJob, model, tokenizer, train_sequences, eval_sequences, device: str):
    from transformers import EarlyStoppingCallback, PrinterCallback

    from ftkit.training.packing import SequenceDataset, make_collator

    s = job.settings
    has_eval = bool(eval_sequences)
    callbacks = _callbacks(job, has_eval)
    if has_eval and s["early_stopping_patience"] > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=s["early_stopping_patience"]))
    trainer = _trainer_class()(
        model=model, args=training_arguments(job, device, has_eval), train_dataset=SequenceDataset(train_sequences),
        eval_dataset=SequenceDataset(eval_sequences) if has_eval else None,
        data_collator=make_collator(s["packing"], tokenizer, job.eot_id), processing_class=tokenizer,
        callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # ftkit's MetricsLog prints one readable line per event instead
    return trainer


# -- the whole training step ---------------------------------------------------------------------------------------

def run_training(job: TrainingJob, train_sequences, eval_sequences) -> dict:
    """Load, wrap, train, save the final adapter/model + tokenizer. Returns the outcome (on every process)."""
    import torch

    from ftkit.models.loading import load_tokenizer, pick_device

    torch.manual_seed(job.settings["seed"])
    device = pick_device()
    tokenizer = load_tokenizer(job.model_path, job.model_revision, job.trust_remote_code, padding_side="right")
    from ftkit.chat_plan import fit_embeddings, install_template

    install_template(tokenizer, job.extra.get("chat_template"), job.extra.get("added_tokens"))  # as the phase prepared
    model = load_training_model(job, device)
    fit_embeddings(model, tokenizer)  # added turn tokens: resized rows, saved with the adapter by peft
    if job.settings["packing"]:
        model.set_attn_implementation(packed_attention(device))
    model, trainable, total = apply_method(model, job.settings)
    trainer = build_trainer(job, model, tokenizer, train_sequences, eval_sequences, device)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=job.resume_from or None)
    seconds = time.perf_counter() - started
    tokens = _sum_over_processes(trainer, trainer.tokens)
    if trainer.is_world_process_zero():
        _save_final(trainer, tokenizer, job.final_dir)
    state = trainer.state
    return {"global_step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
            "train_seconds": seconds, "train_loss": result.training_loss, "tokens": tokens,
            "trainable_parameters": trainable, "total_parameters": total, "device": device,
            "processes": trainer.args.world_size, "best_checkpoint": state.best_model_checkpoint or "",
            "best_val_loss": state.best_metric, "stopped_early": state.global_step < state.max_steps,
            "peak_memory_gb": peak_memory_gb(device), "log_history": state.log_history}


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
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(folder))
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
