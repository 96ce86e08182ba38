"""The engagement configuration: ``engagement.yaml`` as a validated dataclass tree.

Every setting is a dataclass field with ``metadata={"help": ...}`` (and ``choices`` where the value is one
of a few words). ``load_config`` reads the YAML, converts it field by field and reports *every* problem at
once, each naming the dotted field, the bad value and the fix. ``templates/engagement.yaml`` documents the
same fields in comments; a test keeps the two in step.

Text settings are one line unless their metadata says ``multiline=True`` (objective, system prompt, notes):
one-line text refuses control characters, line separators and bidi overrides, multi-line text keeps newline and
tab only (``ftkit.safe_values.text_problem``), because these values end up in shell scripts, Modelfiles and
spreadsheets.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ftkit.errors import ConfigError
from ftkit.safe_values import text_problem

TASK_TYPES = ("classification", "structured_output", "free_text", "chat")
DATA_FORMATS = ("auto", "chat", "alpaca", "sharegpt", "prompt_completion", "csv")
METHODS = ("lora", "qlora", "full")
DISTRIBUTED_MODES = ("none", "ddp", "fsdp", "deepspeed")  # ftkit.training.distributed.MODES
HOST_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.\-]{0,252}|\[?[0-9A-Fa-f:]+\]?"  # a host name, IPv4 or IPv6 address
COMPLIANCE_FRAMEWORKS = ("hipaa", "gdpr", "data_residency", "pci_dss", "soc2", "eu_ai_act", "ccpa", "none")


def _help(text: str, **extra) -> dict:
    return {"help": text, **extra}


@dataclass
class ClientSettings:
    name: str = field(default="", metadata=_help("Client's display name, shown on every report."))
    slug: str = field(default="", metadata=_help("Folder name under engagements/ (set by `ftkit new`; do not edit)."))
    contact: str = field(default="", metadata=_help("Who answers data questions on the client side."))
    industry: str = field(default="", metadata=_help("Sector, e.g. \"retail banking\"; informs the risk register."))


@dataclass
class TaskSettings:
    type: str = field(default="structured_output", metadata=_help(
        "What the model must do: classification | structured_output | free_text | chat; "
        "selects the metrics.", choices=TASK_TYPES))
    system_prompt: str = field(default="", metadata=_help(
        "One system prompt used by baseline, training, evaluation and serving.", multiline=True))
    label_field: str = field(default="", metadata=_help(
        "structured_output: JSON key of the answer that acts as the class label (stratified splits, "
        "per-class metrics). Leave empty when there is none."))
    labels: list[str] = field(default_factory=list, metadata=_help(
        "For classification: allowed labels; empty = taken from the data."))
    json_schema: dict = field(default_factory=dict, metadata=_help(
        "structured_output: JSON Schema the answer must satisfy; empty = only check it is a JSON object."))


@dataclass
class SplitSettings:
    train: float = field(default=0.8, metadata=_help("Fraction for training."))
    validation: float = field(default=0.1, metadata=_help(
        "Fraction for validation (early stopping, overfitting flag)."))
    test: float = field(default=0.1, metadata=_help(
        "Fraction held out for baseline and evaluation (never trained on)."))
    seed: int = field(default=42, metadata=_help("Seed of the split; same seed + same data = same split."))

    def __post_init__(self):
        total = self.train + self.validation + self.test
        if isinstance(total, float) and abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")


@dataclass
class ColumnSettings:
    prompt: str = field(default="", metadata=_help("Column with the user's input."))
    completion: str = field(default="", metadata=_help("Column with the expected answer."))
    system: str = field(default="", metadata=_help("Optional column with a per-row system prompt."))


@dataclass
class DataSettings:
    files: list[str] = field(default_factory=list, metadata=_help(
        "Client data files, relative to this folder (`ftkit new --data` copies them into data/)."))
    test_files: list[str] = field(default_factory=list, metadata=_help(
        "Optional client-provided test set: used as the test split, leakage is checked."))
    format: str = field(default="auto", metadata=_help(
        "File format: auto | chat | alpaca | sharegpt | prompt_completion | csv (auto = "
        "detected; also .gz/.zst, Parquet, Arrow, dataset folders, .xlsx).", choices=DATA_FORMATS))
    columns: ColumnSettings = field(default_factory=ColumnSettings, metadata=_help(
        "CSV/TSV and Excel only: which columns hold what."))
    sheet: str = field(default="", metadata=_help(
        "Excel (.xlsx) only: the sheet to read (header in row 1); empty = .xlsx files are refused."))
    split: SplitSettings = field(default_factory=SplitSettings, metadata=_help(
        "Deterministic split: same data + same seed = same split."))
    max_seq_length: int = field(default=1024, metadata=_help(
        "Longest example in tokens: longer ones are flagged as truncation risk; sets training's length."))
    near_duplicate_threshold: float = field(default=0.85, metadata=_help(
        "Jaccard similarity (0-1) above which two examples are near-duplicates."))
    redact_pii: bool = field(default=False, metadata=_help("Also write PII-redacted copies of the splits."))
    min_examples: int = field(default=100, metadata=_help(
        "Fewer valid examples than this blocks the audit (and so training)."))
    corrections: list[str] = field(default_factory=list, metadata=_help(
        "Filled review sheets (CSV: file, line, decision keep|fix|drop, new_answer; e.g. suspect_labels.csv), "
        "relative to this folder: the data audit applies them to its splits, data/ is never changed."))

    def __post_init__(self):
        bad = [f"corrections[{i}] must be a .csv file inside the engagement folder (relative, no '..'), got {rel!r}"
               for i, rel in enumerate(self.corrections) if not _inside_csv(rel)]
        if bad:
            raise ValueError("; ".join(bad))


def _inside_csv(rel) -> bool:
    """A relative path to a .csv file that stays inside the folder it is relative to.

    >>> _inside_csv("reviews/corrections.csv"), _inside_csv("../x.csv"), _inside_csv("/tmp/x.csv"), _inside_csv("a.txt")
    (True, False, False, False)
    """
    path = Path(str(rel))
    return (isinstance(rel, str) and bool(rel.strip()) and not path.is_absolute() and ".." not in path.parts
            and path.suffix.lower() == ".csv")


@dataclass
class BaseModelSettings:
    id: str = field(default="smollm2-135m-instruct", metadata=_help(
        "Hub id (e.g. meta-llama/Llama-3.1-8B-Instruct), local folder, .gguf file, or a short name "
        "(smollm2-135m-instruct, tiny-random)."))
    revision: str = field(default="", metadata=_help("Hub revision (commit or tag) to pin; empty = default branch."))
    trust_remote_code: bool = field(default=False, metadata=_help(
        "Allow model code from the hub to run. Off unless the client approved it."))
    candidates: list[str] = field(default_factory=list, metadata=_help(
        "Other base models the baseline phase should also score and compare."))
    chat_template: str = field(default="", metadata=_help(
        "Chat template for a base model without one (or to replace the model's): a shipped name (chatml, llama3, "
        "gemma, mistral, phi3) or a .jinja file path (relative to the engagement folder). Empty = the model's own; "
        "for a model without one ftkit picks the family template whose special tokens the vocabulary has, else "
        "ChatML with added tokens, and says why."))

    def __post_init__(self):
        from ftkit.chat_plan import SHIPPED_TEMPLATES

        value = (self.chat_template or "").strip()
        if value and value not in SHIPPED_TEMPLATES and not value.endswith((".jinja", ".j2", ".txt")):
            raise ValueError(f"chat_template must be one of {', '.join(SHIPPED_TEMPLATES)} or a path to a .jinja "
                             f"file, got {self.chat_template!r}")
        self.chat_template = value


@dataclass
class OpenAIBackendSettings:
    base_url: str = field(default="", metadata=_help("OpenAI-compatible endpoint, e.g. https://api.openai.com/v1."))
    model: str = field(default="", metadata=_help("Judge model name (a strong model; not the one being judged)."))
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=_help(
        "NAME of the environment variable that holds the key. The key itself is never written anywhere."))


@dataclass
class PromptSearchSettings:
    enabled: bool = field(default=False, metadata=_help(
        "Score candidate prompts on the VALIDATION split and use the best as the test-set baseline (off: the "
        "one configured prompt). Costs one generation per candidate and validation example."))
    max_examples: int = field(default=40, metadata=_help(
        "Validation examples each candidate answers (a seeded sample, stratified by label; 0 = all)."))
    k_shots: list[int] = field(default_factory=lambda: [1, 3], metadata=_help(
        "Few-shot candidates: one per k, shots drawn seeded from the train split (stratified by label)."))
    spell_out: bool = field(default=True, metadata=_help(
        "Add a candidate that lists the allowed labels (classification) or the JSON schema/keys "
        "(structured_output) after the system prompt."))
    variants_file: str = field(default="", metadata=_help(
        "Your own candidates: a YAML list of {name, system_prompt, shots} (relative to the engagement folder); "
        "empty = none."))

    def __post_init__(self):
        if self.max_examples < 0:
            raise ValueError(f"max_examples must be 0 (all) or more, got {self.max_examples}")
        bad = [k for k in self.k_shots if not isinstance(k, int) or isinstance(k, bool) or k < 1]
        if bad:
            raise ValueError(f"k_shots must be whole numbers of at least 1, got {bad}")
        self.k_shots = sorted(set(self.k_shots))
        self.variants_file = (self.variants_file or "").strip()


@dataclass
class BaselineSettings:
    backend: str = field(default="local", metadata=_help(
        "local = transformers on this machine; openai = an OpenAI-compatible HTTP endpoint; vllm = vLLM on this "
        "machine's CUDA GPU (same prompts, greedy; pip install \"ftkit[vllm]\"; refused without one).",
        choices=("local", "openai", "vllm")))
    vllm_check_examples: int = field(default=8, metadata=_help(
        "backend vllm: answer this many test examples with transformers too and compare (0 = no check)."))
    shots: int = field(default=3, metadata=_help("Few-shot examples from the train split (0 = zero-shot)."))
    max_new_tokens: int = field(default=0, metadata=_help("0 = derived from audited response lengths."))
    batch_size: int = field(default=16, metadata=_help("Generation batch size."))
    max_examples: int = field(default=0, metadata=_help(
        "Score a seeded sample of N test examples, stratified by label (0 = all); the evaluation answers the same "
        "ones."))
    openai: OpenAIBackendSettings = field(default_factory=OpenAIBackendSettings, metadata=_help(
        "Settings for the openai backend."))
    prompt_search: PromptSearchSettings = field(default_factory=PromptSearchSettings, metadata=_help(
        "Find the best prompt on the validation split; the winner becomes the test-set baseline."))


SEARCH_PRUNERS = ("median", "successive_halving", "none")


@dataclass
class SearchSpace:
    """training.search.space: each hyperparameter as [low, high]; an empty list keeps training's own value."""

    learning_rate: list[float] = field(default_factory=lambda: [5e-5, 1e-3], metadata=_help(
        "[low, high], sampled log-uniformly; 0 < low <= high < 1. [] = not searched."))
    lora_r: list[int] = field(default_factory=lambda: [4, 32], metadata=_help(
        "LoRA rank [low, high], whole numbers sampled log-uniformly; low >= 1. [] = not searched."))
    lora_alpha: list[int] = field(default_factory=list, metadata=_help(
        "LoRA alpha [low, high], whole numbers above 0; [] = not searched (alpha keeps its ratio to r: "
        "training.lora_alpha / training.lora_r x the trial's r)."))
    epochs: list[float] = field(default_factory=list, metadata=_help(
        "[low, high] passes over the search subset, above 0; [] = not searched. Leave empty when max_steps is set."))
    max_steps: list[int] = field(default_factory=list, metadata=_help(
        "[low, high] optimizer steps per trial, 1 or more; [] = not searched (epochs or training.max_steps apply)."))
    lora_dropout: list[float] = field(default_factory=lambda: [0.0, 0.1], metadata=_help(
        "[low, high], uniform; 0 <= low <= high < 1. [] = not searched."))

    def __post_init__(self):
        rules = {"learning_rate": (lambda v: 0 < v < 1, "0 < low <= high < 1, e.g. [5e-5, 1e-3]"),
                 "lora_r": (lambda v: v >= 1, "1 <= low <= high (whole numbers), e.g. [4, 32]"),
                 "lora_alpha": (lambda v: v > 0, "0 < low <= high (whole numbers), e.g. [8, 64]"),
                 "epochs": (lambda v: v > 0, "0 < low <= high, e.g. [1, 3]"),
                 "max_steps": (lambda v: v >= 1, "1 <= low <= high (whole numbers), e.g. [20, 200]"),
                 "lora_dropout": (lambda v: 0 <= v < 1, "0 <= low <= high < 1, e.g. [0.0, 0.1]")}
        problems = []
        for name, (ok, rule) in rules.items():
            value = getattr(self, name)
            if value and (len(value) != 2 or not all(ok(v) for v in value) or value[0] > value[1]):
                problems.append(f"{name} must be [low, high] with {rule}, got {value!r}")
        if self.epochs and self.max_steps:
            problems.append(f"epochs {self.epochs!r} and max_steps {self.max_steps!r} are both set; "
                            f"search one of them (max_steps overrides epochs in training)")
        if problems:
            raise ValueError("; ".join(problems))

    def searched(self) -> dict[str, list]:
        """{hyperparameter: [low, high]} of the ones searched."""
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name)}


