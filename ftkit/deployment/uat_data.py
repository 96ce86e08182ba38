"""``ftkit data from-uat``: approved and corrected UAT answers as chat-format training examples for the next
iteration.

From the feedback log (the last rating of each answer counts):

- a corrected answer (the tester wrote what the model should have said) becomes the assistant turn; the model's
  answer it replaces is kept in the provenance;
- an approved answer (thumbs up, no correction) becomes the assistant turn as the model gave it;
- a thumbs-down without a correction is not training data (nothing says what is right); it is counted.

Each record is ``{"messages": [system?, user, ..., assistant], "source": "uat", "provenance": {"tester", "time",
"request_id", "feedback_id", "rating", "kind": "corrected" | "approved", "replaced_answer", "comment",
"request_time"}}``: the data audit carries ``source`` and ``provenance`` into the splits and counts records per
source. Every text (the conversation, the target and the replaced answer) is PII-scanned with
``ftkit.data.pii``; a record with a hit is dropped (default) or redacted (``--pii redact``). The output is
written atomically, never over an existing file unless ``--force``, and a receipt (file, sha256, counts, request
ids) is appended to ``uat/exports.jsonl`` for the report.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.deployment.uat_log import FEEDBACK_FILE, append_line, now_utc, read_lines
from ftkit.deployment.uat_summary import latest_ratings
from ftkit.errors import FtkitError, UsageError

EXPORTS_FILE = "uat/exports.jsonl"
PII_MODES = ("drop", "redact")
SOURCE = "uat"


def parse_since(text: str) -> _dt.datetime | None:
    """``--since``: an ISO date or date-time; a date means its midnight UTC, a time without zone is UTC.

    >>> parse_since("2026-03-01").isoformat()
    '2026-03-01T00:00:00+00:00'
    """
    if not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+00:00], "
                         f"e.g. --since 2026-03-01") from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def _time(event: dict) -> _dt.datetime | None:
    try:
        return parse_since(str(event.get("time") or ""))
    except UsageError:
        return None


@dataclass
class UatExamples:
    records: list[dict]
    approved: int = 0
    corrected: int = 0
    rejected_without_correction: int = 0
    before_since: int = 0
    pii_dropped: dict[str, int] = field(default_factory=dict)
    pii_redacted: int = 0
    duplicates: int = 0

    def counts(self) -> dict:
        return {"written": len(self.records), "approved": self.approved, "corrected": self.corrected,
                "thumbs_down_without_correction": self.rejected_without_correction,
                "before_since": self.before_since, "pii_dropped": sum(self.pii_dropped.values()),
                "pii_dropped_by_kind": dict(self.pii_dropped), "pii_redacted": self.pii_redacted,
                "duplicates": self.duplicates}


def _example(event: dict) -> tuple[str, str] | None:
    """(kind, assistant target) or None when the rating gives no training target."""
    if (event.get("correction") or "").strip():
        return "corrected", event["correction"].strip()
    if event.get("rating") == "up" and (event.get("output") or "").strip():
        return "approved", event["output"]
    return None


def uat_examples(feedback_events: list[dict], since: _dt.datetime | None = None, pii: str = "drop") -> UatExamples:
    from ftkit.data.pii import find_pii, redact

    if pii not in PII_MODES:
        raise UsageError(f"--pii must be one of {', '.join(PII_MODES)}, got {pii!r}")
    out = UatExamples([])
    seen = set()
    for event in latest_ratings(feedback_events):
        when = _time(event)
        if since and (when is None or when < since):
            out.before_since += 1
            continue
        target = _example(event)
        if target is None:
            out.rejected_without_correction += event.get("rating") == "down"
            continue
        kind, answer = target
        messages = [{"role": m["role"], "content": m["content"]} for m in event.get("messages") or []]
        replaced = event.get("output") if kind == "corrected" else None
        texts = [m["content"] for m in messages] + [answer] + ([replaced] if replaced else [])
        hits = [h for t in texts for h in find_pii(t)]
        if hits and pii == "drop":
            for hit in hits:
                out.pii_dropped[hit.kind] = out.pii_dropped.get(hit.kind, 0) + 1
            continue
        if hits:
            messages = [{**m, "content": redact(m["content"])} for m in messages]
            answer, replaced = redact(answer), redact(replaced) if replaced else replaced
            out.pii_redacted += 1
        key = json.dumps([messages, answer], sort_keys=True)
        if key in seen:
            out.duplicates += 1
            continue
        seen.add(key)
        setattr(out, kind, getattr(out, kind) + 1)
        out.records.append({"messages": messages + [{"role": "assistant", "content": answer}], "source": SOURCE,
                            "provenance": {"tester": event.get("tester"), "time": event.get("time"),
                                           "request_id": event.get("request_id"),
                                           "feedback_id": event.get("feedback_id"), "rating": event.get("rating"),
                                           "kind": kind, "replaced_answer": replaced,
                                           "comment": event.get("comment") or "",
                                           "request_time": event.get("request_time")}})
    return out


def from_uat(engagement, out: str | Path, since: str = "", force: bool = False, pii: str = "drop") -> UatExamples:
    """Write the engagement's UAT examples to ``out`` (JSONL); refuses to overwrite unless ``force``."""
    from ftkit.fsutil import atomic_write_text, sha256_file

    out = Path(out)
    if out.exists() and not force:
        raise FtkitError(f"{out} already exists; pass --force to replace it, or choose another --out file.")
    feedback = engagement.path / FEEDBACK_FILE
    if not feedback.is_file():
        raise FtkitError(f"Engagement '{engagement.slug}' has no UAT feedback yet ({feedback}); run `ftkit serve "
                         f"{engagement.slug}` and let testers rate answers on its page first.")
    events, _ = read_lines(feedback)
    result = uat_examples(events, parse_since(since), pii)
    if not result.records:
        raise FtkitError(f"No approved or corrected answers to export ({_describe(result.counts())}); nothing "
                         f"written.")
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.records))
    append_line(engagement.path / EXPORTS_FILE, {"event": "export", "time": now_utc(), "file": str(out.resolve()),
                                                 "sha256": sha256_file(out), "since": since, "pii": pii,
                                                 **result.counts(),
                                                 "request_ids": [r["provenance"]["request_id"] for r in result.records]})
    return result


def _describe(counts: dict) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if isinstance(v, int) and v) or "no ratings"
