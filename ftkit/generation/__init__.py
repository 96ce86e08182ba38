"""Generate predictions for the test split: locally (transformers, batched) or over HTTP (OpenAI-compatible).

Every backend returns the same ``Prediction`` rows and writes the same ``predictions.jsonl``, so metrics,
the evaluation phase and reports never care where a prediction came from. ``BACKENDS`` maps
``baseline.backend`` to a function; ``generate_for_config`` is what the baseline notebook calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ftkit.errors import ConfigError
from ftkit.generation.local import generate_local, stop_token_ids
from ftkit.generation.predictions import (Prediction, derive_max_new_tokens, read_predictions, throughput,
                                          write_predictions)
from ftkit.generation.remote import generate_openai
from ftkit.prompting import PromptItem, PromptSpec, build_prompts, split_record

__all__ = ["BACKENDS", "RENDERED_BACKENDS", "GenerationRun", "Prediction", "derive_max_new_tokens", "generate_for_config",
           "generate_local", "generate_openai", "generate_with", "read_predictions", "reference_token_lengths", "stop_token_ids",
           "throughput", "write_predictions"]

CHARS_PER_TOKEN = 4  # rough English average, used only when no tokenizer is at hand (HTTP backends)


@dataclass
class GenerationRun:
    """What one backend run produced, plus what the report must show about it."""

    predictions: list[Prediction]
    prompts: list[PromptItem]
    model: dict  # describe_model(...) for local models; endpoint and model name for HTTP
    chat_template: str
    max_new_tokens: int
    load_seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def reference_token_lengths(records: list[dict], tokenizer=None) -> list[int]:
    """Token count of each record's reference answer (estimated at 4 characters per token without a tokenizer)."""
    refs = [split_record(r)[1] for r in records]
    if tokenizer is None:
        return [math.ceil(len(r) / CHARS_PER_TOKEN) for r in refs]
    return [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in refs]


def _local(config, model_id: str, records: list[dict], spec: PromptSpec, length_records: list[dict],
           progress: bool) -> GenerationRun:
    from ftkit.models import base_model_source, load_model_and_tokenizer
    from ftkit.models.describe import describe_model

    from ftkit.chat_plan import fit_embeddings, prepare_tokenizer
    from ftkit.generation.local import greedy_overrides

    loaded = load_model_and_tokenizer(base_model_source(config.base_model, model_id))
    plan = prepare_tokenizer(loaded.tokenizer, config)  # the engagement's template, as every phase renders it
    fit_embeddings(loaded.model, loaded.tokenizer)
    prompts = build_prompts(records, spec, loaded.tokenizer)
    max_new = derive_max_new_tokens(config.baseline.max_new_tokens,
                                    reference_token_lengths(length_records, loaded.tokenizer))
    preds = generate_local(loaded.model, loaded.tokenizer, prompts, max_new, config.baseline.batch_size,
                           progress=progress)
    described = {**describe_model(loaded.source), "device": loaded.device, "dtype": loaded.dtype,
                 "chat_plan": plan.to_dict(), "generation_config_overridden": greedy_overrides(loaded.model)[1]}
    return GenerationRun(preds, prompts, described, loaded.tokenizer.chat_template or "", max_new,
                         loaded.load_seconds, extra={"chat_plan": plan.to_dict()})


def _openai(config, model_id: str, records: list[dict], spec: PromptSpec, length_records: list[dict],
            progress: bool) -> GenerationRun:
    from ftkit.openai_backend import OpenAIChatClient

    client = OpenAIChatClient.from_settings(config.baseline.openai)
    prompts = build_prompts(records, spec, None)  # the server applies its own chat template
    max_new = derive_max_new_tokens(config.baseline.max_new_tokens, reference_token_lengths(length_records))
    preds = generate_openai(client, prompts, max_new, progress=progress)
    described = {"id": client.model, "name": client.model, "kind": "openai", "path": client.base_url, "revision": "",
                 "is_tiny_random": False, "api_key_env": client.api_key_env}
    return GenerationRun(preds, prompts, described, "(applied by the endpoint)", max_new)


