"""No compute spent on padding: padding-free packing with one attention window per example.

**Packing** (``training.packing: true``, the default). Whole examples are packed into sequences of at most
``max_seq_length`` tokens (best-fit decreasing, an example is never split). A batch of ``batch_size`` such
sequences is then *flattened*: all its examples are concatenated into one row of shape (1, total_tokens)
with no padding at all, and

- ``position_ids`` restart at 0 for each example (rotary positions as if it were alone);
- attention stays inside each example: ftkit's attention function ``ftkit_packed`` reads the boundaries from
  ``cu_seq_lens_q`` (cumulative lengths, flash-attention style), groups examples of similar length and runs
  ``scaled_dot_product_attention(is_causal=True)`` once per group. On CPU there is no varlen kernel, and a
  block-diagonal mask over the whole row would spend (total_tokens)^2 attention work of which only
  sum(length_i^2) is real; grouped calls spend about the real part (flash-attention 2 is used instead on CUDA
  when it is installed);
- the loss never crosses a boundary: the target of the last token of an example is -100;
- logits are computed only where there is a target (``logits_to_keep`` as indices): for chat data with
  long prompts most positions have none, and the (tokens x vocabulary) projection is skipped there.

The packed logits equal those of each example run alone (a test checks it to 1e-4).

**Length-grouped batches** (``packing: false``): one example per row, rows of similar length batched by the
Trainer's length-grouped sampler and right-padded to the longest; padding is masked by *position*
(attention mask 0, label -100), never by pad id.

Both report the real-token fraction: real tokens / processed tokens (1.0 when packing).
"""
from __future__ import annotations

import random
from bisect import bisect_left, insort
from dataclasses import dataclass

from ftkit.chat_format import IGNORE_INDEX
from ftkit.training.dataset import Example, check_batch_labels

ATTENTION_NAME = "ftkit_packed"


# -- bin packing ---------------------------------------------------------------------------------------------------

def pack_examples(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: indices of ``lengths`` grouped into bins holding at most ``capacity`` tokens.

    Each example goes to the fullest bin it still fits in (O(n log n) with a sorted list of free space).
    Examples inside a bin keep their original order; ``build_sequences`` shuffles the bins (seeded).

    >>> pack_examples([60, 50, 40, 30, 20], capacity=100)
    [[0, 2], [1, 3, 4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    free: list[tuple[int, int]] = []  # (free tokens, bin index), sorted
    bins: list[list[int]] = []
    for i in order:
        need = min(lengths[i], capacity)
        pos = bisect_left(free, (need, -1))
        if pos < len(free):
            space, b = free.pop(pos)
        else:
            space, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if space - need > 0:
            insort(free, (space - need, b))
    return [sorted(b) for b in bins]


@dataclass
class PackingReport:
    """What packing achieved for one split. Tokens are per epoch."""

    mode: str  # "packed" | "length_grouped"
    examples: int
    sequences: int
    capacity: int  # max_seq_length
    real_tokens: int
    processed_tokens: int  # what the model computes on: real + padding

    @property
    def real_token_fraction(self) -> float:
        return self.real_tokens / self.processed_tokens if self.processed_tokens else 1.0

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.real_token_fraction

    def to_dict(self) -> dict:
        fill = self.real_tokens / (self.sequences * self.capacity) if self.sequences else 0.0
        return {"mode": self.mode, "examples": self.examples, "sequences": self.sequences,
                "max_seq_length": self.capacity, "real_tokens": self.real_tokens,
                "processed_tokens": self.processed_tokens,
                "real_token_fraction": round(self.real_token_fraction, 4),
                "padding_fraction": round(self.padding_fraction, 4),
                "examples_per_sequence": round(self.examples / self.sequences, 2) if self.sequences else 0.0,
                "sequence_fill": round(fill, 4)}


def build_sequences(examples: list[Example], max_seq_length: int, packing: bool, seed: int) -> list[list[Example]]:
    """Training sequences: packed bins of examples, or one example each (length-grouped later by the sampler)."""
    if not packing:
        return [[e] for e in examples]
    bins = pack_examples([e.n_tokens for e in examples], max_seq_length)
    random.Random(seed).shuffle(bins)  # best-fit order groups long examples first; the sampler reshuffles anyway
    return [[examples[i] for i in b] for b in bins]


def packing_report(sequences: list[list[Example]], max_seq_length: int, packing: bool, batch_size: int) -> PackingReport:
    """Real vs processed tokens. Packed batches have no padding; for length-grouped batches the padding is
    estimated by batching the length-sorted examples (the sampler's grouping is close to, not exactly, that)."""
    real = sum(e.n_tokens for seq in sequences for e in seq)
    if packing:
        return PackingReport("packed", sum(len(s) for s in sequences), len(sequences), max_seq_length, real, real)
    lengths = sorted((seq[0].n_tokens for seq in sequences), reverse=True)
    processed = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size])
                    for i in range(0, len(lengths), batch_size))
    return PackingReport("length_grouped", len(lengths), len(lengths), max_seq_length, real, processed)


