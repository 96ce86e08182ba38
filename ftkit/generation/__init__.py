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

__all__ = ["BACKENDS", "GenerationRun", "Prediction", "derive_max_new_tokens", "generate_for_config",
           "generate_local", "generate_openai", "read_predictions", "reference_token_lengths", "stop_token_ids",
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
    from ftkit.models import load_model_and_tokenizer
    from ftkit.models.describe import describe_model

    from ftkit.chat_plan import fit_embeddings, prepare_tokenizer
    from ftkit.generation.local import greedy_overrides

    bm = config.base_model
    loaded = load_model_and_tokenizer(model_id, bm.revision if model_id == bm.id else "", bm.trust_remote_code)
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


BACKENDS: dict[str, Callable[..., GenerationRun]] = {"local": _local, "openai": _openai}


def generate_for_config(config, records: list[dict], spec: PromptSpec, length_records: list[dict],
                        model_id: str = "", progress: bool = True) -> GenerationRun:
    """Generate answers for ``records`` with the engagement's backend and base model (or ``model_id``).

    ``length_records`` (train + validation) set ``max_new_tokens`` when ``baseline.max_new_tokens`` is 0.
    """
    backend = config.baseline.backend
    if backend not in BACKENDS:
        raise ConfigError(f"baseline.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    return BACKENDS[backend](config, model_id or config.base_model.id, records, spec, length_records, progress)
