"""Duplicates: exact (normalised text), near (MinHash LSH), and conflicting answers to the same prompt.

Near-duplicates use datasketch's MinHash (scheme ``affine32``: a MurmurHash3 pre-mix of each shingle hash,
then ``a*h + b mod 2^32`` per permutation) over word 3-gram shingles of the normalised non-system text, and
datasketch's ``MinHashLSH`` to choose the band layout (b bands x r rows) for the Jaccard threshold.
Signatures for a whole batch of texts are computed in one vectorised numpy pass that reproduces
``datasketch.MinHash.update_batch`` bit for bit (a test checks it): building 100k MinHash objects one by one
costs ~80 µs each, this ~10 µs per text.

>>> sig = minhash_signatures(["the cat sat on the mat today", "the cat sat on the mat today"])
>>> bool((sig[0] == sig[1]).all()), sig.shape
(True, (2, 64))
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

import numpy as np

NUM_PERM = 64  # Jaccard estimate std ~ sqrt(J(1-J)/64) ~ 0.045 at J=0.85: enough to group, verified per pair
SEED = 1
SHINGLE = 3  # words per shingle
_U64 = np.uint64
_P = _U64(0x100000001B3)  # FNV prime: odd, so it is invertible mod 2^64
_WS = re.compile(r"\s+")


# Characters that render as nothing (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi marks and
# isolates, Mongolian vowel separator, invisible math operators, variation selectors): removed from the
# comparison keys, so "re\u200bfund" and "refund" are the same text.
_INVISIBLE = dict.fromkeys([0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0,
                            *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070),
                            *range(0xFE00, 0xFE10)])


def normalise_text(text: str) -> str:
    """The comparison form of a text for exact duplicates, near-duplicate shingles and leakage: Unicode NFKC
    (full-width letters, ligatures, non-breaking spaces become their plain forms), case-folded, invisible and
    zero-width characters removed, whitespace collapsed. Only the keys use it; the stored and trained text stays
    as delivered. ASCII text (most of it) takes a fast path: NFKC and the invisible set leave it unchanged.

    >>> normalise_text("  Hello\\r\\n  World ")
    'hello world'
    >>> normalise_text("ＲＥ\u200bFUND  for  STRASSE") == normalise_text("refund for straße")
    True
    """
    if text.isascii():
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold().split())


def text_key(text: str) -> bytes:
    """16-byte digest of the normalised text."""
    return hashlib.blake2b(normalise_text(text).encode("utf-8"), digest_size=16).digest()


def conversation_keys(messages: list[dict]) -> tuple[bytes, bytes, bytes]:
    """(whole-conversation key, prompt key, answer key). The prompt is every message before the last assistant
    message; two records with the same prompt key and different answer keys conflict. The whole key is derived
    from the two others (and any trailing turns) so each text is normalised once.

    The prompt key is ``text_key`` of the messages joined as ``role \x1f content \x1e ...``; the separators
    are whitespace to ``str.split``, so that equals the per-message normalised texts joined by spaces, which
    lets the normalised text of a recurring message (the system prompt) be cached.

    >>> msgs = [{"role": "system", "content": "Be  brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    >>> conversation_keys(msgs)[1] == text_key("system\x1fBe  brief.\x1euser\x1fHi")
    True
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    parts = [p for m in messages[:last] for p in (m["role"].lower(), _normalised(m["content"])) if p]
    prompt = hashlib.blake2b(" ".join(parts).encode("utf-8"), digest_size=16).digest()
    answer = _text_key_short(messages[last]["content"]) if last < len(messages) else text_key("")
    tail = "\x1e".join(m["role"] + "\x1f" + m["content"] for m in messages[last + 1:])
    whole = hashlib.blake2b(prompt + answer + (text_key(tail) if tail else b""), digest_size=16).digest()
    return whole, prompt, answer


def _normalised(text: str) -> str:
    return _normalised_cached(text) if len(text) <= 2048 else normalise_text(text)


@lru_cache(maxsize=1024)
def _normalised_cached(text: str) -> str:
    return normalise_text(text)  # system prompts and stock answers recur in every record


def _text_key_short(text: str) -> bytes:
    return _text_key_cached(text) if len(text) <= 2048 else text_key(text)


@lru_cache(maxsize=4096)
def _text_key_cached(text: str) -> bytes:
    return text_key(text)  # classification and structured answers: a few dozen distinct ones


def near_dup_text(messages: list[dict]) -> str:
    """The text compared for near-duplicates: every non-system message. A system prompt shared by all records
    would otherwise make short records look alike."""
    return "\n".join(m["content"] for m in messages if m["role"] != "system")


@lru_cache(maxsize=4)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations (odd ``a``, any ``b``, uint32) for ``MinHash(num_perm, seed)``,
    drawn exactly as its ``_init_permutations`` draws them (a test compares them with datasketch's).

    Why not ask datasketch: importing it imports scipy.integrate, ~0.85 s on a small machine, paid before
    the audit's workers can start (5 % of a 100k-record audit)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3 32-bit finalizer, exactly as datasketch's affine32 scheme applies it to input hashes.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


_WORD_BYTE = np.zeros(256, dtype=bool)  # bytes that belong to words: ASCII letters/digits and UTF-8 multibyte
for _c in b"abcdefghijklmnopqrstuvwxyz0123456789":
    _WORD_BYTE[_c] = True
_WORD_BYTE[0x80:] = True


def shingle_hashes(texts: list[str], max_chars: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the word 3-grams of every text, and the text index of each: shapes (n_shingles,).

    Words are runs of letters/digits of the normalised text (:func:`normalise_text`); a word's hash is a polynomial over its bytes
    computed for all words at once from prefix sums (``sum b_j P^j``, mod 2^64). Texts with fewer than 3 words
    contribute their words as 1-grams. Only the first ``max_chars`` characters count (bounds the work).
    """
    # NUL separates the texts, so a NUL inside one (an escaped "\u0000" in the client's JSON) becomes a space:
    # otherwise it would start a phantom text and shift every later text's index.
    data = "\x00".join(normalise_text(t[:max_chars]).replace("\x00", " ") for t in texts).encode("utf-8")
    b = np.frombuffer(data, dtype=np.uint8)
    text_id = np.cumsum(b == 0, dtype=np.int64)  # separator count before each byte = index of its text
    is_word = _WORD_BYTE[b]
    if not is_word.any():
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    edges = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    n = len(b)
    powers = np.full(n, _P, dtype=_U64)
    powers[0] = 1
    powers = np.cumprod(powers, dtype=_U64)  # P^0 .. P^(n-1), wrapping mod 2^64
    prefix = np.concatenate(([_U64(0)], np.cumsum(b.astype(_U64) * powers, dtype=_U64)))
    inv_powers = np.full(n, _U64(pow(int(_P), -1, 1 << 64)), dtype=_U64)
    inv_powers[0] = 1
    inv_powers = np.cumprod(inv_powers, dtype=_U64)  # P^-0 .. P^-(n-1): shifts each word back to position 0
    word = _fmix64((prefix[ends] - prefix[starts]) * inv_powers[starts])  # position-independent word hash
    word_text = text_id[starts]
    n_texts = len(texts)
    counts = np.bincount(word_text, minlength=n_texts)
    ok = (word_text[:-2] == word_text[2:]) if len(word) >= SHINGLE else np.zeros(0, bool)
    grams = _fmix64(word[:-2] * _U64(0x9E3779B97F4A7C15) ^ word[1:-1] * _U64(0xC2B2AE3D27D4EB4F) ^ word[2:])[ok] \
        if len(word) >= SHINGLE else np.zeros(0, _U64)
    gram_text = word_text[:-2][ok] if len(word) >= SHINGLE else np.zeros(0, np.int64)
    short = counts[word_text] < SHINGLE  # texts too short for 3-grams: use their words
    hashes = np.concatenate((grams, word[short])).astype(np.uint32)
    owners = np.concatenate((gram_text, word_text[short]))
    order = np.argsort(owners, kind="stable")
    return hashes[order], owners[order]


def minhash_signatures(texts: list[str], num_perm: int = NUM_PERM, seed: int = SEED,
                       block: int = 8192) -> np.ndarray:
    """MinHash signatures, shape (len(texts), num_perm) uint32, equal to datasketch's
    ``MinHash(num_perm, seed, hashfunc=<our shingle hash>, scheme="affine32").update_batch(shingles)``.
    A text without words gets the all-0xFFFFFFFF (empty) signature.

    Layout (num_perm, block) with preallocated buffers: a block of 8192 shingles is 2 MiB and stays in cache;
    the per-text minimum is a ``reduceat`` along the contiguous axis (14x faster than along axis 0).
    """
    a, b = _permutations(num_perm, seed)
    hashes, owners = shingle_hashes(texts)
    sig = np.full((num_perm, len(texts)), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    if len(hashes) == 0:
        return np.ascontiguousarray(sig.T)
    mixed = _fmix32(hashes)
    buf = np.empty((num_perm, block), dtype=np.uint32)
    col_a, col_b = a[:, None], b[:, None]
    for lo in range(0, len(mixed), block):
        h, own = mixed[lo:lo + block], owners[lo:lo + block]
        phv = buf[:, :len(h)]
        np.multiply(col_a, h[None, :], out=phv)  # uint32 arithmetic wraps: that is datasketch's mod 2^32
        np.add(phv, col_b, out=phv)
        seg = np.flatnonzero(np.concatenate(([True], own[1:] != own[:-1])))
        mins = np.minimum.reduceat(phv, seg, axis=1)
        rows = own[seg]
        sig[:, rows] = np.minimum(sig[:, rows], mins)
    return np.ascontiguousarray(sig.T)


LSH_WEIGHTS = (0.05, 0.95)  # (false positive, false negative): candidates are verified, so favour recall


@lru_cache(maxsize=16)
def lsh_layout(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) that datasketch's MinHashLSH picks for this threshold, weighted towards recall: with 64
    permutations at 0.85 that is 8 bands x 8 rows, catching ~92 % of pairs at the threshold and ~99 % at 0.9
    (equal weights would give 4 x 15 and miss ~70 % at the threshold). Every candidate is verified.

    The same search as datasketch's ``_optimal_param``: minimise the weighted false-positive and
    false-negative areas over every (b, r) with b * r <= num_perm, in the same order. Its integrands are
    polynomials of degree b * r <= num_perm, so Gauss-Legendre quadrature with num_perm / 2 + 2 nodes is
    exact (up to rounding) and needs numpy only, where datasketch's scipy.integrate import costs ~0.8 s.
    A test checks the layouts equal datasketch's over a grid of thresholds.

    >>> lsh_layout(0.85)
    (8, 8)
    """
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 2)  # on [-1, 1]
    below, w_below = (nodes + 1) * threshold / 2, weights * threshold / 2  # on [0, threshold]
    above, w_above = threshold + (nodes + 1) * (1 - threshold) / 2, weights * (1 - threshold) / 2
    w_fp, w_fn = LSH_WEIGHTS
    best, layout = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            false_positive = float(np.dot(w_below, 1 - (1 - below ** r) ** b))  # P(candidate) below the threshold
            false_negative = float(np.dot(w_above, (1 - above ** r) ** b))  # P(missed) above it
            error = false_positive * w_fp + false_negative * w_fn
            if error < best:
                best, layout = error, (b, r)
    return layout


class UnionFind:
    """Disjoint sets over 0..n-1 (path halving).

    >>> uf = UnionFind(4); uf.union(0, 2); uf.union(2, 3); uf.find(3) == uf.find(0), uf.find(1) == uf.find(0)
    (True, False)
    """

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)  # the smaller index is the root: deterministic groups


def near_duplicate_pairs(sig: np.ndarray, threshold: float, candidates: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """Verified near-duplicate pairs (i, j, estimated Jaccard) among rows of ``sig``.

    Rows sharing an LSH band bucket are candidates; each is compared with its bucket's first row (a star, so a
    bucket of k rows costs k comparisons, not k^2) and kept when the estimated Jaccard >= ``threshold``.
    ``candidates``: optional boolean mask of rows to consider (others are ignored).
    """
    n, num_perm = sig.shape
    if n < 2:
        return []
    bands, rows = lsh_layout(threshold, num_perm)
    idx = np.arange(n) if candidates is None else np.flatnonzero(candidates)
    empty = (sig[idx] == np.uint32(0xFFFFFFFF)).all(axis=1)
    idx = idx[~empty]
    heads_all, others_all, sims_all = [], [], []
    for band in range(bands):  # fully vectorised: no Python loop over buckets
        chunk = np.ascontiguousarray(sig[idx, band * rows:(band + 1) * rows])
        keys = chunk.view(np.dtype((np.void, chunk.dtype.itemsize * rows))).ravel()
        order = np.argsort(keys, kind="stable")  # stable: within a bucket, members stay in index order
        sorted_keys = keys[order]
        new_bucket = np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1]))
        head_pos = np.maximum.accumulate(np.where(new_bucket, np.arange(len(order)), 0))
        members, heads = idx[order], idx[order[head_pos]]  # each row and its bucket's first (smallest) row
        cand = members != heads
        if not cand.any():
            continue
        m, h = members[cand], heads[cand]
        sims = (sig[m] == sig[h]).mean(axis=1)
        keep = sims >= threshold
        heads_all.append(h[keep])
        others_all.append(m[keep])
        sims_all.append(sims[keep])
    if not heads_all:
        return []
    h, o, sm = np.concatenate(heads_all), np.concatenate(others_all), np.concatenate(sims_all)
    pairs = {(int(a), int(b)): float(x) for a, b, x in zip(h, o, sm)}
    return [(i, j, s) for (i, j), s in sorted(pairs.items())]


