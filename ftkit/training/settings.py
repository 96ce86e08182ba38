"""Resolved training hyperparameters: ``engagement.yaml``'s ``training`` block with every 0/empty filled in.

``engagement.yaml`` may leave a value to ftkit (``learning_rate: 0``, ``max_seq_length: 0``, ``eval_steps: 0``,
``target_modules: []``). This module decides those values once, records *why* (``sources``), and plans the
steps from the number of packed training sequences. The resolved values, together with the data and model
hashes, make the **fingerprint** a checkpoint must match before a later run may resume from it.

>>> from ftkit.config import TrainingSettings
>>> r = resolve_settings(TrainingSettings(), audit_max_seq_length=256)
>>> r.learning_rate, r.max_seq_length, r.sources["learning_rate"]
(0.0002, 256, 'method default for lora')
>>> plan_steps(r, n_train_sequences=100).total_steps
26
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

# Method -> default learning rate. LoRA/QLoRA train few, freshly initialised parameters and tolerate ~1e-4..3e-4;
# full fine-tuning moves every pretrained weight and needs ~1e-5..2e-5 to avoid forgetting.
METHOD_DEFAULT_LR = {"lora": 2e-4, "qlora": 2e-4, "full": 1e-5}
DEFAULT_MAX_SEQ_LENGTH = 1024  # when neither engagement.yaml nor the audit gives one
EVALS_PER_EPOCH = 5  # eval_steps: 0 -> validate about this often per epoch
# Settings that do not change what is learned, so a checkpoint stays resumable when only they differ.
NOT_IN_FINGERPRINT = ("report_to", "eval_max_examples", "memory_limit_gb", "accelerate_config", "sources",
                      "early_stopping_patience", "machine_rank", "main_process_ip", "main_process_port",
                      "mlflow_tracking_uri")


@dataclass(frozen=True)
class ResolvedSettings:
    """The hyperparameters a run actually uses (all defaults decided); ``sources`` says where each came from."""

    method: str
    learning_rate: float
    epochs: float
    max_steps: int
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_length: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: tuple[str, ...]  # () = all linear layers
    warmup_ratio: float
    weight_decay: float
    eval_steps: int  # 0 here = decided by plan_steps
    early_stopping_patience: int
    packing: bool
    seed: int
    num_processes: int
    report_to: str
    eval_max_examples: int
    gradient_checkpointing: bool
    memory_limit_gb: float
    accelerate_config: str
    distributed: str = "none"
    zero_stage: int = 2
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str = ""
    main_process_port: int = 0
    mlflow_tracking_uri: str = ""
    sources: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["target_modules"] = list(self.target_modules) or "all-linear"
        return out

    @property
    def world_size(self) -> int:
        """Training processes over all machines."""
        return self.num_processes * self.num_machines

    def replace(self, **changes) -> "ResolvedSettings":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps, and when to validate/checkpoint. ``sequences_per_step`` is across processes."""

    sequences_per_step: int
    steps_per_epoch: int
    total_steps: int
    eval_steps: int
    warmup_steps: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_settings(training, audit_max_seq_length: int = 0, data_max_seq_length: int = 0) -> ResolvedSettings:
    """Fill in method defaults and the sequence length.

    ``max_seq_length``: engagement.yaml's ``training.max_seq_length`` when set; else the data audit's suggestion
    (covers 99 % of examples); else ``data.max_seq_length``; else 1,024.
    """
    sources = {}
    lr = training.learning_rate
    if lr <= 0:
        lr = METHOD_DEFAULT_LR[training.method]
        sources["learning_rate"] = f"method default for {training.method}"
    seq = training.max_seq_length
    if seq <= 0:
        seq, sources["max_seq_length"] = next(
            (value, why) for value, why in ((audit_max_seq_length, "data audit (covers 99 % of examples)"),
                                            (data_max_seq_length, "data.max_seq_length"),
                                            (DEFAULT_MAX_SEQ_LENGTH, "ftkit default")) if value and value > 0)
    if not training.target_modules:
        sources["target_modules"] = "all linear layers"
    values = {f.name: getattr(training, f.name) for f in dataclasses.fields(training) if f.name != "search"}
    values.update(learning_rate=float(lr), max_seq_length=int(seq), target_modules=tuple(training.target_modules),
                  sources=sources)
    return ResolvedSettings(**values)


def plan_steps(settings: ResolvedSettings, n_train_sequences: int) -> StepPlan:
    """Optimizer steps from the number of training sequences (packed rows, or examples without packing).

    The last partial batch of an epoch still makes a step (the Trainer does not drop it). Every process of every
    machine takes ``batch_size`` sequences per micro-batch.
    """
    per_step = settings.batch_size * settings.gradient_accumulation_steps * settings.world_size
    per_epoch = max(1, math.ceil(n_train_sequences / per_step))
    total = settings.max_steps if settings.max_steps > 0 else max(1, math.ceil(per_epoch * settings.epochs))
    eval_steps = settings.eval_steps or max(1, min(total, round(per_epoch / EVALS_PER_EPOCH) or 1))
    return StepPlan(per_step, per_epoch, total, min(eval_steps, total), int(math.ceil(settings.warmup_ratio * total)))


def fingerprint(settings: ResolvedSettings, data_hashes: dict[str, str], model_hash: str, template_hash: str) -> str:
    """sha256 over what determines the training trajectory: hyperparameters, data, base model, chat template.

    A checkpoint carries its run's fingerprint; a later run resumes from it only when its own is identical.
    """
    learned = {k: v for k, v in settings.to_dict().items() if k not in NOT_IN_FINGERPRINT}
    payload = json.dumps({"settings": learned, "data": dict(sorted(data_hashes.items())), "model": model_hash,
                          "template": template_hash}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def settings_table(settings: ResolvedSettings, plan: StepPlan | None = None) -> list[dict]:
    """Rows (setting, value, source) for the notebook; method-irrelevant LoRA values are left out for full."""
    lora_only = {"lora_r", "lora_alpha", "lora_dropout", "target_modules"}
    skip = {"sources"} | (lora_only if settings.method == "full" else set())
    rows = [{"setting": k, "value": v, "source": settings.sources.get(k, "engagement.yaml")}
            for k, v in settings.to_dict().items() if k not in skip]
    if plan:
        rows += [{"setting": k, "value": v, "source": "planned from the data"} for k, v in plan.to_dict().items()]
    return rows
