"""Piece-wise tokenization (ftkit.piece_tokenize): the same tokens as encoding each text whole, or a fallback."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftkit.chat_format import _backend, label_stats, render_with_spans, tokenize_with_assistant_labels
from ftkit.piece_tokenize import PieceEncoder


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from ftkit.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def assert_same_as_whole(encoder: PieceEncoder, texts: list[str]) -> None:
    ours = encoder.encode_batch(texts)
    whole = encoder.backend.encode_batch(texts, add_special_tokens=False)
    for text, a, b in zip(texts, ours, whole):
        assert len(a) == len(b) and a.ids == b.ids, text
        assert [a.token_to_chars(k) for k in range(len(b))] == [tuple(o) for o in b.offsets], text
        assert [a.char_to_token(c) for c in range(len(text) + 1)] == [b.char_to_token(c) for c in range(len(text) + 1)], text


EDGE_TEXTS = [
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|><|im_end|><|im_end|>",  # adjacent added tokens: empty pieces between them
    "no special tokens at all, just text   with  spaces\n\n",
    "<|im_start|>user\nünïcødé, emoji 🙂 and CJK 中文<|im_end|>",
    "  leading and trailing spaces  <|im_start|>  ",
    "<|im_start|>user\nwrites <|im_end|> inside the content<|im_end|>\n",
    "",
]


def test_edge_texts_match_whole_encoding(tok):
    encoder = PieceEncoder(_backend(tok))
    assert encoder.piecewise, encoder.why_whole
    assert_same_as_whole(encoder, EDGE_TEXTS)
    assert encoder.piecewise  # the per-batch check found nothing to object to


PIECE = st.one_of(st.sampled_from(["<|im_start|>", "<|im_end|>", "<|endoftext|>", "user\n", "assistant\n", "\n", " "]),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(PIECE, max_size=8).map("".join), min_size=1, max_size=6))
def test_random_texts_match_whole_encoding(tiny_model_dir, texts):
    from ftkit.models.loading import load_tokenizer

    assert_same_as_whole(PieceEncoder(_backend(load_tokenizer(str(tiny_model_dir)))), texts)


CONVS = [
    [{"role": "system", "content": "Classify."}, {"role": "user", "content": "My order is late."},
     {"role": "assistant", "content": '{"category": "shipping"}'}],
    [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Refund please"},
     {"role": "assistant", "content": '{"category": "shipping"}'}, {"role": "user", "content": "and?"},
     {"role": "assistant", "content": "Done.", "weight": 0}],
    [{"role": "user", "content": "  spaced  "}, {"role": "assistant", "content": " ok "}],
]


def test_label_stats_with_pieces_equal_full_tokenization(tok):
    full = tokenize_with_assistant_labels(tok, CONVS * 3)
    stats = label_stats(tok, render_with_spans(tok, CONVS * 3))
    for a, b in zip(full, stats):
        assert (a["n_tokens"], a["n_label_tokens"], a["has_end_of_turn_label"], a["tokens_per_role"]) == \
            (b["n_tokens"], b["n_label_tokens"], b["has_end_of_turn_label"], b["tokens_per_role"])


def _metaspace_tokenizer(prepend_scheme: str, lstrip: bool = False):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend_scheme)
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>"])
    backend.train_from_iterator(["hello world, this is a small test of pieces"] * 20, trainer)
    backend.add_special_tokens([AddedToken("<s>", lstrip=lstrip), AddedToken("</s>")])
    return backend


def test_tokenizers_that_treat_pieces_differently_are_encoded_whole():
    first = PieceEncoder(_metaspace_tokenizer("first"))
    assert not first.piecewise and "prepend_scheme" in first.why_whole
    stripping = PieceEncoder(_metaspace_tokenizer("always", lstrip=True))
    assert not stripping.piecewise and "strips" in stripping.why_whole
    texts = ["<s>hello world</s>", "hello <s> world"]
    for encoder in (first, stripping):
        assert [e.ids for e in encoder.encode_batch(texts)] == \
            [e.ids for e in encoder.backend.encode_batch(texts, add_special_tokens=False)]


def test_the_per_batch_check_catches_what_the_static_check_missed():
    encoder = PieceEncoder(_metaspace_tokenizer("first"))
    encoder.why_whole = ""  # pretend the static check let it through
    texts = ["<s>hello world</s>", "<s>this is a test</s>"]
    out = encoder.encode_batch(texts)
    assert not encoder.piecewise and "differ" in encoder.why_whole
    assert [e.ids for e in out] == [e.ids for e in encoder.backend.encode_batch(texts, add_special_tokens=False)]
