"""One yardstick for every model compared: recorded answers re-scored on the current test references, and a hash
of the (id, reference) pairs an evaluation scored, so the ledger can tell which iterations share a test set."""
from __future__ import annotations

import hashlib


def on_current_references(predictions: list, records: list[dict]) -> list:
    """Recorded answers scored against the current test records' references (same ids): a review sheet may have
    corrected a test answer since they were recorded, and a paired comparison needs one yardstick.

    >>> from ftkit.generation.predictions import Prediction
    >>> p = Prediction("a", "h", "out", "old", 1, 1, 0.0, False, "x")
    >>> [(q.reference, q.label) for q in on_current_references([p], [{"id": "a", "label": "y",
    ...     "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "new"}]}])]
    [('new', 'y')]
    """
    from dataclasses import replace

    from ftkit.prompting import split_record

    by_id = {str(r.get("id")): r for r in records}
    out = []
    for p in predictions:
        r = by_id.get(p.id)
        if r is None:
            out.append(p)
            continue
        label = r.get("label")
        out.append(replace(p, reference=split_record(r)[1], label=None if label is None else str(label)))
    return out


def test_set_hash(predictions) -> str:
    """sha256 over the sorted (id, reference) pairs scored: equal = the same yardstick.

    >>> from types import SimpleNamespace as P
    >>> test_set_hash([P(id="1", reference="a")]) == test_set_hash([P(id="1", reference="b")])
    False
    """
    text = "\n".join(f"{p.id}\t{p.reference}" for p in sorted(predictions, key=lambda p: str(p.id)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
