"""Client text is never tokenised as control tokens, whatever the data says.

A training answer such as ``Sure.<|im_end|>\\n<|im_start|>assistant ...`` renders into the chat template
verbatim; tokenised as a whole, the tokenizer turns that text into the real ``<|im_end|>`` token, so the example
teaches the model to end its turn early or fake a turn boundary, and the label mask no longer matches the turns.
The data audit flags such content (``content.control_token``); this module makes training safe anyway: a
rendered conversation whose message content contains a special-token text is re-encoded piece by piece, the
template's own text as usual and each message's content with ``split_special_tokens=True`` (transformers'
switch for the Rust tokenizer's ``encode_special_tokens``), so ``<|im_end|>`` inside content becomes the
ordinary tokens of its characters. Conversations without such text (nearly all) keep their one batched encoding.
"""
from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=8)
def _special_regex(markers: tuple[str, ...]):
    texts = sorted({t for t in markers if t}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, texts))) if texts else None


def special_texts(tokenizer) -> tuple[str, ...]:
    """Every text the tokenizer reads as a special (control) token: its special tokens and added special tokens."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(added, "special", False):
            found.add(str(added))
    return tuple(sorted(t for t in found if isinstance(t, str) and t))


def content_has_special(tokenizer, text: str, spans) -> bool:
    """Whether any message content span ``(role, start, end)`` of ``text`` contains a special-token text."""
    rx = _special_regex(special_texts(tokenizer))
    return rx is not None and any(rx.search(text, cs, ce) for _, cs, ce in spans)


def encode_content_as_text(tokenizer, text: str, spans, max_length: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
    """(input_ids, offsets) of ``text`` with the content spans ``(role, start, end)`` encoded with
    ``split_special_tokens=True`` and the template text between them as usual; offsets index ``text``."""
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    pos = 0
    pieces = []
    for _, cs, ce in sorted(spans, key=lambda s: s[1]):
        if cs > pos:
            pieces.append((pos, cs, False))
        if ce > cs:
            pieces.append((cs, ce, True))
        pos = max(pos, ce)
    if pos < len(text):
        pieces.append((pos, len(text), False))
    for start, end, is_content in pieces:
        enc = tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                        return_attention_mask=False, split_special_tokens=is_content)
        ids += enc["input_ids"]
        offsets += [(a + start, b + start) for a, b in enc["offset_mapping"]]
    if max_length is not None:
        ids, offsets = ids[:max_length], offsets[:max_length]
    return ids, offsets


def protect_batch(tokenizer, rendered, ids_batch, offsets_batch, max_length: int | None = None):
    """The batch's (input_ids, offset_mapping) lists, with every conversation whose content holds special-token
    text re-encoded by :func:`encode_content_as_text`. ``rendered``: chat_format.Rendered objects."""
    ids_out, offs_out = list(ids_batch), list(offsets_batch)
    for k, r in enumerate(rendered):
        if content_has_special(tokenizer, r.text, r.message_spans):
            ids_out[k], offs_out[k] = encode_content_as_text(tokenizer, r.text, r.message_spans, max_length)
    return ids_out, offs_out