@dataclass
class SearchSettings:
    enabled: bool = field(default=False, metadata=_help(
        "Search the hyperparameters (Optuna, TPE) before the final training; off by default."))
    trials: int = field(default=8, metadata=_help("Trials to finish (completed or pruned), budget permitting."))
    space: SearchSpace = field(default_factory=SearchSpace, metadata=_help("What is searched, and within which bounds."))
    pruner: str = field(default="median", metadata=_help(
        "Stop unpromising trials early on validation loss: median | successive_halving | none.",
        choices=SEARCH_PRUNERS))
    subset: int = field(default=0, metadata=_help(
        "Train each trial on the first N training examples (seeded shuffle); 0 = the whole training split."))
    budget_usd: float = field(default=0.0, metadata=_help(
        "Stop starting trials when the next one would take the search past this many USD (measured wall time x "
        "the device's price in templates/device_prices.yaml); 0 = no USD limit."))
    budget_device_hours: float = field(default=0.0, metadata=_help(
        "The same limit in device-hours (wall time x devices); 0 = no limit."))
    apply: bool = field(default=True, metadata=_help(
        "Train the final model with the best trial's settings; false = only recommend them."))

    def __post_init__(self):
        problems = [f"{name} must be {rule}, got {getattr(self, name)!r}" for name, ok, rule in (
            ("trials", self.trials >= 1, "1 or more"),
            ("subset", self.subset == 0 or self.subset >= 2, "0 (all) or at least 2 examples"),
            ("budget_usd", self.budget_usd >= 0, "0 (no limit) or more"),
            ("budget_device_hours", self.budget_device_hours >= 0, "0 (no limit) or more"),
        ) if not ok]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class TrainingSettings:
    method: str = field(default="lora", metadata=_help(
        "lora (default), qlora (4-bit base, least memory) or full (all weights).", choices=METHODS))
    learning_rate: float = field(default=0.0, metadata=_help("0 = method default: 2e-4 LoRA/QLoRA, 1e-5 full."))
    epochs: float = field(default=2.0, metadata=_help("Passes over the training split (1-3 typical)."))
    max_steps: int = field(default=0, metadata=_help("Stop after this many optimizer steps (0 = use epochs)."))
    batch_size: int = field(default=8, metadata=_help(
        "Sequences per device per step (with packing: packed sequences of max_seq_length tokens)."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Steps accumulated per optimizer update."))
    max_seq_length: int = field(default=0, metadata=_help("0 = from the data audit."))
    lora_r: int = field(default=16, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA scaling alpha (often 2 x r)."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on LoRA inputs."))
    target_modules: list[str] = field(default_factory=list, metadata=_help(
        "Modules to adapt; empty = all linear layers."))
    warmup_ratio: float = field(default=0.05, metadata=_help("Fraction of steps with linear LR warm-up."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    eval_steps: int = field(default=0, metadata=_help("Validation every N steps (0 = about 5 times per epoch)."))
    early_stopping_patience: int = field(default=3, metadata=_help(
        "Stop after this many validations without improvement (0 = off)."))
    packing: bool = field(default=True, metadata=_help("Pack examples into full sequences (no padding waste)."))
    seed: int = field(default=42, metadata=_help("Training seed."))
    num_processes: int = field(default=1, metadata=_help(
        "Training processes per machine, one per GPU (> 1 needs distributed: ddp, fsdp or deepspeed)."))
    report_to: str = field(default="none", metadata=_help(
        "Experiment tracker: none, tensorboard (event files in the run's logs/), mlflow (a SQLite store in the run "
        "folder, or mlflow_tracking_uri), wandb.", choices=("none", "tensorboard", "mlflow", "wandb")))
    eval_max_examples: int = field(default=0, metadata=_help(
        "Validate on at most N validation examples (0 = all); each validation is a forward pass over them."))
    gradient_checkpointing: bool = field(default=False, metadata=_help(
        "Recompute activations in the backward pass: ~70 % less activation memory for ~30 % more compute."))
    memory_limit_gb: float = field(default=0.0, metadata=_help(
        "Memory training may use in GB (0 = what the device has available now); the estimate must fit in it."))
    accelerate_config: str = field(default="", metadata=_help(
        "Your own accelerate config file (relative to the engagement folder) instead of ftkit's for the "
        "distributed mode; its distributed_type must match training.distributed. Empty = ftkit's."))
    distributed: str = field(default="none", metadata=_help(
        "none (one process), ddp (a model copy per GPU), fsdp (weights, gradients and optimizer sharded over the "
        "GPUs; GPUs only) or deepspeed (ZeRO, see zero_stage; GPUs only); all but none run through `accelerate launch`.",
        choices=DISTRIBUTED_MODES))
    zero_stage: int = field(default=2, metadata=_help(
        "deepspeed only: 2 shards gradients and optimizer states, 3 also the weights."))
    num_machines: int = field(default=1, metadata=_help("Machines (nodes) in the run; > 1 needs main_process_ip."))
    machine_rank: int = field(default=0, metadata=_help(
        "Which machine this notebook runs on (0 = the main one); every node gets its own launch script."))
    main_process_ip: str = field(default="", metadata=_help(
        "Address of machine 0 that the other machines connect to (multi-node only), e.g. 10.0.0.4.",
        pattern=HOST_PATTERN))
    main_process_port: int = field(default=0, metadata=_help(
        "Port on machine 0 for the rendezvous (0 = a free port on one machine, 29500 for several)."))
    mlflow_tracking_uri: str = field(default="", metadata=_help(
        "report_to: mlflow only: tracking server or store URI; empty = a SQLite file in the run folder."))
    search: SearchSettings = field(default_factory=SearchSettings, metadata=_help(
        "Hyperparameter search before the final training (Optuna), under a budget."))

    def __post_init__(self):
        problems = [f"{name} must be {rule}, got {getattr(self, name)!r}" for name, ok, rule in (
            ("learning_rate", 0 <= self.learning_rate < 1, "0 (method default) or a small positive number like 2e-4"),
            ("epochs", self.epochs > 0 or self.max_steps > 0, "above 0 (or set max_steps)"),
            ("max_steps", self.max_steps >= 0, "0 or more"),
            ("batch_size", self.batch_size >= 1, "1 or more"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, "1 or more"),
            ("max_seq_length", self.max_seq_length == 0 or self.max_seq_length >= 16, "0 (from the audit) or at least 16"),
            ("lora_r", self.lora_r >= 1, "1 or more"),
            ("lora_alpha", self.lora_alpha > 0, "above 0"),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "between 0 and 1"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "between 0 and 1"),
            ("weight_decay", self.weight_decay >= 0, "0 or more"),
            ("eval_steps", self.eval_steps >= 0, "0 (automatic) or more"),
            ("early_stopping_patience", self.early_stopping_patience >= 0, "0 (off) or more"),
            ("num_processes", self.num_processes >= 1, "1 or more"),
            ("eval_max_examples", self.eval_max_examples >= 0, "0 (all) or more"),
            ("memory_limit_gb", self.memory_limit_gb >= 0, "0 (automatic) or more"),
        ) if not ok]
        problems += _distributed_problems(self)
        if problems:
            raise ValueError("; ".join(problems))


def _distributed_problems(t: "TrainingSettings") -> list[str]:
    """The scale-out settings (distributed, processes, machines, rendezvous) checked together."""
    import re

    problems = []
    if t.zero_stage not in (2, 3):
        problems.append(f"zero_stage must be 2 or 3, got {t.zero_stage!r}")
    if t.num_machines < 1:
        problems.append(f"num_machines must be 1 or more, got {t.num_machines!r}")
    elif not 0 <= t.machine_rank < t.num_machines:
        problems.append(f"machine_rank must be between 0 and num_machines - 1 ({t.num_machines - 1}), "
                        f"got {t.machine_rank!r}")
    if not 0 <= t.main_process_port <= 65535:
        problems.append(f"main_process_port must be 0 (automatic) or a port up to 65535, got {t.main_process_port!r}")
    if t.main_process_ip and not re.fullmatch(HOST_PATTERN, t.main_process_ip):
        problems.append(f"main_process_ip must be a host name or IP address, got {t.main_process_ip!r}")
    if t.distributed == "none":
        if t.num_processes > 1 or t.num_machines > 1:
            problems.append(f"distributed is none (one process) but num_processes is {t.num_processes} and "
                            f"num_machines {t.num_machines}; set distributed: ddp (or fsdp, deepspeed)")
    elif t.num_processes * max(1, t.num_machines) < 2:
        problems.append(f"distributed: {t.distributed} needs at least 2 processes in all, but num_processes is "
                        f"{t.num_processes} on {t.num_machines} machine(s)")
    if t.num_machines > 1 and not t.main_process_ip:
        problems.append("num_machines > 1 needs main_process_ip (the address of machine 0)")
    return problems


@dataclass
class AcceptanceCriterion:
    metric: str = field(default="", metadata=_help("Metric name from evaluation results, e.g. accuracy, win_rate."))
    min: Optional[float] = field(default=None, metadata=_help("Pass when the value is at least this."))
    max: Optional[float] = field(default=None, metadata=_help("Pass when the value is at most this."))

    def __post_init__(self):
        if self.min is None and self.max is None:
            raise ValueError(f"criterion '{self.metric}' needs min or max")


@dataclass
class SuspectLabelSettings:
    enabled: bool = field(default=True, metadata=_help(
        "After training, rank the examples whose given answer the fine-tuned model most confidently rejects and "
        "write a review sheet (suspects/suspect_labels.csv and .html)."))
    max_examples: int = field(default=300, metadata=_help(
        "Examples scored (one forward pass each; classification: one per label unless the labels' first tokens "
        "differ), sampled from train, validation and test in proportion; 0 = all."))
    listed: int = field(default=50, metadata=_help("Most suspect examples listed in the review sheet."))

    def __post_init__(self):
        for name in ("max_examples", "listed"):
            value = getattr(self, name)
            if isinstance(value, int) and value < 0:
                raise ValueError(f"suspect_labels.{name} must be 0 or more, got {value}")
        if isinstance(self.listed, int) and self.listed == 0:
            raise ValueError("suspect_labels.listed must be at least 1, got 0 (turn the step off with enabled: false)")


@dataclass
class EvaluationSettings:
    acceptance: list[AcceptanceCriterion] = field(default_factory=list, metadata=_help(
        "Go/no-go criteria, e.g. [{metric: accuracy, min: 0.8}, {metric: regressions, max: 5}]."))
    ab_items: int = field(default=40, metadata=_help("Items in the blind A/B rating sheet for human reviewers."))
    probe_set: str = field(default="", metadata=_help(
        "General-knowledge probe file for the forgetting check; empty = the shipped one."))
    llm_judge: bool = field(default=False, metadata=_help(
        "Also ask a judge model through the openai backend (prompt recorded)."))
    judge: OpenAIBackendSettings = field(default_factory=OpenAIBackendSettings, metadata=_help(
        "Judge endpoint for llm_judge; empty base_url/model = use baseline.openai."))
    ab_ratings_dir: str = field(default="reviews/ab", metadata=_help(
        "Put reviewers' filled A/B CSV files here (relative to this folder); read on every run."))
    seed: int = field(default=0, metadata=_help("Seed of the A/B sheet order and of the bootstrap resamples."))
    n_bootstrap: int = field(default=1000, metadata=_help("Bootstrap resamples for the 95 % confidence intervals."))
    regression_margin: float = field(default=0.1, metadata=_help(
        "Per-example score drop (0-1) that counts as a regression for continuous metrics; for right/wrong "
        "metrics every right -> wrong counts."))
    max_iterations: int = field(default=3, metadata=_help(
        "After this many iterations in a row without a significant gain (over the previous one; the first over "
        "the baseline) the verdict says stop, citing the ledger."))
    compare_iterations: int = field(default=2, metadata=_help(
        "Earlier succeeded training runs compared with the newest (0 = none)."))
    probe_max_new_tokens: int = field(default=24, metadata=_help(
        "Answer length cap (tokens) for the forgetting probe; its answers are a word or number."))
    examples_shown: int = field(default=8, metadata=_help(
        "Side-by-side baseline vs fine-tuned examples shown in the report."))
    slices: list[str] = field(default_factory=list, metadata=_help(
        "Extra fields of the data (CSV columns, JSON keys such as channel or language) to break the error analysis "
        "down by; empty = every field with few distinct values. Source file and input length are always used."))
    suspect_labels: SuspectLabelSettings = field(default_factory=SuspectLabelSettings, metadata=_help(
        "Suspect labels after training: which examples to have the client review."))

    def __post_init__(self):
        bad = [s for s in self.slices if not isinstance(s, str) or not s.strip()]
        if bad or len(set(self.slices)) != len(self.slices):
            raise ValueError(f"slices: {self.slices!r} must be distinct, non-empty field names")
        if isinstance(self.max_iterations, int) and self.max_iterations < 1:
            raise ValueError(f"max_iterations must be 1 or more (iterations without a significant gain before the "
                             f"verdict says stop), got {self.max_iterations!r}")


@dataclass
class DeploymentSettings:
    monthly_requests: int = field(default=100_000, metadata=_help(
        "Expected production requests per month (drives sizing and cost)."))
    input_tokens_per_request: int = field(default=0, metadata=_help(
        "Prompt tokens per request; 0 = from the data audit."))
    output_tokens_per_request: int = field(default=0, metadata=_help(
        "Answer tokens per request; 0 = from the data audit."))
    peak_concurrency: int = field(default=8, metadata=_help(
        "Simultaneous requests at peak (drives KV-cache memory)."))
    context_length: int = field(default=0, metadata=_help("Serving context in tokens; 0 = training max_seq_length."))
    serving_dtype: str = field(default="bf16", metadata=_help(
        "Weight precision when serving: bf16 | fp16 | int8 | int4.",
                                                              choices=("bf16", "fp16", "int8", "int4")))
    retrain_every_months: int = field(default=3, metadata=_help("Planned retraining cadence."))
    always_on: bool = field(default=True, metadata=_help(
        "Self-hosted GPUs run 24/7 (730 h/month); false = billed only for the hours the volume needs "
        "(scale to zero)."))
    gpu: str = field(default="", metadata=_help(
        "GPU to size and cost for (name in templates/serving_prices.yaml); empty = cheapest that fits."))
    export_merged: bool = field(default=True, metadata=_help(
        "Merge the LoRA adapter into the base model for handover; false = ship base + adapter."))
    equivalence_prompts: int = field(default=4, metadata=_help(
        "Test prompts that prove the exported model answers like base + adapter."))
    uat_log: str = field(default="serving/uat_requests.jsonl", metadata=_help(
        "Where `ftkit serve` appends each request and answer (relative to the engagement; the format "
        "`ftkit monitor` reads); empty = no log."))
    drift_psi_alert: float = field(default=0.25, metadata=_help(
        "Population stability index above which `ftkit monitor` alerts (0.1 = watch)."))


@dataclass
class ComplianceSettings:
    frameworks: list[str] = field(default_factory=list, metadata=_help(
        "Regimes that apply: hipaa, gdpr, data_residency, pci_dss, soc2, eu_ai_act, ccpa.",
        item_choices=COMPLIANCE_FRAMEWORKS))
    allow_external_providers: bool = field(default=True, metadata=_help(
        "May data go to a managed fine-tuning provider? false forces self-hosting."))
    data_residency: str = field(default="", metadata=_help("Region data must stay in, e.g. EU; empty = none."))


@dataclass
class BudgetSettings:
    total_usd: float = field(default=0.0, metadata=_help("Budget for compute and provider fees; 0 = not set."))
    gpu_memory_gb: float = field(default=24.0, metadata=_help(
        "Memory of the largest GPU available for training (QLoRA if the model does not fit)."))
    weeks: int = field(default=0, metadata=_help("Calendar weeks available; 0 = not set."))


@dataclass
class SuitabilitySettings:
    needs_fresh_facts: bool = field(default=False, metadata=_help(
        "Answers depend on new/changing facts, citations or real-time data (points to RAG)."))
    prompt_engineering_tried: bool = field(default=False, metadata=_help(
        "A documented prompt-engineering attempt exists (try that first)."))
    prompt_engineering_notes: str = field(default="", metadata=_help("What was tried and how far it got.",
                                                                     multiline=True))
    requirements_stable: bool = field(default=True, metadata=_help(
        "The desired behaviour is settled (false: fine-tuning would chase a moving target)."))
    strict_output_format: bool = field(default=False, metadata=_help("A format/schema must be followed every time."))
    specialised_domain: bool = field(default=False, metadata=_help("Specialised vocabulary or domain behaviour."))
    style_or_voice: bool = field(default=False, metadata=_help("A style or brand voice must be kept."))
    high_volume: bool = field(default=False, metadata=_help(
        "High volume, where shorter prompts or a smaller model cut cost and latency."))
    narrow_task: bool = field(default=False, metadata=_help("A narrow task with consistent input -> output."))
    quality_examples: int = field(default=0, metadata=_help(
        "Quality examples available; 0 = count the records in data files."))
    base_model_params_b: float = field(default=0.0, metadata=_help(
        "Base model size in billions of parameters; 0 = look it up from base_model."))


@dataclass
class TeacherSettings:
    base_url: str = field(default="", metadata=_help(
        "OpenAI-compatible endpoint of the teacher model (a provider, a local vLLM, or `ftkit serve`), e.g. "
        "https://api.openai.com/v1; empty = the local base model drafts the candidates."))
    model: str = field(default="", metadata=_help("Teacher model name sent with each request (required with base_url)."))
    api_key_env: str = field(default="", metadata=_help(
        "NAME of the environment variable holding the teacher's key (sent as a Bearer token); empty = none."))

    def __post_init__(self):
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.base_url and not self.model:
            raise ValueError("model is required when base_url is set")


@dataclass
class AugmentationSettings:
    teacher: TeacherSettings = field(default_factory=TeacherSettings, metadata=_help(
        "Who drafts candidate examples for `ftkit augment`."))
    min_per_target: int = field(default=30, metadata=_help(
        "A label (or slice value) with fewer training examples than this is a target for new candidates."))
    slice_fields: list[str] = field(default_factory=list, metadata=_help(
        "Record fields (the split records' `fields`, e.g. channel) whose thin values are targets too."))
    candidates_per_target: int = field(default=20, metadata=_help(
        "Candidates asked for per target (before filters and review)."))
    whole_set_candidates: int = field(default=100, metadata=_help(
        "Candidates asked for across the whole task when the suitability verdict is \"not yet\"."))
    per_call: int = field(default=5, metadata=_help("Candidates asked for in one teacher request."))
    shots: int = field(default=4, metadata=_help("Training-split examples shown to the teacher per request."))
    temperature: float = field(default=0.8, metadata=_help("Teacher sampling temperature (0-2)."))
    top_p: float = field(default=0.95, metadata=_help("Teacher nucleus sampling (0-1]."))
    max_tokens: int = field(default=600, metadata=_help("Longest teacher answer per request, in tokens."))
    seed: int = field(default=0, metadata=_help("Seed of the few-shot draws and of each request (seed + call number)."))
    max_calls: int = field(default=50, metadata=_help("Most teacher requests one `ftkit augment` may make."))
    max_tokens_total: int = field(default=200_000, metadata=_help(
        "Most tokens (prompt + answer) the teacher may use in one `ftkit augment`; it stops there."))
    usd_per_1k_input_tokens: float = field(default=0.0, metadata=_help(
        "Teacher price per 1,000 prompt tokens (USD; 0 = not priced, e.g. a local teacher)."))
    usd_per_1k_output_tokens: float = field(default=0.0, metadata=_help(
        "Teacher price per 1,000 answer tokens (USD; 0 = not priced)."))

    def __post_init__(self):
        problems = [f"{name} must be {rule}, got {getattr(self, name)!r}" for name, ok, rule in (
            ("min_per_target", self.min_per_target >= 1, "1 or more"),
            ("candidates_per_target", self.candidates_per_target >= 1, "1 or more"),
            ("whole_set_candidates", self.whole_set_candidates >= 1, "1 or more"),
            ("per_call", 1 <= self.per_call <= 50, "between 1 and 50"),
            ("shots", 0 <= self.shots <= 20, "between 0 and 20"),
            ("temperature", 0 <= self.temperature <= 2, "between 0 and 2"),
            ("top_p", 0 < self.top_p <= 1, "above 0 and at most 1"),
            ("max_tokens", self.max_tokens >= 16, "16 or more"),
            ("max_calls", self.max_calls >= 1, "1 or more"),
            ("max_tokens_total", self.max_tokens_total >= 1, "1 or more"),
            ("usd_per_1k_input_tokens", self.usd_per_1k_input_tokens >= 0, "0 or more"),
            ("usd_per_1k_output_tokens", self.usd_per_1k_output_tokens >= 0, "0 or more"),
        ) if not ok]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class EngagementConfig:
    schema_version: int = field(default=1, metadata=_help("Format version of this file; leave as is."))
    client: ClientSettings = field(default_factory=ClientSettings, metadata=_help("Who the work is for."))
    objective: str = field(default="", metadata=_help(
        "The business objective in one or two sentences (goes on the report cover).", multiline=True))
    task: TaskSettings = field(default_factory=TaskSettings, metadata=_help("The task the model performs."))
    data: DataSettings = field(default_factory=DataSettings, metadata=_help("Client data and how to split it."))
    base_model: BaseModelSettings = field(default_factory=BaseModelSettings, metadata=_help("The base model."))
    baseline: BaselineSettings = field(default_factory=BaselineSettings, metadata=_help("Baseline phase."))
    training: TrainingSettings = field(default_factory=TrainingSettings, metadata=_help("Training phase."))
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings, metadata=_help("Evaluation phase."))
    deployment: DeploymentSettings = field(default_factory=DeploymentSettings, metadata=_help("Deployment plan."))
    compliance: ComplianceSettings = field(default_factory=ComplianceSettings, metadata=_help("Compliance."))
    budget: BudgetSettings = field(default_factory=BudgetSettings, metadata=_help("Budget and hardware."))
    suitability: SuitabilitySettings = field(default_factory=SuitabilitySettings, metadata=_help(
        "Answers to the suitability questionnaire (phase 1)."))
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings, metadata=_help(
        "`ftkit augment`: teacher-drafted candidate examples for thin labels, filtered and reviewed by people."))