# -- datasets and collators ----------------------------------------------------------------------------------------

class SequenceDataset:
    """A map-style dataset of training sequences (lists of examples); what the Trainer's sampler shuffles."""

    def __init__(self, sequences: list[list[Example]]):
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict:
        seq = self.sequences[i]
        # "input_ids" lets the Trainer's length-grouped sampler measure the sequence.
        return {"examples": seq, "input_ids": [t for e in seq for t in e.input_ids]}


def _targets(labels: list[int]) -> list[int]:
    """Next-token targets of one example: ``targets[t] = labels[t + 1]``, -100 at the last position, so the last
    token of an example is never trained to predict the first token of the next one."""
    return labels[1:] + [IGNORE_INDEX]


class PaddingFreeCollator:
    """Flatten a batch of packed sequences into one row (1, total_tokens) with per-example positions.

    Output tensors: ``input_ids``, ``position_ids``, ``labels`` (1, T); ``logits_to_keep`` (K,) = indices of the
    positions that have a target (K of T); ``shift_labels`` (1, K) = those targets, which the loss uses as they
    are (no further shift); ``cu_seq_lens_q/k`` int32 (n + 1,) example boundaries; ``max_length_q/k`` the longest
    example. (1-D indices rather than a boolean mask: every transformers 5.x release slices them the same way.)
    """

    def __init__(self, eot_id: int | None, check: bool = True):
        self.eot_id, self.check = eot_id, check

    def __call__(self, features: list[dict]) -> dict:
        import torch

        examples = [e for f in features for e in f["examples"]]
        ids, pos, labels, targets, bounds = [], [], [], [], [0]
        for e in examples:
            ids += e.input_ids
            pos += range(e.n_tokens)
            labels += [IGNORE_INDEX] + e.labels[1:]  # a first token is never a target
            targets += _targets(e.labels)
            bounds.append(bounds[-1] + e.n_tokens)
        targets_t = torch.tensor(targets)
        if self.check:
            check_batch_labels(targets_t, self.eot_id)
        keep = (targets_t != IGNORE_INDEX).nonzero().flatten()
        longest = max(e.n_tokens for e in examples)
        cu = torch.tensor(bounds, dtype=torch.int32)
        return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([pos]), "labels": torch.tensor([labels]),
                "logits_to_keep": keep, "shift_labels": targets_t[keep].unsqueeze(0), "cu_seq_lens_q": cu,
                "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


class PaddedCollator:
    """Right-pad one-example rows to the longest in the batch; pads are masked by position, not by pad id.

    Output: ``input_ids``, ``attention_mask`` (1 = real token) and ``labels`` (-100 on padding), each (batch, width).
    """

    def __init__(self, pad_id: int, eot_id: int | None, check: bool = True):
        self.pad_id, self.eot_id, self.check = pad_id, eot_id, check

    def __call__(self, features: list[dict]) -> dict:
        import torch

        examples = [e for f in features for e in f["examples"]]
        width = max(e.n_tokens for e in examples)
        ids = torch.full((len(examples), width), self.pad_id)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX)
        for row, e in enumerate(examples):
            ids[row, :e.n_tokens] = torch.tensor(e.input_ids)
            mask[row, :e.n_tokens] = 1
            labels[row, :e.n_tokens] = torch.tensor(e.labels)
        if self.check:
            check_batch_labels(labels[:, 1:], self.eot_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_collator(packing: bool, tokenizer, eot_id: int | None, check: bool = True):
    if packing:
        return PaddingFreeCollator(eot_id, check)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eot_id or 0)
    return PaddedCollator(pad, eot_id, check)


