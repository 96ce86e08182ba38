"""The engagement's audit log: ``audit.jsonl``, append-only and hash-chained.

Each line is one JSON event with ``seq`` (0, 1, 2, ...), ``prev_hash`` (the previous line's ``hash``, or 64
zeros) and ``hash`` = sha256 of the canonical JSON of the line without ``hash``. Editing, deleting or
reordering any line breaks the chain at that point, which ``ftkit verify`` reports.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

from ftkit.errors import FtkitError

GENESIS = "0" * 64


def canonical(entry: dict) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8. Same entry -> same bytes on every machine."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def read_entries(path: Path) -> list[dict]:
    """Parsed entries; a line that is not JSON becomes {'_unparseable': text} so verify can report it."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append({"_unparseable": line[:80]})
    return entries


def append_event(path: Path, event: str, **fields) -> dict:
    """Append one event; the caller holds the engagement lock, so there is one writer at a time."""
    path = Path(path)
    entries = read_entries(path)
    last = entries[-1] if entries else None
    entry = {
        "seq": (last.get("seq", len(entries) - 1) + 1) if last else 0,
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "event": event,
        **fields,
        "prev_hash": last.get("hash", GENESIS) if last else GENESIS,
    }
    entry["hash"] = entry_hash(entry)
    line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
    try:
        # O_APPEND: the line lands after whatever is there, never over it; fsync so a crash keeps it.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _append_whole_line(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as err:
        raise FtkitError(f"Cannot append to the audit log {path}: {err.strerror}. Free disk space or fix "
                         f"permissions, then run again; the log was left as it was.") from err
    return entry


def _append_whole_line(fd: int, data: bytes) -> None:
    """Write all of ``data`` or nothing: a full disk can accept part of a line, and a half line would break the
    chain for every later entry, so on failure the file is cut back to its previous length."""
    size = os.fstat(fd).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise


def check_chain(entries: list[dict]) -> list[str]:
    """Problems with the chain, one sentence each, naming the line (1-based)."""
    problems = []
    prev = GENESIS
    for index, entry in enumerate(entries):
        line = index + 1
        if "_unparseable" in entry:
            problems.append(f"audit.jsonl line {line} is not valid JSON (edited or truncated)")
            prev = None
            continue
        if entry.get("seq") != index:
            problems.append(f"audit.jsonl line {line} has seq {entry.get('seq')}, expected {index} "
                            f"(an entry was deleted, inserted or reordered)")
        if prev is not None and entry.get("prev_hash") != prev:
            problems.append(f"audit.jsonl line {line} does not chain to the line before it "
                            f"(an earlier entry was changed, deleted or reordered)")
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"audit.jsonl line {line} ({entry.get('event')}) was edited after it was written")
        prev = entry.get("hash")
    return problems
