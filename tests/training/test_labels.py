"""Assistant-only labels: exactly the answers plus their end-of-turn token; batches without labels are refused."""
from __future__ import annotations

import pytest

from ftkit.chat_format import IGNORE_INDEX
from ftkit.errors import DataError
from ftkit.training.dataset import Example, check_batch_labels, check_sequences, tokenize_split
from ftkit.training.packing import PaddedCollator, PaddingFreeCollator


def _labelled_text(tokenizer, example):
    return tokenizer.decode([t for t, l in zip(example.input_ids, example.labels) if l != IGNORE_INDEX])


def test_labels_cover_exactly_each_answer_and_its_end_of_turn(tiny_tokenizer, tickets, tiny_examples, eot_id):
    for record, example in zip(tickets[:20], tiny_examples[:20]):
        answer = record["messages"][-1]["content"]
        assert _labelled_text(tiny_tokenizer, example) == answer + "<|im_end|>"
        assert example.labels[-2] == eot_id  # the end-of-turn token is a target, the trailing newline is not
        assert example.labels[-1] == IGNORE_INDEX


def test_multi_turn_trains_every_answer_and_no_prompt(tiny_tokenizer, eot_id):
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"}, {"role": "user", "content": "the price please"},
            {"role": "assistant", "content": "ten"}]
    [example] = tokenize_split(tiny_tokenizer, [{"id": "m", "messages": conv}], 256).examples
    assert _labelled_text(tiny_tokenizer, example) == "hi there<|im_end|>ten<|im_end|>"
    assert sum(1 for l in example.labels if l == eot_id) == 2


def test_pad_equals_eos_and_the_end_of_turn_is_still_trained(tiny_tokenizer, tiny_examples, eot_id):
    assert tiny_tokenizer.pad_token_id == tiny_tokenizer.eos_token_id == eot_id  # the SmolLM2 pitfall
    batch = PaddedCollator(tiny_tokenizer.pad_token_id, eot_id)([{"examples": [e]} for e in tiny_examples[:4]])
    # padding is masked by position; every row still trains its end-of-turn token (== pad id)
    for row in range(4):
        n = int(batch["attention_mask"][row].sum())
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert (batch["labels"][row, :n] == eot_id).sum() == 1


def test_a_batch_without_labels_is_refused(tiny_examples, eot_id):
    unlabelled = Example("x", tiny_examples[0].input_ids, [IGNORE_INDEX] * tiny_examples[0].n_tokens)
    with pytest.raises(DataError, match="no trainable labels"):
        PaddingFreeCollator(eot_id)([{"examples": [unlabelled]}])
    with pytest.raises(DataError, match="no trainable labels"):
        check_sequences([[tiny_examples[0]], [unlabelled]], eot_id)
    import torch

    with pytest.raises(DataError, match="end-of-turn"):
        check_batch_labels(torch.tensor([[IGNORE_INDEX, 5, 6]]), eot_id)


def test_an_example_that_does_not_train_its_end_of_turn_is_refused(tiny_examples, eot_id):
    cut = tiny_examples[1]
    no_eot = Example("cut", cut.input_ids, [l if l != eot_id else IGNORE_INDEX for l in cut.labels])
    with pytest.raises(DataError, match="do not train their end-of-turn token"):
        check_sequences([[tiny_examples[0], no_eot]], eot_id)


def test_truncation_that_cuts_the_answer_drops_the_example(tiny_tokenizer, tickets):
    split = tokenize_split(tiny_tokenizer, tickets[:10], max_seq_length=40)
    assert not split.examples and len(split.dropped_cut_answer) == 10
    lengths = [e.n_tokens for e in tokenize_split(tiny_tokenizer, tickets[:10], 256).examples]
    # one token less only loses the newline after <|im_end|>: kept (and reported as reaching max_seq_length)
    kept = tokenize_split(tiny_tokenizer, tickets[:10], max_seq_length=max(lengths) - 1)
    assert len(kept.examples) == 10 and kept.truncated and not kept.dropped_cut_answer
    # two tokens less cut the end-of-turn token of the longest example: dropped, by id
    cut = tokenize_split(tiny_tokenizer, tickets[:10], max_seq_length=max(lengths) - 2)
    assert len(cut.examples) == 9 and cut.dropped_cut_answer == kept.truncated
