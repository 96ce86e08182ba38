"""One ftkit run per engagement at a time: an exclusive lock file with the holder's pid.

Created with O_EXCL (atomic on local file systems). A lock whose process is gone (killed run, reboot) is
stale and is taken over, with a note, instead of blocking the engagement forever.
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from ftkit.errors import EngagementLocked, FtkitError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_stale(info: dict | None) -> bool:
    if info is None:  # unreadable or half-written: only trust it for a few seconds
        return True
    if info.get("host") != socket.gethostname():
        return False  # another machine's lock (shared drive): never steal it
    return not _pid_alive(int(info.get("pid", -1)))


@contextmanager
def engagement_lock(lock_path: Path, purpose: str):
    """Hold the engagement's lock for the ``with`` body; raise EngagementLocked if a live process has it."""
    lock_path = Path(lock_path)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "purpose": purpose}
    for attempt in range(2):
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(lock_path)
            if attempt == 0 and _is_stale(holder):
                if holder is None and time.time() - lock_path.stat().st_mtime < 5:
                    raise EngagementLocked(f"{lock_path.parent.name} is being locked by another ftkit process right now; retry in a few seconds.") from None
                lock_path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            holder = holder or {}
            raise EngagementLocked(
                f"Engagement '{lock_path.parent.name}' is busy: ftkit process {holder.get('pid')} on {holder.get('host')} "
                f"has been running '{holder.get('purpose')}' since {holder.get('since')}. Wait for it to finish "
                f"(or stop it); a lock left by a killed process is cleared automatically.") from None
        except OSError as err:  # read-only folder, full inode table
            raise FtkitError(f"Cannot lock engagement '{lock_path.parent.name}' ({lock_path}): {err.strerror}. "
                             f"Make the engagement folder writable or free disk space, then run again.") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(info, handle)
        except OSError as err:  # full disk: an empty lock file would block the engagement for no one
            lock_path.unlink(missing_ok=True)
            raise FtkitError(f"Cannot write the engagement lock {lock_path}: {err.strerror}. Free disk space, "
                             f"then run again.") from None
        break
    try:
        yield info
    finally:
        current = read_lock(lock_path)
        if current and current.get("pid") == os.getpid():
            lock_path.unlink(missing_ok=True)