# ---------------------------------------------------------------------------------------------------
# Generic conversion: hand-written because it is ~80 lines and gives exactly the error style we want
# (dotted field, bad value, fix, all at once), which dacite/pydantic would need as much code to match.

def from_dict(cls, data: Any, where: str = "") -> tuple[Any, list[str]]:
    """Build dataclass ``cls`` from ``data``; returns (instance or None, problems)."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [f"{where or 'top level'}: expected a mapping of settings, got {_show(data)}"]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid settings: {', '.join(fields)}"
            problems.append(f"{_join(where, key)}: unknown setting{hint}")
    values = {}
    for name, fld in fields.items():
        if name not in data:
            continue
        value, errs = _convert(hints[name], data[name], _join(where, name), fld.metadata)
        problems += errs
        if not errs:
            values[name] = value
    if problems:
        return None, problems
    try:
        return cls(**values), []
    except (ValueError, TypeError) as err:
        return None, [f"{where or 'top level'}: {err}"]


def _convert(tp, value, where: str, meta) -> tuple[Any, list[str]]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None, []
        return _convert(next(a for a in args if a is not type(None)), value, where, meta)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin is list:
        if value is None:
            return [], []
        if not isinstance(value, list):
            return None, [f"{where}: expected a list, got {_show(value)}; write it as [a, b] or one '- item' per line"]
        out, problems = [], []
        for i, item in enumerate(value):
            conv, errs = _convert(args[0], item, f"{where}[{i}]", {"choices": meta.get("item_choices")})
            out.append(conv)
            problems += errs
        return out, problems
    if origin is dict or tp is dict:
        if value is None:
            return {}, []
        if not isinstance(value, dict):
            return None, [f"{where}: expected a mapping, got {_show(value)}"]
        return value, []
    return _scalar(tp, value, where, meta)


def _scalar(tp, value, where: str, meta) -> tuple[Any, list[str]]:
    if tp is bool:
        if isinstance(value, bool):
            return value, []
        return None, [f"{where}: expected true or false, got {_show(value)}"]
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, []
        return None, [f"{where}: expected a whole number, got {_show(value)}"]
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), []
        return None, [f"{where}: expected a number, got {_show(value)}"]
    if tp is str:
        if value is None:
            return "", []
        if not isinstance(value, str):
            return None, [f"{where}: expected text, got {_show(value)}; put it in quotes"]
        choices = meta.get("choices") if meta else None
        if choices and value not in choices:
            return None, [f"{where}: {value!r} is not one of {', '.join(choices)}"]
        # Free text ends up in shell comments, Modelfiles and reports: refuse control characters at the source
        # (only settings marked multiline keep line breaks and tabs); see ftkit/safe_values.py.
        problem = text_problem(value, multiline=bool(meta and meta.get("multiline")))
        if problem:
            return None, [f"{where}: {_show(value)} {problem}"]
        return value, []
    return value, []


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_config(data: Any, source: str = "engagement.yaml") -> EngagementConfig:
    config, problems = from_dict(EngagementConfig, data)
    if problems:
        raise ConfigError(problems, source=source)
    return config


def load_yaml(path: str | Path) -> Any:
    """Read YAML with a clear error that names the file and line of a syntax error."""
    from ftkit.yamlio import YAMLSyntaxError, safe_load  # YAML 1.2, the version ftkit writes

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"file not found; create it with `ftkit new`", source=str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8", source=str(path)) from None
    try:
        return safe_load(text)
    except YAMLSyntaxError as err:
        where = f"line {err.line}, column {err.column}: " if err.line else ""
        raise ConfigError(f"{where}YAML syntax error: {err.problem}; check indentation and quoting there",
                          source=str(path)) from None


def load_config(path: str | Path) -> EngagementConfig:
    config = parse_config(load_yaml(path), source=str(path))
    _anchor_chat_template(config, Path(path).parent)
    return config


def _anchor_chat_template(config, folder: Path) -> None:
    """A relative ``base_model.chat_template`` file path is relative to the engagement folder (where the yaml is)."""
    from ftkit.chat_plan import SHIPPED_TEMPLATES

    value = config.base_model.chat_template
    if value and value not in SHIPPED_TEMPLATES and not Path(value).is_absolute():
        config.base_model.chat_template = str((folder / value).resolve())


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def iter_fields(cls=EngagementConfig, prefix: str = ""):
    """Yield (dotted name, field) for every leaf setting; used by tests and docs."""
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        name = _join(prefix, fld.name)
        tp = hints[fld.name]
        if dataclasses.is_dataclass(tp):
            yield name, fld
            yield from iter_fields(tp, name)
        else:
            yield name, fld
