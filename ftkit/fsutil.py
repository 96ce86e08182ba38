"""Small file helpers: atomic writes and hashing.

Atomic write = write a temp file in the same folder, fsync, then ``os.replace``: a reader (or a crash)
sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

from ftkit.errors import FtkitError

_CHUNK = 1 << 20  # 1 MiB reads keep memory flat on multi-GB model files
# The only portable way to read the umask is to set it and put it back: done once at import, not per write
# (the umask is process-wide, and a write may happen while other threads create files).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
DEFAULT_FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file; mkstemp gives 0600


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; on any error the old file (if any) is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise FtkitError(f"Cannot write {path}: {err.strerror}. Check the folder exists, is writable and the disk has space.") from err
    try:
        # mkstemp makes the file owner-only (0600); give it the mode a plain open() would (0666 minus the
        # umask) so reports and results can be shared like any other file the consultant writes.
        os.chmod(tmp, DEFAULT_FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _silently_remove(tmp)
        raise FtkitError(f"Cannot write {path}: {err.strerror}. The file was left as it was; free disk space or fix permissions and retry.") from err
    except BaseException:
        _silently_remove(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    """JSON with sorted keys off (keep the author's order) and NaN refused, so files stay valid JSON."""
    text = json.dumps(json_safe(obj), indent=indent, ensure_ascii=False, allow_nan=False, default=_json_default)
    return atomic_write_text(path, text + "\n")


def json_safe(obj):
    """Replace NaN/inf by None (JSON has no NaN) recursively; e.g. an F1 of a class never predicted."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            return json_safe(obj.item())
        except (TypeError, ValueError):
            return obj
    return obj


def read_jsonl(path: str | os.PathLike, fix: str) -> list[tuple[int, object]]:
    """(1-based line number, parsed value) for each non-empty line; a line that is not JSON raises DataError
    naming the file and line, followed by ``fix`` (what to do).

    Used for ftkit's own JSONL artefacts (splits, predictions); client files go through ftkit.data.reader,
    which reports every bad line instead of stopping at the first.
    """
    from ftkit.errors import DataError

    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except ValueError as err:
                raise DataError(f"{path} line {number}: not valid JSON ({getattr(err, 'msg', err)}); {fix}") from None
    return rows


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _json_default(value):
    # numpy scalars and Paths turn up in results; make them plain JSON instead of failing the run.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _silently_remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