def _vllm(config, model_id: str, records: list[dict], spec: PromptSpec, length_records: list[dict],
          progress: bool) -> GenerationRun:
    """vLLM on this GPU with the prompts, stops and greedy decoding of ``_local``. A sample is answered with
    transformers first (then freed) and compared; the comparison goes with the model description, so it lands in
    the phase's results and manifest."""
    from ftkit.generation.vllm_backend import VLLMEngine, compare_answers, require_vllm
    from ftkit.models import base_model_source, load_tokenizer
    from ftkit.models.describe import describe_model

    require_vllm()
    source = base_model_source(config.base_model, model_id)
    tokenizer = load_tokenizer(source)
    prompts = build_prompts(records, spec, tokenizer)
    max_new = derive_max_new_tokens(config.baseline.max_new_tokens, reference_token_lengths(length_records, tokenizer))
    sample = prompts[:max(0, config.baseline.vllm_check_examples)]
    reference = _transformers_sample(source, sample, max_new, config.baseline.batch_size) if sample else []
    engine = VLLMEngine(source.path, tokenizer, source.revision, source.trust_remote_code)
    preds = engine.generate(prompts, max_new)
    described = {**describe_model(source), "device": "cuda", "dtype": "auto", **engine.describe()}
    if sample:
        ids = {s.id for s in sample}
        described["backend_check"] = compare_answers([p for p in preds if p.id in ids], reference)
    return GenerationRun(preds, prompts, described, tokenizer.chat_template or "", max_new,
                         engine.load_seconds, {"backend_check": described.get("backend_check")})


def _transformers_sample(source, prompts, max_new, batch_size) -> list[Prediction]:
    """Answers of ``prompts`` with transformers, the model freed afterwards (vLLM then takes the GPU)."""
    import gc

    import torch

    from ftkit.models import load_model_and_tokenizer

    loaded = load_model_and_tokenizer(source)
    preds = generate_local(loaded.model, loaded.tokenizer, prompts, max_new, batch_size, progress=False)
    del loaded
    gc.collect()
    torch.cuda.empty_cache()
    return preds


def generate_with(backend: str, model, tokenizer, prompts: list[PromptItem], max_new_tokens: int,
                  batch_size: int = 16, progress: bool = True, engine=None, adapter: bool = True) -> list[Prediction]:
    """The evaluation's generation on the baseline's backend: ``engine`` (a ``vllm_backend.VLLMEngine``, e.g.
    ``engine_for_finetuned``) for vllm, with or without its adapter; else ``generate_local`` on ``model``."""
    if backend == "vllm":
        if engine is None:
            raise ValueError("backend vllm needs engine=vllm_backend.engine_for_finetuned(config, finetuned)")
        return engine.generate(prompts, max_new_tokens, adapter=adapter)
    return generate_local(model, tokenizer, prompts, max_new_tokens, batch_size, progress=progress)


BACKENDS: dict[str, Callable[..., GenerationRun]] = {"local": _local, "openai": _openai, "vllm": _vllm}
# Backends whose prompts ftkit renders with the model's chat template (hashed over that text); the others send
# messages and the endpoint renders them.
RENDERED_BACKENDS = ("local", "vllm")


def generate_for_config(config, records: list[dict], spec: PromptSpec, length_records: list[dict],
                        model_id: str = "", progress: bool = True) -> GenerationRun:
    """Generate answers for ``records`` with the engagement's backend and base model (or ``model_id``).

    ``length_records`` (train + validation) set ``max_new_tokens`` when ``baseline.max_new_tokens`` is 0.
    """
    backend = config.baseline.backend
    if backend not in BACKENDS:
        raise ConfigError(f"baseline.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    return BACKENDS[backend](config, model_id or config.base_model.id, records, spec, length_records, progress)