def groups_from_pairs(n: int, pairs: list[tuple[int, int, float]]) -> list[list[int]]:
    """Connected components (size >= 2) of the pair graph, each sorted, ordered by first member."""
    uf = UnionFind(n)
    for i, j, _ in pairs:
        uf.union(i, j)
    members: dict[int, set[int]] = {}
    for i, j, _ in pairs:
        root = uf.find(i)
        members.setdefault(root, set()).update((i, j))
    return sorted((sorted(m) for m in members.values()), key=lambda g: g[0])


def exact_groups(keys: list[bytes]) -> list[list[int]]:
    """Groups (size >= 2) of indices with equal keys, in first-occurrence order.

    >>> exact_groups([b"a", b"b", b"a", b"c", b"b"])
    [[0, 2], [1, 4]]
    """
    seen: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys):
        seen.setdefault(key, []).append(i)
    return [g for g in seen.values() if len(g) > 1]


def conflict_groups(prompt_keys: list[bytes], answer_keys: list[bytes]) -> list[list[int]]:
    """Groups of indices that share a prompt but not an answer (contradictory targets).

    >>> conflict_groups([b"p", b"p", b"q", b"q"], [b"x", b"y", b"z", b"z"])
    [[0, 1]]
    """
    by_prompt: dict[bytes, list[int]] = {}
    for i, key in enumerate(prompt_keys):
        by_prompt.setdefault(key, []).append(i)
    return [g for g in by_prompt.values() if len(g) > 1 and len({answer_keys[i] for i in g}) > 1]
