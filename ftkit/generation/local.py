"""Batched local generation with transformers.

Prompts of similar length are batched together (sorted by token count, longest first so an out-of-memory
shows on the first batch), padded on the left (a decoder-only model continues from the last position, so
the real tokens must end there), decoded greedily by default, and stopped at EOS or any end-of-turn token
the tokenizer knows. pad == eos in many chat models (SmolLM2): a finished row is padded with EOS, so
output length is counted up to the first stop token, never by comparing with the pad id.

Prefix caching: every prompt of a run starts with the same system prompt and few-shot examples (often
80 % of its tokens). That shared prefix is run through the model once; each batch then reuses its key/value
cache and only processes the rest. Rows are laid out ``[prefix | padding | own tokens]`` with the padding
masked out; positions come from the attention mask, so each row sees exactly the positions it would see
unpadded. Greedy answers are identical with and without it (a test checks this).
"""
from __future__ import annotations

import copy
import time

from ftkit.generation.predictions import Prediction
from ftkit.prompting import PromptItem

MIN_PREFIX_TOKENS = 16  # below this, caching saves less than the cache copies cost

# End-of-turn markers of common chat templates (ChatML, Llama 3, Gemma, Phi-3); used when they are special tokens.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """EOS ids from the generation config and tokenizer, plus known end-of-turn special tokens in the vocab."""
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    special |= set(getattr(tokenizer, "added_tokens_encoder", {}))
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab and t in special)
    if getattr(tokenizer, "chat_template", None):
        from ftkit.chat_format import template_info

        eot = template_info(tokenizer).end_of_turn_id  # whatever this template ends a turn with (from its render)
        if eot is not None:
            ids.add(eot)
    return sorted(ids)


# generation_config settings that change what greedy decoding picks, and the value that turns each off. A model's
# own generation_config.json (Qwen2.5: repetition_penalty 1.05) would otherwise apply silently to "greedy" scoring.
GREEDY_NEUTRAL = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                  "num_beams": 1, "min_length": 0, "min_new_tokens": None, "bad_words_ids": None,
                  "suppress_tokens": None, "begin_suppress_tokens": None, "forced_bos_token_id": None,
                  "forced_eos_token_id": None, "sequence_bias": None, "temperature": None, "top_p": None,
                  "top_k": None, "typical_p": None, "min_p": None, "epsilon_cutoff": None, "eta_cutoff": None}
_SAMPLING_ONLY = {"temperature", "top_p", "top_k", "typical_p", "min_p", "epsilon_cutoff", "eta_cutoff"}


def greedy_overrides(model) -> tuple[dict, dict]:
    """(generate() kwargs that neutralise the model's own settings for greedy scoring, {name: the model's value}
    for each one that was set, recorded so the report shows what was overridden).

    Sampling-only settings (temperature, top_p, ...) mean nothing without sampling and are not listed.
    """
    gen = getattr(model, "generation_config", None)
    overridden = {}
    for name, neutral in GREEDY_NEUTRAL.items():
        value = getattr(gen, name, None)
        if name not in _SAMPLING_ONLY and value is not None and value != neutral and not (neutral == 0 and not value):
            overridden[name] = value
    if getattr(gen, "do_sample", False):
        overridden["do_sample"] = True
    return dict(GREEDY_NEUTRAL), overridden


