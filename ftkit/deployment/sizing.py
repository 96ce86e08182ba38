"""Serving memory and throughput: weights by precision + KV cache, a GPU choice, and expected speed.

Memory (GiB = 2**30 bytes):
    weights  = parameters x bytes per weight (bf16/fp16 2, int8 1, int4 0.5 + group scales)
    KV cache = 2 (K and V) x layers x kv_heads x head_dim x 2 bytes (fp16 cache) x context x concurrency
    overhead = a fixed 1.5 GiB for the CUDA context, activations and the sampler's workspace
A GPU "fits" when the total is at most 90 % of its memory (vLLM's default ``gpu_memory_utilization``);
larger models are split over 2, 4 or 8 GPUs (tensor parallel).

Throughput is a roofline estimate, stated with its assumptions: decoding reads every weight plus the
batch's KV cache once per step (memory-bound, at 60 % of peak bandwidth); prefill costs 2 x parameters FLOPs
per input token (compute-bound, at 40 % of peak bf16 FLOPs).

>>> shape = ModelShape(parameters=1_000_000_000, layers=16, kv_heads=8, head_dim=64)
>>> shape.kv_bytes_per_token
32768
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftkit.errors import ConfigError, FtkitError

GIB = 1024 ** 3
# Bytes per weight. int4 (AWQ/GPTQ, group size 128) also stores an fp16 scale and zero point per group of 128.
BYTES_PER_WEIGHT = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5 + 4 / 128}
KV_BYTES_PER_VALUE = 2  # the KV cache stays fp16/bf16 even when weights are quantised
OVERHEAD_GIB = 1.5
MEMORY_UTILISATION = 0.90
TENSOR_PARALLEL = (1, 2, 4, 8)
DECODE_BANDWIDTH_EFFICIENCY = 0.60
MIN_DECODE_STEP_S = 0.003  # scheduler + kernel-launch floor per decoding step (CUDA graphs on); small models hit it
PREFILL_FLOPS_EFFICIENCY = 0.40
HOURS_PER_MONTH = 730.0  # 365 x 24 / 12


@dataclass(frozen=True)
class ModelShape:
    """What sizing needs from a model's config.json: parameters, and the KV-cache geometry."""

    parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    max_context: int = 0

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache per token of context: 2 (K, V) x layers x kv_heads x head_dim x 2 bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES_PER_VALUE

    @classmethod
    def from_config(cls, config: dict, parameters: int | None = None) -> "ModelShape":
        """From a transformers config dict; ``parameters`` estimated from the shapes when not given."""
        text = config.get("text_config") or config  # multimodal configs nest the language model's
        try:
            hidden = int(text["hidden_size"])
            heads = int(text["num_attention_heads"])
            layers = int(text["num_hidden_layers"])
        except (KeyError, TypeError, ValueError) as err:
            raise FtkitError(f"The model's config.json lacks {err} (needed for sizing); is it a decoder-only "
                             f"transformers model?") from None
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or hidden // heads)
        if parameters is None:
            parameters = estimate_parameters(text)
        return cls(int(parameters), layers, kv_heads, head_dim, int(text.get("max_position_embeddings") or 0))


def estimate_parameters(config: dict) -> int:
    """Rough count from the shapes (attention + gated MLP per layer + embeddings), when weights are absent.

    >>> estimate_parameters({"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
    ...                      "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 2048})
    204800
    """
    hidden, heads, layers = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim  # q, o + k, v
    mlp = 3 * hidden * config.get("intermediate_size", 4 * hidden)  # gate, up, down
    embeddings = config.get("vocab_size", 32000) * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    return int(layers * (attention + mlp) + embeddings)


def model_shape_from_folder(folder: str | Path) -> ModelShape:
    """Shape of a local model folder; parameters read from the safetensors headers (no weights loaded)."""
    from ftkit.models.describe import safetensors_parameter_count

    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FtkitError(f"Cannot read {folder / 'config.json'} for sizing ({err}).") from None
    counted = safetensors_parameter_count(folder)
    return ModelShape.from_config(config, counted or None)


