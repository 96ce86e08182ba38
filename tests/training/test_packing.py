"""Packing without cross-contamination: a packed row gives exactly the logits and loss of its examples run alone."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftkit.training.packing import (PaddingFreeCollator, build_sequences, pack_examples, packing_report,
                                    register_packed_attention)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=80), st.integers(64, 512))
def test_every_example_lands_in_exactly_one_bin_within_capacity(lengths, capacity):
    bins = pack_examples(lengths, capacity)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(min(lengths[i], capacity) for i in b) <= capacity for b in bins)
    # best fit: no two bins could be merged
    loads = sorted(sum(lengths[i] for i in b) for b in bins)
    assert len(loads) < 2 or loads[0] + loads[1] > capacity


def test_collator_resets_positions_and_never_targets_across_a_boundary(tiny_examples, eot_id):
    a, b = tiny_examples[:2]
    batch = PaddingFreeCollator(eot_id)([{"examples": [a, b]}])
    n = a.n_tokens
    assert batch["input_ids"].shape == (1, n + b.n_tokens)
    assert batch["position_ids"][0, 0] == 0 and batch["position_ids"][0, n] == 0
    assert batch["cu_seq_lens_q"].tolist() == [0, n, n + b.n_tokens]
    keep = set(batch["logits_to_keep"].tolist())
    assert n - 1 not in keep and n + b.n_tokens - 1 not in keep  # the last token of an example predicts nothing
    assert batch["shift_labels"].numel() == a.n_labels + b.n_labels  # every label is exactly one target
    assert int((batch["shift_labels"] == eot_id).sum()) == 2


def _model(path):
    from ftkit.models import load_model

    return load_model(str(path), device="cpu")


def test_packed_logits_equal_separate_logits(tiny_model_dir, tiny_examples, eot_id):
    import torch

    model = _model(tiny_model_dir)
    examples = tiny_examples[:4]
    batch = PaddingFreeCollator(eot_id)([{"examples": examples[:2]}, {"examples": examples[2:]}])
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([e.input_ids])).logits for e in examples], dim=1)
        naive = model(input_ids=batch["input_ids"]).logits  # plain concatenation: examples see each other
        model.set_attn_implementation(register_packed_attention())
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       cu_seq_lens_q=batch["cu_seq_lens_q"]).logits
    assert torch.allclose(packed, alone, atol=1e-5)
    assert not torch.allclose(naive, alone, atol=1e-2)


def test_packed_loss_equals_the_loss_of_the_examples_alone(tiny_model_dir, tiny_examples, eot_id):
    import torch

    model = _model(tiny_model_dir)
    examples = tiny_examples[4:9]
    with torch.no_grad():
        total, count = 0.0, 0
        for e in examples:  # stock path: full logits, the model shifts the labels itself
            out = model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
            total, count = total + out.loss.item() * e.n_labels, count + e.n_labels
        model.set_attn_implementation(register_packed_attention())
        batch = PaddingFreeCollator(eot_id)([{"examples": examples}])
        packed = model(**batch).loss.item()
    assert packed == pytest.approx(total / count, rel=1e-5)


def test_packing_report_counts_real_and_padded_tokens(tiny_examples):
    packed = packing_report(build_sequences(tiny_examples, 256, True, 0), 256, True, 4).to_dict()
    assert packed["padding_fraction"] == 0.0 and packed["examples"] == len(tiny_examples)
    grouped = packing_report(build_sequences(tiny_examples, 256, False, 0), 256, False, 4).to_dict()
    assert 0.0 < grouped["padding_fraction"] < 0.2 and grouped["real_tokens"] == packed["real_tokens"]


@pytest.mark.slow
def test_packed_logits_equal_separate_logits_on_smollm2(tickets):
    import torch

    from ftkit.chat_format import template_info
    from ftkit.models import load_model, load_tokenizer
    from ftkit.training.dataset import tokenize_split

    tok = load_tokenizer("smollm2-135m-instruct", padding_side="right")
    model = load_model("smollm2-135m-instruct", device="cpu")
    examples = tokenize_split(tok, tickets[:3], 256).examples
    batch = PaddingFreeCollator(template_info(tok).end_of_turn_id)([{"examples": examples}])
    with torch.no_grad():
        alone = torch.cat([model(input_ids=torch.tensor([e.input_ids])).logits for e in examples], dim=1)
        model.set_attn_implementation(register_packed_attention())
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    assert (packed - alone).abs().max().item() < 1e-3
