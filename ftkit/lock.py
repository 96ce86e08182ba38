"""One ftkit run per engagement at a time: an OS-level lock, plus a note saying who holds it.

The lock itself is an ``flock`` on ``.ftkit.lock.os`` taken with ``filelock`` (non-blocking): the kernel grants
it to one process at a time and releases it when that process exits, however it exits (killed, crashed,
rebooted), so a lock never goes stale and nobody has to decide whether it is. The earlier design (an O_EXCL
file holding a pid, removed when the pid looked dead) had a race: two processes that found the same stale file
could both remove it and both take it.

Beside it, ``.ftkit.lock`` holds the holder's pid, host, start time and purpose (JSON, written atomically after
the lock is taken, removed on release) so a refused process can say "run N is in progress (pid ...)". After a
kill it is left behind; it means nothing unless the OS lock is also held (:func:`is_locked`).
"""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from ftkit.errors import EngagementLocked, FtkitError


def os_lock_path(lock_path: Path) -> Path:
    return Path(str(lock_path) + ".os")


def read_lock(path: Path) -> dict | None:
    """The holder note, or None when there is none (or it is being written right now)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _file_lock(lock_path: Path):
    from filelock import FileLock

    # thread_local=False: the lock belongs to the process (the runner may hand work to threads).
    return FileLock(str(os_lock_path(lock_path)), timeout=0, thread_local=False)


def is_locked(lock_path: Path) -> bool:
    """Whether some process (this one included) holds the engagement's lock right now."""
    from filelock import Timeout

    lock_path = Path(lock_path)
    if not os_lock_path(lock_path).exists():
        return False
    probe = _file_lock(lock_path)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    probe.release()
    return False


def _busy_message(lock_path: Path) -> str:
    holder = read_lock(lock_path)
    name = lock_path.parent.name
    if not holder:
        return (f"Engagement '{name}' is busy: another ftkit process is starting a run on it right now. Wait for "
                f"it to finish (`ftkit status {name}`), then run again.")
    return (f"Engagement '{name}' is busy: ftkit process {holder.get('pid')} on {holder.get('host')} has been "
            f"running '{holder.get('purpose')}' since {holder.get('since')} (run in progress, pid "
            f"{holder.get('pid')}). Wait for it to finish (or stop it); the lock is released by the operating "
            f"system when that process ends, even if it is killed.")


@contextmanager
def engagement_lock(lock_path: Path, purpose: str):
    """Hold the engagement's lock for the ``with`` body; raise EngagementLocked if another process (or an outer
    ``with`` in this one) has it."""
    from filelock import Timeout

    lock_path = Path(lock_path)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "purpose": purpose}
    lock = _file_lock(lock_path)
    created = not os_lock_path(lock_path).exists()
    try:
        lock.acquire()
    except Timeout:
        raise EngagementLocked(_busy_message(lock_path)) from None
    except OSError as err:  # read-only folder, full inode table
        raise FtkitError(f"Cannot lock engagement '{lock_path.parent.name}' ({lock_path}): {err.strerror}. "
                         f"Make the engagement folder writable or free disk space, then run again.") from None
    try:
        try:
            from ftkit.fsutil import atomic_write_text

            atomic_write_text(lock_path, json.dumps(info))
        except (OSError, FtkitError) as err:
            reason = err.strerror if isinstance(err, OSError) else str(err)
            if created:  # a full disk: leave the folder as it was (no process can be waiting: acquire never waits)
                os_lock_path(lock_path).unlink(missing_ok=True)
            raise FtkitError(f"Cannot write the engagement lock note {lock_path}: {reason}. Free disk space, "
                             f"then run again.") from None
        try:
            yield info
        finally:
            current = read_lock(lock_path)
            if current and current.get("pid") == os.getpid():
                lock_path.unlink(missing_ok=True)
    finally:
        lock.release()
