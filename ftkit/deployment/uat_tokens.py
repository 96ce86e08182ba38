"""Per-tester access tokens for ``ftkit serve``: issued once, stored only as sha256 hashes, revocable.

The store is ``engagements/<client>/uat/tokens.json``::

    {"version": 1, "tokens": [{"name": "dana", "sha256": "<hex>", "issued_utc": "...", "revoked_utc": null}]}

A token is ``ftk_`` + 32 url-safe random bytes (``secrets.token_urlsafe``); it is printed once by
``ftkit serve CLIENT --issue-token NAME`` and never written anywhere. A request carries it as
``Authorization: Bearer <token>``; the server hashes what it receives and looks the hash up, so the store never
holds anything that opens the door. Every log line names the tester (``name``), never the token.

A running server re-reads the file when it changes (mtime and size), so ``--revoke-token`` takes effect on the
next request without a restart. Writes are atomic and serialised with a file lock, so two consultants issuing
tokens at once cannot lose one.

>>> hash_token("ftk_example")[:12]
'2edb32562d5c'
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import FtkitError, UsageError
from ftkit.fsutil import atomic_write_json, read_json

TOKENS_FILE = "uat/tokens.json"
TOKEN_PREFIX = "ftk_"
TOKEN_BYTES = 32  # 256 bits of randomness: guessing is hopeless, so no rate limit on failed attempts is needed
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")  # shows in logs, tables and the report


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def check_tester_name(name: str) -> str:
    """A tester's name as it will appear in logs: 1-64 letters, digits, space, ``. _ @ -``."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name.strip()):
        raise UsageError(f"Tester name {name!r} is not allowed: use 1-64 letters, digits, spaces or . _ @ - "
                         f"(starting with a letter or digit), e.g. --issue-token dana.k")
    return name.strip()


@dataclass
class TokenEntry:
    name: str
    sha256: str
    issued_utc: str
    revoked_utc: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_utc is None

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "issued_utc": self.issued_utc, "revoked_utc": self.revoked_utc}


class TokenStore:
    """The engagement's token file. ``tester(token)`` is what the server calls on every request."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._entries: list[TokenEntry] = []

    @classmethod
    def of(cls, engagement) -> "TokenStore":
        return cls(engagement.path / TOKENS_FILE)

    # -- reading --------------------------------------------------------------------------------------
    def entries(self) -> list[TokenEntry]:
        """Every token ever issued (revoked ones included), re-read when the file changed."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._entries = self._read() if stamp else []
                self._stamp = stamp
            return list(self._entries)

    def _read(self) -> list[TokenEntry]:
        try:
            data = read_json(self.path)
            return [TokenEntry(e["name"], e["sha256"], e["issued_utc"], e.get("revoked_utc")) for e in data["tokens"]]
        except (ValueError, KeyError, TypeError, OSError, FtkitError) as err:
            raise FtkitError(f"{self.path} is not a valid token store ({type(err).__name__}: {err}); restore it from "
                             f"a backup or delete it and issue new tokens with `ftkit serve CLIENT --issue-token "
                             f"NAME`.") from None

    def active(self) -> list[TokenEntry]:
        return [e for e in self.entries() if e.active]

    def tester(self, token: str) -> str | None:
        """The tester a presented token belongs to, or None (unknown or revoked). Constant-time comparison."""
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for entry in self.active():
            if hmac.compare_digest(entry.sha256, digest):
                found = entry.name
        return found

    # -- writing --------------------------------------------------------------------------------------
    def _update(self, change) -> object:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=30):
            entries = self._read() if self.path.is_file() else []
            result = change(entries)
            atomic_write_json(self.path, {"version": 1, "tokens": [e.to_dict() for e in entries]})
        return result

    def issue(self, name: str) -> str:
        """A new token for ``name`` (returned once, never stored); refuses a name with an active token."""
        name = check_tester_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)

        def add(entries: list[TokenEntry]) -> None:
            if any(e.name == name and e.active for e in entries):
                raise UsageError(f"Tester '{name}' already has an active token. Revoke it first "
                                 f"(--revoke-token '{name}') and issue a new one, or pick another name.")
            entries.append(TokenEntry(name, hash_token(token), _now()))

        self._update(add)
        return token

    def revoke(self, name: str) -> int:
        """Revoke every active token of ``name``; returns how many. Unknown names are a usage error."""
        name = check_tester_name(name)

        def mark(entries: list[TokenEntry]) -> int:
            hits = [e for e in entries if e.name == name and e.active]
            if not hits:
                known = sorted({e.name for e in entries if e.active})
                raise UsageError(f"No active token for tester '{name}'; active testers: "
                                 f"{', '.join(known) or 'none'} (see --list-tokens).")
            for entry in hits:
                entry.revoked_utc = _now()
            return len(hits)

        return self._update(mark)

    def table(self) -> list[dict]:
        """Rows for ``--list-tokens``: name, issued, revoked, and the first 8 hex digits of the hash."""
        return [{"tester": e.name, "issued_utc": e.issued_utc, "revoked_utc": e.revoked_utc or "",
                 "status": "active" if e.active else "revoked", "hash": e.sha256[:8]} for e in self.entries()]
