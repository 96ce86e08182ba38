"""Local batched generation on the tiny model: order, padding, stopping, counts, predictions file."""
from __future__ import annotations

import copy
import json

import pytest

from ftkit.generation import (Prediction, derive_max_new_tokens, generate_for_config, generate_local,
                              read_predictions, reference_token_lengths, stop_token_ids, throughput,
                              write_predictions)
from ftkit.generation.local import count_until_stop, length_sorted_batches
from ftkit.prompting import PromptItem, build_prompts, make_spec

QUESTIONS = ["hi", "Where is my order NW-123456? It was due last week and nothing came.", "Refund please.",
             "My card was charged twice for the tent and the bank says the payment went through both times. "
             "Please fix this today, I need the money back for rent.", "Is there a dark mode?", "Reset my password"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ftkit.models import load_model, load_tokenizer

    return load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))


def records():
    return [{"id": f"q{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]}
            for i, q in enumerate(QUESTIONS)]


def prompts(tokenizer):
    return build_prompts(records(), make_spec([], 0, "You triage tickets."), tokenizer)


def test_batched_generation_equals_one_at_a_time(tiny):
    """Left padding + attention mask must not change greedy answers: the proof that batching is safe."""
    model, tokenizer = tiny
    items = prompts(tokenizer)
    batched = generate_local(model, tokenizer, items, 12, batch_size=4, progress=False)
    single = generate_local(model, tokenizer, items, 12, batch_size=1, progress=False)
    assert [p.id for p in batched] == [p.id for p in single] == [f"q{i}" for i in range(len(QUESTIONS))]
    assert [p.output for p in batched] == [p.output for p in single]
    assert [p.n_output_tokens for p in batched] == [p.n_output_tokens for p in single]
    assert {p.batch_size for p in batched} == {4, 2} and {p.batch_size for p in single} == {1}


def test_prefix_cache_gives_identical_answers(tiny):
    """Few-shot prompts share a long prefix; reusing its KV cache must not change a single token."""
    model, tokenizer = tiny
    shots = [{"id": f"s{i}", "messages": [{"role": "user", "content": f"example question {i} about a refund"},
                                          {"role": "assistant", "content": '{"category": "billing"}'}]}
             for i in range(3)]
    items = build_prompts(records()[:4], make_spec(shots, 3, "You triage tickets. Reply with JSON."), tokenizer)
    from ftkit.generation.local import MIN_PREFIX_TOKENS, common_prefix_length
    encoded = [tokenizer(i.text, add_special_tokens=False)["input_ids"] for i in items]
    assert common_prefix_length(encoded) >= MIN_PREFIX_TOKENS  # the cache is really used here
    cached = generate_local(model, tokenizer, items, 6, batch_size=3, progress=False)
    plain = generate_local(model, tokenizer, items, 6, batch_size=3, progress=False, prefix_cache=False)
    single = generate_local(model, tokenizer, items, 6, batch_size=1, progress=False, prefix_cache=False)
    assert [p.output for p in cached] == [p.output for p in plain] == [p.output for p in single]
    assert [p.n_output_tokens for p in cached] == [p.n_output_tokens for p in single]
    assert [p.n_input_tokens for p in cached] == [len(e) for e in encoded]


def test_counts_and_hashes(tiny):
    model, tokenizer = tiny
    items = prompts(tokenizer)
    preds = generate_local(model, tokenizer, items, 7, batch_size=3, progress=False)
    for item, p in zip(items, preds):
        assert p.prompt_sha256 == item.sha256 and p.reference == "ok"
        assert p.n_input_tokens == len(tokenizer(item.text, add_special_tokens=False)["input_ids"])
        assert 1 <= p.n_output_tokens <= 7 and p.latency_s > 0
        assert p.hit_max_new_tokens == (p.n_output_tokens == 7 and not _stopped(p, tokenizer, model, item))


def _stopped(p, tokenizer, model, item):
    # re-generate one example and look for a stop token in its first tokens
    import torch

    ids = tokenizer(item.text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=7, do_sample=False, eos_token_id=stop_token_ids(tokenizer, model),
                             pad_token_id=tokenizer.pad_token_id)
    return count_until_stop(out[0, ids.shape[1]:].tolist(), set(stop_token_ids(tokenizer, model)))[1]


def test_generation_stops_at_end_of_turn(tiny):
    """Make the token the random model produces first an end-of-turn token: every answer must stop there."""
    model, tokenizer = tiny
    items = prompts(tokenizer)[:3]
    free = generate_local(model, tokenizer, items, 5, batch_size=3, progress=False)
    first_tokens = {tokenizer(p.output, add_special_tokens=False)["input_ids"][0] for p in free if p.output}
    stopping = copy.deepcopy(model)
    stopping.generation_config.eos_token_id = sorted({tokenizer.eos_token_id, *first_tokens})
    stopped = generate_local(stopping, tokenizer, items, 5, batch_size=3, progress=False)
    for before, after in zip(free, stopped):
        if before.output:
            assert after.n_output_tokens < 5 and after.hit_max_new_tokens is False
            assert len(after.output) < len(before.output)


def test_stop_tokens_include_chatml_end_of_turn(tiny):
    model, tokenizer = tiny
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tokenizer, model)