def length_sorted_batches(sizes: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    >>> length_sorted_batches([3, 9, 1, 7], 2)
    [[1, 3], [0, 2]]
    """
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def count_until_stop(row: list[int], stops: set[int]) -> tuple[int, bool]:
    """(tokens generated including the first stop token, whether a stop token was produced).

    >>> count_until_stop([5, 6, 2, 2, 2], {2})
    (3, True)
    >>> count_until_stop([5, 6, 7], {2})
    (3, False)
    """
    for n, token in enumerate(row, start=1):
        if token in stops:
            return n, True
    return len(row), False


def common_prefix_length(rows: list[list[int]]) -> int:
    """Tokens shared by the start of every row, leaving at least one own token per row.

    >>> common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 9], [1, 2, 3]])
    2
    """
    if not rows:
        return 0
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def generate_local(model, tokenizer, prompts: list[PromptItem], max_new_tokens: int, batch_size: int = 16,
                   do_sample: bool = False, progress: bool = True, seed: int = 0,
                   prefix_cache: bool = True) -> list[Prediction]:
    """An answer for every prompt, in the order of ``prompts``; ``prefix_cache`` reuses the shared prefix."""
    import torch
    from tqdm import tqdm  # text bar: ipywidgets bars do not survive headless papermill runs

    torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    stops = stop_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    encoded = [tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
    started = time.perf_counter()
    prefix = _prefix_cache(model, encoded) if prefix_cache else None
    prefix_s = time.perf_counter() - started  # charged to the first batch, so throughput stays honest
    results: list[Prediction | None] = [None] * len(prompts)
    with tqdm(total=len(prompts), desc="generating", unit="ex", disable=not progress, mininterval=2.0) as bar:
        for number, batch in enumerate(length_sorted_batches([len(e) for e in encoded], batch_size)):
            rows, seconds = _generate_batch(model, tokenizer, [encoded[i] for i in batch], max_new_tokens,
                                            do_sample, stops, pad_id, prefix)
            seconds += prefix_s if number == 0 else 0.0
            for i, row in zip(batch, rows):
                results[i] = _prediction(prompts[i], tokenizer, len(encoded[i]), row, set(stops), max_new_tokens,
                                         (seconds, len(batch), number))
            bar.update(len(batch))
    return results


def _prefix_cache(model, encoded: list[list[int]]):
    """(prefix token ids, its key/value cache) when every prompt shares enough leading tokens, else None."""
    import torch

    n = common_prefix_length(encoded)
    if n < MIN_PREFIX_TOKENS or len(encoded) < 2:
        return None
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            cache = model(torch.tensor([encoded[0][:n]], device=device), use_cache=True).past_key_values
    except (TypeError, ValueError, RuntimeError):
        return None  # a model whose forward does not return a reusable cache: generate without it
    if cache is None or not hasattr(cache, "batch_repeat_interleave") or any(getattr(cache, "is_sliding", None) or []):
        return None  # sliding-window caches cannot hold padding in the middle safely
    return encoded[0][:n], cache


def _layout(ids: list[list[int]], pad_id: int, prefix) -> tuple[list[list[int]], list[list[int]]]:
    """Token rows and attention masks: ``[pad | prompt]`` or, with a cached prefix, ``[prefix | pad | rest]``."""
    head = prefix[0] if prefix else []
    tails = [row[len(head):] for row in ids]
    width = max(len(t) for t in tails)
    rows = [head + [pad_id] * (width - len(t)) + t for t in tails]
    masks = [[1] * len(head) + [0] * (width - len(t)) + [1] * len(t) for t in tails]
    return rows, masks


def _generate_batch(model, tokenizer, ids: list[list[int]], max_new_tokens: int, do_sample: bool,
                    stops: list[int], pad_id: int, prefix=None) -> tuple[list[list[int]], float]:
    import torch

    device = next(model.parameters()).device
    rows, masks = _layout(ids, pad_id, prefix)
    input_ids = torch.tensor(rows, device=device)  # (B, T)
    extra = {}
    if prefix:
        cache = copy.deepcopy(prefix[1])  # generate() appends to the cache it gets: keep the original intact
        cache.batch_repeat_interleave(len(rows))  # (1, heads, P, dim) -> (B, heads, P, dim) per layer
        extra["past_key_values"] = cache
    started = time.perf_counter()
    with torch.inference_mode():
        neutral = greedy_overrides(model)[0] if not do_sample else {}
        out = model.generate(input_ids=input_ids, attention_mask=torch.tensor(masks, device=device),
                             max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=stops,
                             pad_token_id=pad_id, **{"top_p": None, "top_k": None, "temperature": None, **neutral},
                             **extra)
    seconds = time.perf_counter() - started
    return out[:, input_ids.shape[1]:].tolist(), seconds  # (B, <= max_new_tokens) generated part


def _prediction(item: PromptItem, tokenizer, n_in: int, row: list[int], stops: set[int], max_new_tokens: int,
                timing: tuple[float, int, int]) -> Prediction:
    n_out, stopped = count_until_stop(row, stops)
    kept = row[:n_out - 1] if stopped else row[:n_out]  # drop the stop token and the padding after it
    text = tokenizer.decode(kept, skip_special_tokens=True).strip()
    seconds, batch_size, number = timing
    return Prediction(item.id, item.sha256, text, item.reference, n_in, n_out, round(seconds, 4),
                      (not stopped) and n_out >= max_new_tokens, item.label, batch_size, number)
