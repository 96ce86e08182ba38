"""Will training fit? A memory estimate from the model's config.json, checked before anything is loaded.

Parts (bytes), for P parameters, T tokens per micro-batch (batch_size x max_seq_length) and compute dtype size b:

- **weights**: P x b (fp32 on CPU: 4, bf16 on GPU: 2); QLoRA stores the linear layers in 4-bit NF4
  (0.5 byte per weight + one fp32 absmax per 64 weights) and keeps embeddings and norms in b;
- **gradients**: trainable parameters x 4 (peft keeps adapters in fp32; full fine-tuning: x b);
- **optimizer**: AdamW's two moments, trainable x 8 (fp32);
- **activations**: what autograd keeps for the backward pass, per token and layer
  ~(6 h + 2 kv + 4 i) x b for a Llama-style block (norm inputs, q/k/v, attention output, the SwiGLU
  gate/up/product; h = hidden, kv = key/value width, i = MLP width), plus 3 x vocabulary x 4 bytes for every
  token whose logits are computed (logits, their fp32 copy, the softmax gradient). Gradient checkpointing keeps
  only each layer's input (h x b per token and layer) plus one layer's activations;
- **overhead**: 20 % for allocator slack and temporaries, plus a fixed runtime (CUDA context / Python + torch).

Sharding over N processes (``shard_estimate``): DDP keeps everything on every device; DeepSpeed ZeRO-2 divides
gradients and optimizer states by N; ZeRO-3 and FSDP full shard divide weights too, and add the working set of
gathered weights (the layer being computed plus the one prefetched: 2 x one decoder layer in full). Activations
are per process (each trains its own micro-batch) and are not divided.

Checked against measured peaks: SmolLM2-135M LoRA on CPU (2.55 GB measured, 2.6 GB estimated, 512 tokens per
micro-batch) and a 1.1B Llama LoRA in bf16 on an H100 (7.46 GB measured, 7.55 GB estimated, 2,048 tokens). It is
an estimate, so a refusal states the numbers and the next setting that fits instead of guessing silently.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import PhaseFailed

GB = 1024 ** 3
OVERHEAD_SHARE = 0.20
RUNTIME_GB = {"cpu": 1.2, "cuda": 1.0, "mps": 1.0}  # Python + torch + transformers + tokenizer (CPU), or the CUDA context
NF4_BYTES_PER_WEIGHT = 0.5 + 4 / 64  # 4 bits + one fp32 absmax per block of 64
ADAM_BYTES = 8  # two fp32 moments per trainable parameter
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """The dimensions that decide memory, read from config.json (Llama-style decoder)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: dict) -> "ModelShape":
        cfg = config.get("text_config", config)  # multimodal configs nest the language model
        h, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        return cls(h, int(cfg["num_hidden_layers"]), heads, int(cfg.get("num_key_value_heads") or heads),
                   int(cfg.get("head_dim") or h // heads), int(cfg.get("intermediate_size") or 4 * h),
                   int(cfg["vocab_size"]), bool(cfg.get("tie_word_embeddings", False)))

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ModelShape":
        return cls.from_config(json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")))

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one block."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def params(self) -> int:
        norms = (2 * self.layers + 1) * self.hidden
        return self.linear_params + self.embedding_params + norms

    def lora_params(self, r: int, target_modules: tuple[str, ...] = ()) -> int:
        """Trainable LoRA parameters: r x (in + out) per adapted linear layer; () = all linear layers."""
        shapes = self.linear_shapes()
        names = [n for n in shapes if not target_modules or n in target_modules]
        return self.layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in names)


@dataclass(frozen=True)
class MemoryEstimate:
    """GB per part and in total; ``trainable`` and ``params`` are parameter counts."""

    method: str
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    overhead_gb: float
    params: int
    trainable: int
    tokens_per_batch: int
    sharding: str = "none"  # none | zero2 | full (see shard_estimate)
    world_size: int = 1  # processes the states are sharded over

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.gradients_gb + self.optimizer_gb + self.activations_gb + self.overhead_gb

    def to_dict(self) -> dict:
        out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}
        out["total_gb"] = round(self.total_gb, 3)
        return out

    def rows(self) -> list[dict]:
        return [{"part": p, "GB": round(getattr(self, f"{p}_gb"), 3)} for p in
                ("weights", "gradients", "optimizer", "activations", "overhead")] + \
               [{"part": "total", "GB": round(self.total_gb, 3)}]


def estimate_memory(shape: ModelShape, method: str, batch_tokens: int, logit_tokens: int | None = None,
                    dtype_bytes: int = 4, gradient_checkpointing: bool = False, lora_r: int = 16,
                    target_modules: tuple[str, ...] = (), device: str = "cpu") -> MemoryEstimate:
    """Estimate peak training memory. ``batch_tokens``: tokens in one micro-batch per process;
    ``logit_tokens``: tokens whose logits are computed (default all)."""
    logit_tokens = batch_tokens if logit_tokens is None else logit_tokens
    b = dtype_bytes
    if method == "qlora":
        weights = shape.linear_params * NF4_BYTES_PER_WEIGHT + (shape.params - shape.linear_params) * b
    else:
        weights = shape.params * b
    trainable = shape.params if method == "full" else shape.lora_params(lora_r, target_modules)
    grads = trainable * (b if method == "full" else 4)
    optim = trainable * ADAM_BYTES
    per_token_layer = (6 * shape.hidden + 2 * shape.kv_heads * shape.head_dim + 4 * shape.intermediate) * b
    if gradient_checkpointing:
        acts = batch_tokens * (shape.layers * shape.hidden * b + per_token_layer)
    else:
        acts = batch_tokens * shape.layers * per_token_layer
    acts += logit_tokens * shape.vocab * 4 * 3
    core = weights + grads + optim + acts
    overhead = core * OVERHEAD_SHARE + RUNTIME_GB.get(device, 1.0) * GB
    return MemoryEstimate(method, weights / GB, grads / GB, optim / GB, acts / GB, overhead / GB,
                          shape.params, trainable, batch_tokens)


