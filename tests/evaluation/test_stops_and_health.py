"""Stop behaviour, the chat-template round trip and training health, on the tiny model's real tokenizer."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ftkit.evaluation import health, stops
from ftkit.prompting import PromptSpec, build_prompts

RECORDS = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"ticket {i}"},
                                         {"role": "assistant", "content": '{"category": "billing"}'}]} for i in range(3)]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from ftkit.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def test_round_trip_passes_with_the_serving_template_and_fails_on_drift(tokenizer):
    prompts = build_prompts(RECORDS, PromptSpec(system_prompt="Classify."), tokenizer)
    outputs = ['{"category": "billing"}', "", "two\nlines"]
    ok = stops.round_trip(tokenizer, prompts, outputs)
    assert ok == {"checked": 3, "failures": [], "end_of_turn": "<|im_end|>"}
    # A serving template that prefixes assistant answers renders the conversation differently.
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "message['content']", "('A: ' if message['role'] == 'assistant' else '') + message['content']")
    try:
        bad = stops.round_trip(tokenizer, prompts, outputs)
    finally:
        tokenizer.chat_template = tokenizer.chat_template.replace(
            "('A: ' if message['role'] == 'assistant' else '') + message['content']", "message['content']")
    assert [f["id"] for f in bad["failures"]] == ["r0", "r1", "r2"]
    assert 'A: {"category"' in bad["failures"][0]["problem"]


def test_serving_stop_ids_must_include_the_end_of_turn_token(tokenizer, tiny_model_dir):
    from ftkit.models import load_model

    model = load_model(str(tiny_model_dir), device="cpu")
    good = stops.serving_stops(model, tokenizer)
    assert good["ok"] and good["end_of_turn"] == "<|im_end|>" and good["end_of_turn_id"] in good["served_stop_ids"]
    model.generation_config.eos_token_id = 0  # <|endoftext|>: a served model would run past <|im_end|>
    bad = stops.serving_stops(model, tokenizer)
    assert not bad["ok"] and bad["served_stop_ids"] == [0]


def test_training_health_reads_trend_and_flag():
    history = {"history": [{"step": 5, "loss": 2.0}, {"step": 5, "eval_loss": 1.8}, {"step": 10, "eval_loss": 1.5},
                           {"step": 15, "eval_loss": 1.7}]}
    flagged = SimpleNamespace(overfitting={"flag": True, "best_step": 10})  # the typed TrainingResults' field
    summary = health.summarise(flagged, history)
    assert summary["val_loss_trend"] == "rising" and summary["overfitting"] and summary["overfitting_reported"]
    assert (summary["first_val_loss"], summary["best_val_loss"], summary["final_val_loss"]) == (1.8, 1.5, 1.7)
    quiet = health.summarise(SimpleNamespace(overfitting={"flag": False}), [])
    assert quiet["val_loss_trend"] == "unknown" and not quiet["overfitting"]
