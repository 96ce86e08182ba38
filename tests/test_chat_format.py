"""Assistant-only label masks: exactly the assistant turns plus their end-of-turn token, never masked by pad id."""
from __future__ import annotations

import pytest

from ftkit.chat_format import (IGNORE_INDEX, label_stats, render_conversations, render_with_spans, template_info,
                               tokenize_with_assistant_labels)


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from ftkit.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


CONVS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say assistant"},
     {"role": "assistant", "content": "assistant"}],
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there", "weight": 0},
     {"role": "user", "content": "again"}, {"role": "assistant", "content": "The answer is yes."}],
    [{"role": "user", "content": "weather?"},
     {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
     {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "It is sunny."}],
]


def test_pad_equals_eos_and_eot_is_found(tok):
    assert tok.pad_token_id == tok.eos_token_id
    assert template_info(tok).end_of_turn == "<|im_end|>"


def test_spans_cover_answers_and_their_end_of_turn(tok):
    rendered = render_conversations(tok, CONVS)
    pieces = [[text[a:b] for a, b in spans] for text, spans in rendered]
    assert pieces[0] == ["assistant<|im_end|>"]  # the answer 'assistant', not the 'assistant' header
    assert pieces[1] == ["The answer is yes.<|im_end|>"]  # the weight-0 turn is context only
    assert pieces[2] == ["<|im_end|>", "It is sunny.<|im_end|>"]  # a tool-call turn found by prefix rendering


def test_labels_are_exactly_the_answer_tokens(tok):
    out = tokenize_with_assistant_labels(tok, CONVS)
    for conv, ex in zip(CONVS, out):
        assert len(ex["input_ids"]) == len(ex["labels"]) == ex["n_tokens"]
        trained = [t for t in ex["labels"] if t != IGNORE_INDEX]
        expected = "".join(m["content"] + "<|im_end|>" for m in conv if m["role"] == "assistant" and m.get("weight", 1))
        assert tok.decode(trained) == expected
        assert ex["has_end_of_turn_label"] and trained[-1] == tok.eos_token_id  # eos (== pad) IS trained
        assert ex["n_label_tokens"] == len(trained)


def test_truncation_drops_the_end_of_turn_label(tok):
    [ex] = tokenize_with_assistant_labels(tok, [CONVS[1]], max_length=20)
    assert ex["n_tokens"] == 20 and not ex["has_end_of_turn_label"]


def test_label_stats_agree_with_full_tokenization(tok):
    full = tokenize_with_assistant_labels(tok, CONVS)
    stats = label_stats(tok, render_with_spans(tok, CONVS))
    for a, b in zip(full, stats):
        assert (a["n_tokens"], a["n_label_tokens"], a["has_end_of_turn_label"]) == \
            (b["n_tokens"], b["n_label_tokens"], b["has_end_of_turn_label"])
        assert a["tokens_per_role"] == b["tokens_per_role"]


def test_template_without_end_of_turn_is_caught(tiny_model_dir):
    from ftkit.models.loading import load_tokenizer

    plain = load_tokenizer(str(tiny_model_dir))
    plain.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    [ex] = tokenize_with_assistant_labels(plain, [CONVS[0]])
    assert ex["n_label_tokens"] > 0 and not ex["has_end_of_turn_label"]