SHARDED_PARTS = {"none": (), "zero2": ("gradients", "optimizer"), "full": ("weights", "gradients", "optimizer")}


def shard_estimate(estimate: MemoryEstimate, sharding: str, world_size: int, shape: ModelShape,
                   dtype_bytes: int = 4) -> MemoryEstimate:
    """The per-process estimate when ``sharding`` (none | zero2 | full) splits states over ``world_size``.

    The 20 % overhead share is recomputed on the sharded parts; the fixed runtime part is per process.
    """
    if sharding not in SHARDED_PARTS:
        raise ValueError(f"sharding must be one of {', '.join(SHARDED_PARTS)}, got {sharding!r}")
    if sharding == "none" or world_size <= 1:
        return dataclasses.replace(estimate, sharding=sharding, world_size=max(1, world_size))
    parts = {p: getattr(estimate, f"{p}_gb") for p in ("weights", "gradients", "optimizer", "activations")}
    for name in SHARDED_PARTS[sharding]:
        parts[name] /= world_size
    if sharding == "full":  # gathered weights: the layer computing now and the one prefetched, in full
        per_layer = (shape.linear_params / shape.layers + 2 * shape.hidden) * dtype_bytes
        parts["weights"] += 2 * per_layer / GB
    core = sum(parts.values())
    runtime = estimate.overhead_gb - (sum(getattr(estimate, f"{p}_gb") for p in parts) * OVERHEAD_SHARE)
    return dataclasses.replace(estimate, weights_gb=parts["weights"], gradients_gb=parts["gradients"],
                               optimizer_gb=parts["optimizer"], overhead_gb=core * OVERHEAD_SHARE + runtime,
                               sharding=sharding, world_size=world_size)


def available_memory_gb(device: str, limit_gb: float = 0.0) -> tuple[float, str]:
    """(GB training may use, where that number comes from). ``limit_gb`` > 0 wins (training.memory_limit_gb)."""
    if limit_gb > 0:
        return limit_gb, "training.memory_limit_gb"
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        return free / GB, f"free memory of {torch.cuda.get_device_name()} ({total / GB:.1f} GB total)"
    return _host_available_gb(), "available host memory (MemAvailable)"


def _host_available_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().available / GB
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB


def suggest_setting(fits, settings) -> tuple[str, object] | None:
    """The first change that makes ``fits(settings) -> bool`` true, as (description, new settings).

    Tried in order of least harm: halve the batch (doubling gradient accumulation keeps the effective batch),
    gradient checkpointing, QLoRA instead of LoRA, then a shorter max_seq_length.
    """
    candidates = []
    if settings.world_size > 1 and settings.distributed in ("ddp", "deepspeed") and \
            not (settings.distributed == "deepspeed" and settings.zero_stage == 3):
        candidates.append((f"training.distributed: fsdp (shards weights, gradients and optimizer states over the "
                           f"{settings.world_size} processes)", settings.replace(distributed="fsdp")))
    batch, accum = settings.batch_size, settings.gradient_accumulation_steps
    while batch > 1:
        batch, accum = max(1, batch // 2), accum * 2
        candidates.append((f"training.batch_size: {batch} and gradient_accumulation_steps: {accum} (same effective "
                           f"batch)", settings.replace(batch_size=batch, gradient_accumulation_steps=accum)))
    effective = settings.batch_size * settings.gradient_accumulation_steps
    low = settings.replace(batch_size=1, gradient_accumulation_steps=effective)
    if not settings.gradient_checkpointing:
        candidates.append(("training.gradient_checkpointing: true with batch_size: 1",
                           low.replace(gradient_checkpointing=True)))
        low = low.replace(gradient_checkpointing=True)
    if settings.method == "lora":
        candidates.append(("training.method: qlora (4-bit base) with batch_size: 1 and gradient checkpointing",
                           low.replace(method="qlora")))
    seq = settings.max_seq_length
    while seq > 256:
        seq //= 2
        candidates.append((f"training.max_seq_length: {seq} (longer examples are dropped) with batch_size: 1",
                           low.replace(max_seq_length=seq)))
    return next(((text, s) for text, s in candidates if fits(s)), None)


def check_fits(estimate: MemoryEstimate, available_gb: float, where: str, suggestion: str | None,
               processes: int = 1) -> None:
    """Raise PhaseFailed naming the numbers and the suggested setting when the estimate exceeds the memory.

    ``processes``: how many training processes share this memory (CPU DDP processes share the host's).
    """
    total = estimate.total_gb * processes
    if total <= available_gb:
        return
    parts = ", ".join(f"{r['part']} {r['GB']:.2f}" for r in estimate.rows()[:-1])
    per = f" x {processes} processes" if processes > 1 else ""
    if estimate.sharding != "none" and estimate.world_size > 1:
        what = {"zero2": "gradients and optimizer states", "full": "weights, gradients and optimizer states"}
        per += f"; {what[estimate.sharding]} sharded over {estimate.world_size} processes"
    fix = f"Set {suggestion} in engagement.yaml and re-run." if suggestion else \
        "No smaller setting fits: use a machine with more memory or a smaller base model."
    raise PhaseFailed(f"Training will not fit in memory: the estimate for {estimate.method} is {total:.2f} GB "
                      f"({parts} GB{per}) but only {available_gb:.2f} GB are available ({where}). {fix}")