@dataclass(frozen=True)
class Gpu:
    """One row of the GPU table in templates/serving_prices.yaml."""

    name: str
    memory_gib: float
    bandwidth_gb_s: float  # peak memory bandwidth, 1e9 bytes/s
    bf16_tflops: float  # dense (no sparsity) peak
    hourly_usd: float
    provider: str = ""
    instance: str = ""
    as_of: str = ""
    source: str = ""


@dataclass(frozen=True)
class Workload:
    """What production asks of the model: tokens per request, context, peak concurrency, monthly volume."""

    input_tokens: float
    output_tokens: float
    context_length: int
    concurrency: int
    monthly_requests: int


@dataclass(frozen=True)
class MemoryPlan:
    dtype: str
    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    kv_bytes_per_token: int

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.overhead_gib

    def to_dict(self) -> dict:
        return {**asdict(self), "total_gib": self.total_gib}


def memory_plan(shape: ModelShape, dtype: str, context_length: int, concurrency: int) -> MemoryPlan:
    """Serving memory for ``concurrency`` sequences of ``context_length`` tokens each."""
    if dtype not in BYTES_PER_WEIGHT:
        raise ConfigError(f"deployment.serving_dtype: {dtype!r} is not one of {', '.join(BYTES_PER_WEIGHT)}")
    weights = shape.parameters * BYTES_PER_WEIGHT[dtype] / GIB
    kv = shape.kv_bytes_per_token * context_length * concurrency / GIB
    return MemoryPlan(dtype, weights, kv, OVERHEAD_GIB, shape.kv_bytes_per_token)


def gpus_needed(total_gib: float, gpu: Gpu) -> int | None:
    """Smallest tensor-parallel degree (1, 2, 4, 8) whose usable memory holds ``total_gib``; None if none.

    >>> gpus_needed(30.0, Gpu("x", 24, 300, 100, 1.0))
    2
    """
    usable = gpu.memory_gib * MEMORY_UTILISATION
    return next((n for n in TENSOR_PARALLEL if total_gib <= n * usable), None)


@dataclass(frozen=True)
class Throughput:
    """Expected speed of one replica (``n_gpus`` GPUs) at the workload's concurrency."""

    decode_step_s: float  # one decoding step for the whole batch
    decode_tokens_per_s: float  # all sequences together
    per_stream_tokens_per_s: float  # what one user sees
    prefill_tokens_per_s: float
    gpu_seconds_per_request: float  # replica time one request occupies at full batch
    requests_per_hour: float  # one replica, fully used
    latency_s: float  # prefill + all decoding steps of one request under peak load
    assumptions: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {**asdict(self), "assumptions": list(self.assumptions)}


def throughput(shape: ModelShape, dtype: str, gpu: Gpu, n_gpus: int, workload: Workload) -> Throughput:
    """Roofline estimate (see module docstring); tensor parallel scales bandwidth and FLOPs by ``n_gpus``."""
    batch = max(1, workload.concurrency)
    weight_bytes = shape.parameters * BYTES_PER_WEIGHT[dtype]
    mean_context = workload.input_tokens + workload.output_tokens / 2  # tokens in cache, averaged over decoding
    kv_read = batch * mean_context * shape.kv_bytes_per_token
    step_s = max(MIN_DECODE_STEP_S,
                 (weight_bytes + kv_read) / (n_gpus * gpu.bandwidth_gb_s * 1e9 * DECODE_BANDWIDTH_EFFICIENCY))
    prefill_s_per_token = 2 * shape.parameters / (n_gpus * gpu.bf16_tflops * 1e12 * PREFILL_FLOPS_EFFICIENCY)
    per_request = workload.input_tokens * prefill_s_per_token + workload.output_tokens * step_s / batch
    assumptions = (
        f"decoding is memory-bound: each step reads all weights and the batch's KV cache at "
        f"{DECODE_BANDWIDTH_EFFICIENCY:.0%} of the GPU's peak bandwidth ({gpu.bandwidth_gb_s:g} GB/s), and takes at "
        f"least {MIN_DECODE_STEP_S * 1000:g} ms (engine overhead, which dominates for small models)",
        f"prefill costs 2 x parameters FLOPs per input token at {PREFILL_FLOPS_EFFICIENCY:.0%} of peak bf16 "
        f"({gpu.bf16_tflops:g} TFLOPS)",
        f"{batch} requests decode together (peak concurrency), each {workload.input_tokens:.0f} input and "
        f"{workload.output_tokens:.0f} output tokens on average",
        "continuous batching (vLLM/TGI); no speculative decoding; tensor parallel scales linearly "
        "(communication ignored)",
    )
    return Throughput(step_s, batch / step_s, 1 / step_s, 1 / prefill_s_per_token, per_request,
                      3600 / per_request, workload.input_tokens * prefill_s_per_token + workload.output_tokens * step_s,
                      assumptions)