def test_length_sorted_batches_and_count_until_stop():
    assert length_sorted_batches([5, 1, 9, 3, 7], 2) == [[2, 4], [0, 3], [1]]
    assert count_until_stop([4, 2, 2], {2}) == (2, True)  # pad == eos: stop at the first one
    assert count_until_stop([4, 5], {2}) == (2, False)


def test_max_new_tokens_is_derived_from_reference_lengths(tiny):
    _, tokenizer = tiny
    lengths = reference_token_lengths(records(), tokenizer)
    assert lengths == [len(tokenizer("ok", add_special_tokens=False)["input_ids"])] * len(QUESTIONS)
    assert derive_max_new_tokens(0, [100]) == 141  # ceil(100 * 1.25) + 16
    assert derive_max_new_tokens(0, []) == 16 and derive_max_new_tokens(0, [10_000]) == 1024
    assert derive_max_new_tokens(50, [100]) == 50
    assert reference_token_lengths(records()) == [1] * len(QUESTIONS)  # 2 characters at ~4 per token


def test_predictions_round_trip_and_throughput(tmp_path):
    rows = [Prediction("a", "h1", "out", "ref", 10, 4, 2.0, False, "x", 2, 0),
            Prediction("b", "h2", "out é", "ref", 12, 6, 2.0, True, None, 2, 0),
            Prediction("c", "h3", "", "ref", 9, 5, 1.0, False, None, 1, 1)]
    path = write_predictions(tmp_path / "predictions.jsonl", rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["output"] == "out é"
    assert read_predictions(path) == rows
    assert throughput(rows) == {"output_tokens": 15, "seconds": 3.0, "tokens_per_s": 5.0}  # batch 0 counted once


def test_generate_for_config_local_backend(tiny_model_dir):
    from ftkit.config import parse_config

    config = parse_config({"base_model": {"id": str(tiny_model_dir)},
                           "baseline": {"max_new_tokens": 0, "batch_size": 8}})
    run = generate_for_config(config, records()[:3], make_spec([], 0), records(), progress=False)
    from ftkit.models import load_tokenizer
    ok_tokens = len(load_tokenizer(str(tiny_model_dir))("ok", add_special_tokens=False)["input_ids"])
    assert run.max_new_tokens == -(-ok_tokens * 5 // 4) + 16  # ceil(1.25 x longest reference) + 16
    assert [p.id for p in run.predictions] == ["q0", "q1", "q2"]
    from ftkit.models import pick_device
    assert run.model["is_tiny_random"] is True and run.model["device"] == pick_device()
    assert run.chat_template.startswith("{% for message in messages %}")


def test_unknown_backend_is_a_config_error(tiny_model_dir):
    from ftkit.config import EngagementConfig
    from ftkit.errors import ConfigError

    config = EngagementConfig()
    config.baseline.backend = "tgi"
    with pytest.raises(ConfigError, match="local, openai, vllm"):
        generate_for_config(config, records(), make_spec([], 0), [])


def test_prompt_item_hash_is_of_the_rendered_text():
    item = PromptItem("1", [], "abc", "ref")
    assert item.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
