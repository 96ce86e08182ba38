"""Tokenize rendered chat texts piece by piece, encoding each distinct piece once per batch.

Why: a fast tokenizer first cuts its input at added tokens (``<|im_start|>``, ``<|im_end|>``, ...) and then
normalises, pre-tokenizes and encodes each piece between them on its own, so a text's tokens are exactly the
concatenation of its pieces' tokens with one token per added token. Client chat data repeats pieces
heavily: every record carries the same system prompt, the template's role headers, and (for classification
and structured output) a few dozen distinct answers. Encoding each distinct piece once per batch of ~1,000
records halves the tokenizer work of the data audit on such data while giving the same token ids and
counts. No tokenizer library offers this cache, hence the code here.

When it is not exact: added tokens that strip neighbouring whitespace (``lstrip``/``rstrip``/``single_word``),
added tokens matched after normalisation, or a pre-tokenizer that treats the first piece of a text
differently (Metaspace with ``prepend_scheme="first"``, Llama/Mistral-style). :class:`PieceEncoder` refuses
those statically, compares piece-wise and whole-text ids on a sample of every batch, and falls back to
whole-text encoding for good on the first mismatch.

:class:`PieceEncoding` answers the three questions label counting asks of a ``tokenizers.Encoding``:
``len(enc)``, ``enc.char_to_token(c)`` and ``enc.token_to_chars(k)``, in whole-text coordinates.

>>> from ftkit.models.tiny import ensure_tiny_model
>>> from ftkit.models.loading import load_tokenizer
>>> tok = load_tokenizer(str(ensure_tiny_model()))
>>> text = "<|im_start|>user\\nhello there<|im_end|>\\n"
>>> enc = PieceEncoder(tok.backend_tokenizer).encode_batch([text])[0]
>>> whole = tok.backend_tokenizer.encode(text, add_special_tokens=False)
>>> len(enc) == len(whole), enc.char_to_token(20) == whole.char_to_token(20), enc.token_to_chars(3) == whole.token_to_chars(3)
(True, True, True)
"""
from __future__ import annotations

import json
import re
from bisect import bisect_right
from itertools import accumulate

VERIFY_PER_BATCH = 2  # texts per batch re-encoded whole and compared (the first batch: VERIFY_FIRST)
VERIFY_FIRST = 32


class _Batch:
    """The distinct pieces of one batch: their encodings, token counts, and memoised span queries."""

    __slots__ = ("encodings", "lengths", "first_memo", "last_memo", "count_memo")

    def __init__(self, encodings):
        self.encodings = encodings
        self.lengths = [len(e) for e in encodings]
        self.first_memo: dict[tuple[int, int, int], int | None] = {}
        self.last_memo: dict[tuple[int, int, int], int | None] = {}
        self.count_memo: dict[tuple[int, int, int], int] = {}

    def count(self, d: int, a: int, b: int) -> int:
        """Tokens of piece d from the first to the last that a character of [a, b) belongs to."""
        key = (d, a, b)
        n = self.count_memo.get(key)
        if n is None:
            lo = self.first(d, a, b)
            n = self.count_memo[key] = 0 if lo is None else self.last(d, a, b) - lo + 1
        return n

    def first(self, d: int, a: int, b: int) -> int | None:
        """Index (in piece d) of the first token that a character of [a, b) belongs to."""
        return self._memo(self.first_memo, d, a, b, range(a, b))

    def last(self, d: int, a: int, b: int) -> int | None:
        """Index (in piece d) of the last token that a character of [a, b) belongs to."""
        return self._memo(self.last_memo, d, a, b, range(b - 1, a - 1, -1))

    def _memo(self, memo: dict, d: int, a: int, b: int, chars: range) -> int | None:
        key = (d, a, b)
        k = memo.get(key, -1)
        if k == -1:
            k = memo[key] = first_mapped(self.encodings[d].char_to_token, chars)
        return k


def first_mapped(char_to_token, chars) -> int | None:
    """The token of the first character in ``chars`` that belongs to one (None if none does); a plain loop:
    the first character tried nearly always maps, and a generator costs more than the call."""
    for c in chars:
        k = char_to_token(c)
        if k is not None:
            return k
    return None


