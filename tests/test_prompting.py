"""Prompt building: deterministic shots from train, the engagement's system prompt, the model's chat template."""
from __future__ import annotations

import hashlib
import json
import random

import pytest

from ftkit.errors import DataError
from ftkit.prompting import (build_messages, build_prompts, make_spec, preview, prompt_record, read_records,
                             render, select_shots, split_record)


def rec(i, user, answer, label=None, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"id": f"t{i}", "messages": messages, **({"label": label} if label else {})}


TRAIN = [rec(i, f"question {i}", f"answer {i}", label="abc"[i % 3], system="per-row system") for i in range(12)]


def test_shots_are_deterministic_and_independent_of_file_order():
    first = [r["id"] for r in select_shots(TRAIN, 4, seed=1)]
    shuffled = TRAIN[:]
    random.Random(0).shuffle(shuffled)
    assert [r["id"] for r in select_shots(shuffled, 4, seed=1)] == first
    assert [r["id"] for r in select_shots(TRAIN, 4, seed=2)] != first  # the seed matters


def test_shots_cover_the_labels_before_repeating_one():
    labels = [r["label"] for r in select_shots(TRAIN, 3)]
    assert sorted(labels) == ["a", "b", "c"]


def test_shot_count_is_capped_by_the_train_split_and_zero_means_zero_shot():
    assert len(select_shots(TRAIN[:2], 5)) == 2
    assert select_shots(TRAIN, 0) == [] and make_spec(TRAIN, 0, "sys").shots == []


def test_messages_are_system_then_shots_then_the_input_without_its_answer():
    spec = make_spec(TRAIN, 2, "Engagement system prompt")
    target = rec(99, "the test question", "SECRET REFERENCE")
    messages = build_messages(target, spec)
    assert messages[0] == {"role": "system", "content": "Engagement system prompt"}
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == "the test question"
    assert all("SECRET REFERENCE" not in m["content"] for m in messages)
    # shots come without their own per-row system prompt
    assert all(m["content"] != "per-row system" for m in messages)


def test_a_records_own_system_prompt_wins():
    spec = make_spec([], 0, "Engagement system prompt")
    messages = build_messages(rec(1, "q", "a", system="Row system"), spec)
    assert messages[0]["content"] == "Row system"


def test_rendered_with_the_models_chat_template(tiny_model_dir):
    from ftkit.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    spec = make_spec([rec(0, "2+2?", "4")], 1, "Be brief.")
    [item] = build_prompts([rec(1, "3+3?", "6", label="six")], spec, tokenizer)
    assert item.text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                         "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n"
                         "<|im_start|>assistant\n")
    assert item.reference == "6" and item.label == "six"
    assert item.sha256 == hashlib.sha256(item.text.encode()).hexdigest()
    record = prompt_record(spec, tokenizer, item)
    assert record["chat_template"] == tokenizer.chat_template and record["shot_ids"] == ["t0"]
    assert record["example_prompt"] == item.text and record["system_prompt"] == "Be brief."


def test_preview_records_token_count(tiny_model_dir):
    from ftkit.config import EngagementConfig
    from ftkit.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    out = preview(EngagementConfig(), make_spec(TRAIN, 1, "s"), rec(5, "q", "a"), tokenizer)
    assert out["n_prompt_tokens"] == len(tokenizer(out["example_prompt"], add_special_tokens=False)["input_ids"])
    assert json.dumps(out)  # prompt.json must serialise


def test_render_without_chat_template_uses_the_default_every_phase_picks(tiny_model_dir):
    from ftkit.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.chat_template = None
    text = render(tokenizer, [{"role": "user", "content": "hi"}])
    # the vocabulary has ChatML's turn tokens and no other family's: ChatML, with the generation prompt
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer._ftkit_chat_plan[1].template_source == "default:chatml"


def test_render_a_template_refusal_is_one_sentence_with_the_fix(tiny_model_dir):
    from ftkit.models import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_model_dir))
    tokenizer.chat_template = ("{% for m in messages %}{% if loop.index0 and m.role == messages[loop.index0 - 1].role %}"
                               "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
                               "{{ m.content }}{% endfor %}")
    with pytest.raises(DataError, match="merge consecutive turns"):
        render(tokenizer, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_record_without_a_reference_is_a_data_error():
    with pytest.raises(DataError, match="does not end with an assistant message"):
        split_record({"id": "x", "messages": [{"role": "user", "content": "hi"}]})


def test_read_records_names_the_bad_line(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(rec(1, "q", "a")) + "\n{broken\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        read_records(path)