@dataclass(frozen=True)
class GpuOption:
    gpu: Gpu
    n_gpus: int
    throughput: Throughput

    @property
    def hourly_usd(self) -> float:
        return self.n_gpus * self.gpu.hourly_usd

    @property
    def label(self) -> str:
        return f"{self.n_gpus} x {self.gpu.name}" if self.n_gpus > 1 else self.gpu.name


@dataclass
class SizingPlan:
    memory: MemoryPlan
    workload: Workload
    options: list[GpuOption]  # every GPU that fits, cheapest per hour first
    chosen: GpuOption
    too_small: list[str]  # GPUs that cannot hold the model even 8-way

    def to_dict(self) -> dict:
        return {"memory": self.memory.to_dict(), "workload": asdict(self.workload),
                "gpu": self.chosen.gpu.name, "n_gpus": self.chosen.n_gpus, "gpu_label": self.chosen.label,
                "hourly_usd": self.chosen.hourly_usd, "throughput": self.chosen.throughput.to_dict(),
                "gpu_source": {"provider": self.chosen.gpu.provider, "instance": self.chosen.gpu.instance,
                               "as_of": self.chosen.gpu.as_of, "source": self.chosen.gpu.source},
                "options": [option_row(o) for o in self.options], "too_small": self.too_small}


def option_row(option: GpuOption) -> dict:
    t = option.throughput
    return {"gpu": option.label, "usd_per_hour": round(option.hourly_usd, 3),
            "requests_per_hour": round(t.requests_per_hour), "tokens_per_s_per_user": round(t.per_stream_tokens_per_s, 1),
            "latency_s": round(t.latency_s, 2)}


def size_deployment(shape: ModelShape, dtype: str, workload: Workload, gpus: list[Gpu], preferred: str = "") -> SizingPlan:
    """Memory plan and GPU choice: ``preferred`` (by name) if given, else the cheapest per hour that fits."""
    memory = memory_plan(shape, dtype, workload.context_length, workload.concurrency)
    options, too_small = [], []
    for gpu in gpus:
        n = gpus_needed(memory.total_gib, gpu)
        if n is None:
            too_small.append(gpu.name)
            continue
        options.append(GpuOption(gpu, n, throughput(shape, dtype, gpu, n, workload)))
    if not options:
        raise FtkitError(f"The model needs {memory.total_gib:.1f} GiB to serve ({dtype}, context "
                         f"{workload.context_length}, concurrency {workload.concurrency}); no GPU in the price table holds "
                         f"it even 8-way. Lower deployment.peak_concurrency or context_length, or set serving_dtype: int4.")
    options.sort(key=lambda o: (o.hourly_usd, -o.throughput.requests_per_hour))
    chosen = options[0]
    if preferred:
        named = {o.gpu.name.lower(): o for o in options}
        if preferred.lower() not in named:
            valid = ", ".join(o.gpu.name for o in options)
            raise ConfigError(f"deployment.gpu: {preferred!r} is not a GPU in the price table that fits this model; "
                              f"choose one of: {valid} (or leave it empty for the cheapest)")
        chosen = named[preferred.lower()]
    return SizingPlan(memory, workload, options, chosen, too_small)