class PieceEncoding:
    """The tokens of one text, as its pieces' encodings laid end to end (see the module docstring).

    ``starts[i]``/``ends[i]``: character span of piece i; ``token_starts[i]``: index of its first token;
    ``keys[i]``: the piece's index among the batch's distinct pieces, or ``-1 - id`` for an added token.
    Span queries on repeated pieces (system prompts, role headers, stock answers) are memoised per batch.
    """

    __slots__ = ("starts", "ends", "token_starts", "keys", "batch", "n_tokens")

    def __init__(self, starts, ends, token_starts, keys, batch: _Batch, n_tokens: int):
        self.starts, self.ends, self.token_starts, self.keys = starts, ends, token_starts, keys
        self.batch, self.n_tokens = batch, n_tokens

    def __len__(self) -> int:
        return self.n_tokens

    @property
    def ids(self) -> list[int]:
        out: list[int] = []
        for d in self.keys:
            if d < 0:
                out.append(-1 - d)
            else:
                out += self.batch.encodings[d].ids
        return out

    def char_to_token(self, char: int) -> int | None:
        i = bisect_right(self.starts, char) - 1
        if i < 0 or char >= self.ends[i]:
            return None
        d = self.keys[i]
        if d < 0:
            return self.token_starts[i]
        k = self.batch.encodings[d].char_to_token(char - self.starts[i])
        return None if k is None else self.token_starts[i] + k

    def token_to_chars(self, token: int) -> tuple[int, int] | None:
        if not 0 <= token < self.n_tokens:
            return None
        i = bisect_right(self.token_starts, token) - 1
        while self.keys[i] >= 0 and self.batch.lengths[self.keys[i]] == 0:  # pieces without tokens
            i -= 1
        start, d = self.starts[i], self.keys[i]
        if d < 0:
            return start, self.ends[i]
        a, b = self.batch.encodings[d].token_to_chars(token - self.token_starts[i])
        return start + a, start + b

    def count(self, cs: int, ce: int) -> int:
        """Tokens from the first to the last that a character of [cs, ce) belongs to (0 if none)."""
        i = bisect_right(self.starts, cs) - 1
        if i >= 0 and ce <= self.ends[i]:  # within one piece: nearly every message span
            d = self.keys[i]
            if d < 0:
                return 1 if cs < ce else 0
            s = self.starts[i]
            return self.batch.count(d, cs - s, ce - s)
        lo = self.first_token(cs, ce)
        return 0 if lo is None else self.last_token(cs, ce) - lo + 1

    def first_token(self, cs: int, ce: int) -> int | None:
        """The first token that a character of [cs, ce) belongs to (None if none does)."""
        starts, ends, keys = self.starts, self.ends, self.keys
        i = max(0, bisect_right(starts, cs) - 1)
        while i < len(starts) and starts[i] < ce:
            d = keys[i]
            if d < 0:  # an added token
                return self.token_starts[i]
            s = starts[i]
            k = self.batch.first(d, max(cs - s, 0), min(ce, ends[i]) - s)
            if k is not None:
                return self.token_starts[i] + k
            i += 1
        return None

    def last_token(self, cs: int, ce: int) -> int | None:
        """The last token that a character of [cs, ce) belongs to (None if none does)."""
        starts, ends, keys = self.starts, self.ends, self.keys
        i = min(len(starts), bisect_right(starts, ce - 1)) - 1
        while i >= 0 and ends[i] > cs:
            d = keys[i]
            if d < 0:
                return self.token_starts[i]
            s = starts[i]
            k = self.batch.last(d, max(cs - s, 0), min(ce, ends[i]) - s)
            if k is not None:
                return self.token_starts[i] + k
            i -= 1
        return None


class PieceEncoder:
    """Encode texts through ``backend`` (a ``tokenizers.Tokenizer`` without truncation/padding) piece by piece
    where that is exact, else whole; ``encode_batch(texts)`` returns one Encoding-like object per text."""

    def __init__(self, backend):
        self.backend = backend
        added = backend.get_added_tokens_decoder()
        self.added_ids = {t.content: i for i, t in added.items()}
        self.why_whole = _why_not_piecewise(backend, added.values())
        contents = sorted(self.added_ids, key=len, reverse=True)  # leftmost, then longest: as the tokenizer matches
        self._split = re.compile("(" + "|".join(map(re.escape, contents)) + ")") if contents else None
        self._batches = 0

    @property
    def piecewise(self) -> bool:
        return not self.why_whole

    def encode_batch(self, texts: list[str]):
        if not self.piecewise or self._split is None:
            return self.backend.encode_batch(texts, add_special_tokens=False)
        out = self._encode_pieces(texts)
        n_check = VERIFY_FIRST if self._batches == 0 else VERIFY_PER_BATCH
        self._batches += 1
        sample = _spread(len(texts), n_check)
        whole = self.backend.encode_batch([texts[i] for i in sample], add_special_tokens=False)
        for i, enc in zip(sample, whole):
            if not _same(out[i], enc):
                self.why_whole = f"piece-wise token counts differ from whole-text encoding on {texts[i][:60]!r}"
                return self.backend.encode_batch(texts, add_special_tokens=False)
        return out

    def _encode_pieces(self, texts: list[str]) -> list[PieceEncoding]:
        split, added = self._split.split, self.added_ids
        parts = [split(t) for t in texts]  # [text, added, text, added, ..., text]
        distinct: dict[str, int] = {}
        for ps in parts:
            for p in ps[0::2]:
                if p and p not in distinct:
                    distinct[p] = len(distinct)
        batch = _Batch(self.backend.encode_batch(list(distinct), add_special_tokens=False) if distinct else [])
        lengths = batch.lengths
        out = []
        for ps in parts:
            keys = [-1 - added[p] if j % 2 else distinct[p] for j, p in enumerate(ps) if p]
            ends = list(accumulate(len(p) for p in ps if p))
            tok_ends = list(accumulate(lengths[d] if d >= 0 else 1 for d in keys))
            if not keys:  # the empty text
                out.append(PieceEncoding([], [], [], [], batch, 0))
                continue
            out.append(PieceEncoding([0] + ends[:-1], ends, [0] + tok_ends[:-1], keys, batch, tok_ends[-1]))
        return out


def _why_not_piecewise(backend, added_tokens) -> str:
    for t in added_tokens:
        if t.lstrip or t.rstrip or t.single_word:
            return f"added token {t.content!r} strips neighbouring whitespace"
        if t.normalized and backend.normalizer is not None:
            return f"added token {t.content!r} is matched after normalisation"
    pre = json.loads(backend.to_str()).get("pre_tokenizer") or {}
    if '"prepend_scheme":"first"' in json.dumps(pre, separators=(",", ":")):
        return "the pre-tokenizer treats a text's first piece differently (Metaspace prepend_scheme 'first')"
    return ""


def _spread(n: int, k: int) -> list[int]:
    """Up to k indices spread over range(n), first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


def _same(pieces: PieceEncoding, whole) -> bool:
    """Same ids and same character offsets for every token."""
    if len(pieces) != len(whole) or pieces.ids != whole.ids:
        return False
    offsets = whole.offsets
    return all(pieces.token_to_chars(k) == tuple(offsets[k]) for k in range(len(whole)))
