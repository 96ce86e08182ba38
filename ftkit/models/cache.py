"""ftkit's model cache: where built/converted models live, and how they are built safely.

The cache root is ``$FTKIT_CACHE`` or ``~/.cache/ftkit``; models go under ``<root>/models/<name>``.
A model folder is built in a temporary sibling folder and renamed into place, so a crash or a second
process running at the same time can never leave (or read) a half-written model.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

from ftkit.errors import FtkitError
from ftkit.fsutil import read_json

MODELS_SUBDIR = "models"
NOTE_FILE = "ftkit_model_note.json"  # written last: its presence marks a complete build


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The ftkit cache root: ``cache_dir`` if given, else ``$FTKIT_CACHE``, else ``~/.cache/ftkit``."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    env = os.environ.get("FTKIT_CACHE", "").strip()
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "ftkit"


def model_cache_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / MODELS_SUBDIR / name


def read_note(folder: str | Path) -> dict | None:
    """The ftkit note of a model folder, or None when the folder was not built by ftkit (or is incomplete)."""
    path = Path(folder) / NOTE_FILE
    try:
        return read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def build_cached(target: Path, builder: Callable[[Path], None], version: str) -> Path:
    """Return ``target``, building it with ``builder(tmp_dir)`` unless a complete build of ``version`` exists.

    ``builder`` must write the note file (``NOTE_FILE`` with ``{"builder_version": version, ...}``) last.
    Concurrency: two processes may both build; the first rename wins and the loser's copy is discarded.
    """
    note = read_note(target)
    if note and note.get("builder_version") == version:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        builder(tmp)
        if (read_note(tmp) or {}).get("builder_version") != version:
            raise FtkitError(f"Building {target.name} did not complete (no {NOTE_FILE} written); "
                             f"delete {target.parent} and retry.")
        _swap_into_place(tmp, target, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _swap_into_place(tmp: Path, target: Path, version: str) -> None:
    if target.exists():
        note = read_note(target)
        if note and note.get("builder_version") == version:
            return  # another process finished first: keep theirs, ours is removed by the caller
        # Stale or incomplete build: move it aside (atomic) before replacing, then delete it.
        trash = target.with_name(f".{target.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(target, trash)
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:
        # A concurrent process renamed its build into place between our check and our rename.
        if (read_note(target) or {}).get("builder_version") != version:
            raise FtkitError(f"Cannot move the built model into {target}; check permissions of {target.parent}.")
