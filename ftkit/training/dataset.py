"""Training examples: the audited splits tokenized with assistant-only labels, and the label checks.

Labels come from ``ftkit.chat_format.tokenize_with_assistant_labels``: the assistant turns *including* their
end-of-turn token (``<|im_end|>`` for ChatML) are targets, everything else is -100. Nothing here masks by pad
id: SmolLM2's pad id == eos id, and masking pads would also mask the end-of-turn token, so the model would never
learn to stop. Padding (when there is any) is masked by *position* in ``ftkit.training.packing``.

Before training every packed sequence is checked (``check_sequences``): each must carry trainable labels, and
each example in it must train its end-of-turn token. Every batch is made of whole sequences, so this covers
every batch; the collators check each batch again as it is built (``check_batch_labels``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftkit.chat_format import IGNORE_INDEX, template_info, tokenize_with_assistant_labels
from ftkit.chat_plan import with_system
from ftkit.errors import DataError

_CHUNK = 512  # conversations per tokenizer call: batched for speed, bounded for memory


@dataclass
class Example:
    """One tokenized conversation: ``input_ids`` and ``labels`` are lists of the same length (n_tokens)."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def n_labels(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass
class TokenizedSplit:
    """A split ready for packing, with what was left out and why."""

    name: str
    examples: list[Example]
    n_records: int
    truncated: list[str] = field(default_factory=list)  # ids cut to max_seq_length, answer's end still inside
    dropped_cut_answer: list[str] = field(default_factory=list)  # ids whose answer end fell beyond max_seq_length
    dropped_no_labels: list[str] = field(default_factory=list)  # ids with nothing to learn (e.g. weight: 0 only)

    @property
    def n_tokens(self) -> int:
        return sum(e.n_tokens for e in self.examples)

    @property
    def n_label_tokens(self) -> int:
        return sum(e.n_labels for e in self.examples)

    def report(self) -> dict:
        return {"split": self.name, "records": self.n_records, "examples": len(self.examples),
                "tokens": self.n_tokens, "label_tokens": self.n_label_tokens,
                "label_share": round(self.n_label_tokens / self.n_tokens, 4) if self.n_tokens else 0.0,
                "truncated": len(self.truncated), "dropped_answer_cut": len(self.dropped_cut_answer),
                "dropped_no_labels": len(self.dropped_no_labels)}


def read_split(path: str | Path) -> list[dict]:
    """Records of a split file written by the data audit: the one reader baseline and training share
    (:func:`ftkit.prompting.read_records`)."""
    from ftkit.prompting import read_records

    return read_records(path)


def tokenize_split(tokenizer, records: list[dict], max_seq_length: int, name: str = "train",
                   system_prompt: str = "") -> TokenizedSplit:
    """Tokenize ``records`` with assistant-only labels, truncating to ``max_seq_length`` tokens. Records without
    a system message get ``system_prompt`` (the engagement's ``task.system_prompt``), as baseline and serving do.

    An example whose final answer would lose its end-of-turn token to truncation is dropped (it would teach the
    model not to stop); one whose labels are empty is dropped (nothing to learn). Both are listed by id.
    """
    info = template_info(tokenizer)
    out = TokenizedSplit(name, [], len(records))
    for start in range(0, len(records), _CHUNK):
        chunk = records[start:start + _CHUNK]
        try:
            rows = tokenize_with_assistant_labels(tokenizer, [with_system(r["messages"], system_prompt) for r in chunk],
                                                  max_length=max_seq_length)
        except ValueError as err:
            raise DataError(f"{name} split: {err}. The data audit should have rejected this record; re-run it "
                            f"with the same base model.") from None
        for k, (record, row) in enumerate(zip(chunk, rows)):
            _keep_or_drop(out, str(record.get("id", start + k)), row, max_seq_length, info.end_of_turn_id)
    return out


def _keep_or_drop(out: TokenizedSplit, rid: str, row: dict, max_seq_length: int, eot_id: int | None) -> None:
    full = row["n_tokens"] >= max_seq_length  # cut by the tokenizer (or exactly max_seq_length long)
    if row["n_label_tokens"] == 0:
        (out.dropped_cut_answer if full else out.dropped_no_labels).append(rid)
        return
    if full and not row["has_end_of_turn_label"] and eot_id is not None:
        out.dropped_cut_answer.append(rid)
        return
    if full:
        out.truncated.append(rid)
    out.examples.append(Example(rid, row["input_ids"], row["labels"]))


def subset(split: TokenizedSplit, limit: int) -> TokenizedSplit:
    """The first ``limit`` examples (0 = all); the audit's split order is already seeded and stratified."""
    if limit <= 0 or limit >= len(split.examples):
        return split
    return TokenizedSplit(split.name, split.examples[:limit], split.n_records, split.truncated,
                          split.dropped_cut_answer, split.dropped_no_labels)


# -- label checks --------------------------------------------------------------------------------------------------

def example_trains_end_of_turn(example: Example, eot_id: int | None) -> bool:
    """True when the example's last label is the end-of-turn token (no template marker known: any label)."""
    labelled = [x for x in example.labels if x != IGNORE_INDEX]
    return bool(labelled) and (eot_id is None or labelled[-1] == eot_id)


def check_sequences(sequences: list[list[Example]], eot_id: int | None, split: str = "train") -> dict:
    """Refuse training when a sequence (a packed row, or one example) has no labels or an example in it
    does not train its end-of-turn token. Returns counts for the report.

    >>> ok = Example("a", [5, 6, 2], [-100, 6, 2])
    >>> check_sequences([[ok]], eot_id=2)["sequences"]
    1
    """
    bad_empty = [i for i, seq in enumerate(sequences) if not any(e.n_labels for e in seq)]
    bad_eot = [e.id for seq in sequences for e in seq if not example_trains_end_of_turn(e, eot_id)]
    if bad_empty:
        raise DataError(f"{split}: {len(bad_empty)} of {len(sequences)} training sequences have no trainable labels "
                        f"(every label is -100), so a batch made of them would train on nothing. Check the chat "
                        f"template and the assistant turns (data audit section 'Tokens and label coverage').")
    if bad_eot:
        raise DataError(f"{split}: {len(bad_eot)} examples do not train their end-of-turn token (e.g. "
                        f"{', '.join(bad_eot[:3])}); the model would not learn to stop. Check that the chat template "
                        f"ends assistant turns with an end-of-turn token and that max_seq_length keeps it.")
    n_examples = sum(len(seq) for seq in sequences)
    return {"split": split, "sequences": len(sequences), "examples": n_examples,
            "examples_training_end_of_turn": n_examples, "sequences_without_labels": 0}


def check_batch_labels(labels, eot_id: int | None) -> int:
    """Refuse a collated batch without trainable labels, or (given ``eot_id``) without an end-of-turn label.

    ``labels``: LongTensor (batch, seq) or (1, total) for padding-free batches. Returns the number of label tokens.
    """
    n = int((labels != IGNORE_INDEX).sum())
    if n == 0:
        raise DataError("A training batch has no trainable labels (every label is -100): it would train on nothing. "
                        "The label masks are wrong for this data; check the chat template and assistant turns.")
    if eot_id is not None and not bool((labels == eot_id).any()):
        raise DataError(f"A training batch has labels but none is the end-of-turn token (id {eot_id}): the model "
                        f"would not learn to stop. Check the chat template and max_seq_length.")
    return n
