"""Prediction rows: what every generation backend returns and ``predictions.jsonl`` holds."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ftkit.errors import DataError
from ftkit.fsutil import atomic_write_text, read_jsonl

MAX_NEW_TOKENS_CAP = 1024


@dataclass
class Prediction:
    """One generated answer, with what it cost. ``latency_s`` is the wall time of the request/batch that
    produced it (what a caller waited), ``batch_size`` how many prompts shared that batch, ``batch`` its index
    (so throughput counts each batch's time once)."""

    id: str
    prompt_sha256: str
    output: str
    reference: str
    n_input_tokens: int
    n_output_tokens: int
    latency_s: float
    hit_max_new_tokens: bool
    label: str | None = None
    batch_size: int = 1
    batch: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def derive_max_new_tokens(configured: int, reference_token_lengths: list[int], cap: int = MAX_NEW_TOKENS_CAP) -> int:
    """``configured`` when > 0; else room for the longest audited reference plus 25 % and 16 tokens of slack,
    so a correct answer is never cut short while a runaway one stops early. At least 16, at most ``cap``.

    >>> derive_max_new_tokens(0, [10, 40, 20])
    66
    >>> derive_max_new_tokens(128, [10])
    128
    """
    if configured > 0:
        return configured
    longest = max(reference_token_lengths, default=0)
    return int(min(cap, max(16, math.ceil(longest * 1.25) + 16)))


def write_predictions(path: str | Path, predictions: list[Prediction]) -> Path:
    """predictions.jsonl: one JSON object per line, in test-split order (written atomically)."""
    lines = (json.dumps(p.to_dict(), ensure_ascii=False) for p in predictions)
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read predictions.jsonl back (the evaluation phase reads the baseline's)."""
    known = {f.name for f in fields(Prediction)}
    rows = []
    for number, data in read_jsonl(path, "re-run the phase that wrote it."):
        try:
            rows.append(Prediction(**{k: v for k, v in data.items() if k in known}))
        except (AttributeError, TypeError) as err:
            raise DataError(f"{path} line {number}: not a prediction row ({err}); re-run the phase that wrote it.")
    return rows


def throughput(predictions: list[Prediction]) -> dict:
    """Generated tokens per second of wall time (each batch's time counted once)."""
    seconds = sum({p.batch: p.latency_s for p in predictions}.values())
    tokens = sum(p.n_output_tokens for p in predictions)
    return {"output_tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": tokens / seconds if seconds > 0 else float("nan")}
