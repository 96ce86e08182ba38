"""The UAT logs: every answered request and every tester's judgement, as append-only JSONL.

Two files, one JSON object per line:

- the request log (``deployment.uat_log``, default ``serving/uat_requests.jsonl``): ``{"event": "request",
  "request_id", "tester", "time", "model", "messages", "output", "finish_reason", "prompt_tokens",
  "completion_tokens", "latency_s", "stream"}``. It is also what ``ftkit monitor --log`` reads for drift.
- the feedback log (``uat/feedback.jsonl``): ``{"event": "feedback", "feedback_id", "request_id", "tester",
  "time", "rating": "up" | "down", "correction", "comment", "messages", "output"}``: the exchange it rates is
  copied in (from the server's memory, else from the request log), so the feedback log alone is the evidence
  and the source of ``ftkit data from-uat``.

Writes: each line is one ``os.write`` on an ``O_APPEND`` descriptor under an exclusive ``flock`` (several server
processes may share a log), then ``fsync``: a line is on disk before the client hears "200", and a kill -9 can at
worst lose the line being written, never an earlier one. Lines name the tester, never the token.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ftkit.deployment.chat_request import RequestError
from ftkit.errors import DataError

FEEDBACK_FILE = "uat/feedback.jsonl"
RATINGS = ("up", "down")
MAX_CORRECTION_CHARS = 20_000  # a corrected answer is a training target: longer than any answer the model may give
MAX_COMMENT_CHARS = 4_000
RECENT_EXCHANGES = 10_000  # exchanges kept in memory for feedback lookups (~a few MB); older ones come from the file


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def append_line(path: Path, obj: dict) -> None:
    """Append one JSON line: O_APPEND + one write under flock + fsync (see the module docstring)."""
    from ftkit.audit_log import _append_whole_line

    data = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: O_APPEND alone keeps whole lines for writes this small
            fcntl = None
        if fcntl:
            fcntl.flock(fd, fcntl.LOCK_EX)
        _append_whole_line(fd, data)  # all of it or nothing, then fsync
    finally:
        os.close(fd)  # closing releases the flock


def read_lines(path: str | Path) -> tuple[list[dict], list[str]]:
    """(events, notes). A last line without its newline is a write cut short by a crash: skipped and noted.
    Any other line that is not a JSON object is an edit or corruption: DataError naming the line."""
    path = Path(path)
    if not path.is_file():
        return [], []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    events, notes = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError as err:
            if number == len(lines) and not raw.endswith(b"\n"):
                notes.append(f"{path.name} line {number} is incomplete (the server stopped while writing it); skipped")
                continue
            raise DataError(f"{path} line {number}: not a JSON object ({err}). The UAT log is append-only: restore "
                            f"it from a backup, or move the damaged line out and note why.") from None
        events.append(obj)
    return events, notes


@dataclass
class Feedback:
    request_id: str
    rating: str
    correction: str = ""
    comment: str = ""


def _text(body: dict, name: str, limit: int) -> str:
    value = body.get(name) or ""
    if not isinstance(value, str):
        raise RequestError(400, f"'{name}' must be text, got {type(value).__name__}", name)
    if len(value) > limit:
        raise RequestError(400, f"'{name}' has {len(value):,} characters; at most {limit:,}", name)
    return value.strip()


def parse_feedback(raw: bytes) -> Feedback:
    """``{"request_id", "rating": "up"|"down", "correction"?, "comment"?}``; RequestError (400) naming the field."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise RequestError(400, f"The feedback body is not valid JSON ({err})", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"The feedback body must be a JSON object, got {type(body).__name__}")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id.startswith("chatcmpl-"):
        raise RequestError(400, "'request_id' is required: the 'id' of the chat completion being rated", "request_id")
    rating = body.get("rating")
    if rating not in RATINGS:
        raise RequestError(400, f"'rating' must be one of {', '.join(RATINGS)}, got {rating!r}", "rating")
    return Feedback(request_id, rating, _text(body, "correction", MAX_CORRECTION_CHARS),
                    _text(body, "comment", MAX_COMMENT_CHARS))


def new_request_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


class UatLog:
    """Writes both logs for a server; remembers recent exchanges so feedback can name what it rates."""

    def __init__(self, request_path: str | Path | None, feedback_path: str | Path | None = None):
        self.request_path = Path(request_path) if request_path else None
        self.feedback_path = Path(feedback_path) if feedback_path else None
        self._recent: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def record_request(self, request_id: str, tester: str | None, request, completion, latency_s: float,
                       stream: bool = False) -> dict:
        line = {"event": "request", "request_id": request_id, "tester": tester, "time": now_utc(),
                "model": request.model, "messages": request.messages, "output": completion.text,
                "finish_reason": completion.finish_reason, "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens, "latency_s": round(latency_s, 4), "stream": stream}
        if self.request_path:
            append_line(self.request_path, line)
        with self._lock:
            self._recent[request_id] = line
            while len(self._recent) > RECENT_EXCHANGES:
                self._recent.popitem(last=False)
        return line

    def exchange(self, request_id: str) -> dict | None:
        with self._lock:
            found = self._recent.get(request_id)
        if found is None and self.request_path:
            events, _ = read_lines(self.request_path)
            found = next((e for e in reversed(events) if e.get("request_id") == request_id), None)
        return found

    def record_feedback(self, tester: str | None, feedback: Feedback) -> dict:
        if not self.feedback_path:
            raise RequestError(404, "This server does not record feedback (no feedback log configured)", None,
                               "not_found")
        exchange = self.exchange(feedback.request_id)
        if exchange is None:
            raise RequestError(404, f"No answered request {feedback.request_id!r} on this server; rate an answer "
                               f"this server gave (its 'id')", "request_id", "request_not_found")
        if exchange.get("tester") != tester:
            raise RequestError(403, "Testers rate their own answers: this request was made with another token",
                               "request_id", "forbidden")
        line = {"event": "feedback", "feedback_id": f"fb-{secrets.token_hex(8)}", "request_id": feedback.request_id,
                "tester": tester, "time": now_utc(), "rating": feedback.rating, "correction": feedback.correction,
                "comment": feedback.comment, "messages": exchange["messages"], "output": exchange["output"],
                "request_time": exchange.get("time")}
        append_line(self.feedback_path, line)
        return line