def replicas_needed(monthly_requests: float, option: GpuOption, hours: float = HOURS_PER_MONTH) -> int:
    """Replicas (each ``option.n_gpus`` GPUs) to serve the monthly volume spread over ``hours``, at least 1.

    >>> t = Throughput(0.01, 100, 100, 1000, 1.0, 3600.0, 1.0)
    >>> replicas_needed(3600 * 730 * 2.5, GpuOption(Gpu("x", 24, 300, 100, 1.0), 1, t))
    3
    """
    busy_hours = monthly_requests / option.throughput.requests_per_hour
    return max(1, math.ceil(busy_hours / hours - 1e-9))


def serving_context_length(config, shape: ModelShape) -> int:
    """deployment.context_length, else training's, else the data audit's max_seq_length; capped by the model."""
    wanted = config.deployment.context_length or config.training.max_seq_length or config.data.max_seq_length
    return min(wanted, shape.max_context) if shape.max_context else wanted


def workload_from_records(config, tokenizer, records: list[dict], context_length: int, sample: int = 500) -> Workload:
    """Tokens per request as served: the rendered zero-shot prompt (system prompt + template + user turns)
    and the answer plus its end-of-turn token, averaged over up to ``sample`` training records; settings in
    ``deployment`` (input/output_tokens_per_request) override the measured means when > 0."""
    from ftkit.prompting import PromptSpec, build_prompts

    dep = config.deployment
    prompts = build_prompts(records[:sample], PromptSpec(system_prompt=config.task.system_prompt), tokenizer)
    enc = tokenizer([p.text for p in prompts] + [p.reference for p in prompts], add_special_tokens=False)["input_ids"]
    n = max(1, len(prompts))
    mean_in = sum(len(x) for x in enc[:len(prompts)]) / n
    mean_out = sum(len(x) for x in enc[len(prompts):]) / n + 1  # + the end-of-turn token
    return Workload(float(dep.input_tokens_per_request or mean_in), float(dep.output_tokens_per_request or mean_out),
                    context_length, dep.peak_concurrency, dep.monthly_requests)


def model_shape(model: str | Path, revision: str = "") -> ModelShape:
    """Shape of a local model folder (parameters from its safetensors), else of a hub id from its config
    (parameters estimated); the hub config must be cached locally or reachable."""
    if Path(model).is_dir():
        return model_shape_from_folder(model)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model), revision=revision or None)
    except (OSError, ValueError) as err:
        raise FtkitError(f"Cannot read the config of {model} for sizing ({str(err).splitlines()[0][:160]}).") from None
    return ModelShape.from_config(config.to_dict())


def memory_text(gib: float) -> str:
    """GiB with two decimals, or MiB below 0.1 GiB (small models would read as '0.00 GiB').

    >>> memory_text(1.5), memory_text(0.0123)
    ('1.50 GiB', '12.6 MiB')
    """
    return f"{gib:.2f} GiB" if gib >= 0.1 else f"{gib * 1024:.1f} MiB"


def sizing_sentence(plan: SizingPlan) -> str:
    """The sizing finding in one sentence, with the numbers it rests on."""
    m, o, t = plan.memory, plan.chosen, plan.chosen.throughput
    usable = o.n_gpus * o.gpu.memory_gib * MEMORY_UTILISATION
    return (f"Serve on {o.label} (${o.hourly_usd:.2f}/h): the model needs {m.total_gib:.1f} GiB ({memory_text(m.weights_gib)} "
            f"{m.dtype} weights + {memory_text(m.kv_cache_gib)} KV cache for {plan.workload.concurrency} x "
            f"{plan.workload.context_length} tokens + {m.overhead_gib:g} GiB overhead) of {usable:.1f} GiB usable; "
            f"about {t.requests_per_hour:,.0f} requests per hour per replica, {t.latency_s:.2f} s per request and "
            f"{t.per_stream_tokens_per_s:.0f} tokens/s per user at peak.")