# -- attention restricted to each example ----------------------------------------------------------------------------

def _segments(kwargs: dict, seq_len: int) -> list[int] | None:
    """Example lengths of a packed row, from ``cu_seq_lens_q`` or else from position ids restarting at 0."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:
        bounds = cu.tolist()
        return [b - a for a, b in zip(bounds, bounds[1:])]
    pos = kwargs.get("position_ids")
    if pos is None or pos.shape[0] != 1:
        return None
    starts = (pos[0] == 0).nonzero().flatten().tolist()
    if len(starts) <= 1 or starts[0] != 0:
        return None
    return [b - a for a, b in zip(starts, starts[1:] + [seq_len])]


BUCKET = 64  # examples are grouped by length rounded up to this many tokens: one sdpa call per group
_PLANS: dict = {}  # (lengths, device) -> grouping plan; every layer of a forward pass reuses the same one


def _plan(lengths: tuple[int, ...], device):
    """Group examples by padded length. Returns ([(n, L, gather index (n*L,))], inverse index (T,)).

    Gather indices point into the flattened tokens plus one zero row at index T (the padding); the inverse
    index puts each real token's output back in its original position.
    """
    key = (lengths, str(device))
    if key in _PLANS:
        return _PLANS[key]
    import torch

    starts, total = [], 0
    for n in lengths:
        starts.append(total)
        total += n
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(-(-n // BUCKET) * BUCKET, []).append(i)
    plan, inverse, offset = [], [0] * total, 0
    for width, members in sorted(groups.items()):
        gather = []
        for i in members:
            n, s0 = lengths[i], starts[i]
            gather += list(range(s0, s0 + n)) + [total] * (width - n)
            inverse[s0:s0 + n] = range(offset, offset + n)
            offset += width
        plan.append((len(members), width, torch.tensor(gather, device=device)))
    result = (plan, torch.tensor(inverse, device=device))
    if len(_PLANS) > 8:
        _PLANS.clear()
    _PLANS[key] = result
    return result


def packed_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                             is_causal=None, **kwargs):
    """Causal attention inside each example of a packed row; anything else goes to transformers' sdpa.

    query: (1, heads, T, head_dim); key/value: (1, kv_heads, T, head_dim) -> output (1, T, heads, head_dim).
    Examples of similar length are batched into one ``scaled_dot_product_attention(is_causal=True)`` call,
    right-padded with zero rows: causal attention never lets a real token see the padding after it, and the
    padding's own outputs are dropped, so the result equals attention over each example alone.
    """
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    seq_len = query.shape[2]
    lengths = None
    if attention_mask is None and query.shape[0] == 1 and key.shape[2] == seq_len:
        lengths = _segments(kwargs, seq_len)
    if not lengths or len(lengths) == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    plan, inverse = _plan(tuple(lengths), query.device)
    # (1, h, T, d) -> (T + 1, h, d): tokens first, one zero row for the padding
    flat = [torch.cat([x[0].transpose(0, 1), x.new_zeros(1, x.shape[1], x.shape[3])])
            for x in (query, repeat_kv(key, groups), repeat_kv(value, groups))]
    outs = []
    for n, width, gather in plan:
        q, k, v = (x.index_select(0, gather).view(n, width, x.shape[1], x.shape[2]).transpose(1, 2) for x in flat)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True)
        outs.append(out.transpose(1, 2).reshape(n * width, out.shape[1], out.shape[3]))
    return torch.cat(outs).index_select(0, inverse).unsqueeze(0), None


def _packed_mask(*args, attention_mask=None, **kwargs):
    """No mask for a padding-free row (the attention function keeps examples apart); sdpa's mask otherwise."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register_packed_attention() -> str:
    """Register ``ftkit_packed`` with transformers (idempotent) and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION_NAME, packed_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, _packed_mask)
    return ATTENTION_NAME
