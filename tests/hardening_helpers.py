"""Helpers for the hardening tests: a really full or read-only disk, file-tree snapshots, CLI message checks."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from ftkit.fsutil import sha256_file

PAGE = 4096  # tmpfs allocates whole pages


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (folders as 'dir'), names in ``skip`` left out."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.name in skip:
            continue
        out[rel] = "dir" if path.is_dir() else sha256_file(path) if path.is_file() else "other"
    return out


def assert_one_paragraph(stderr: str, *fragments: str) -> None:
    """An ftkit error as the CLI prints it: 'ftkit: ...', no traceback, no blank line, naming ``fragments``."""
    assert "ftkit: " in stderr and "Traceback" not in stderr, stderr
    text = stderr[stderr.index("ftkit: "):].strip()  # after papermill's progress bar, if a notebook ran
    assert "Traceback" not in text and "\n\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def _mount(args: list[str]) -> str:
    """'' on success, else why not (not root, no CAP_SYS_ADMIN in this container ...)."""
    if os.geteuid() != 0:
        return "mounting needs root"
    done = subprocess.run(args, capture_output=True, text=True)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


@contextmanager
def tiny_disk(folder: Path, size_kb: int = 2048):
    """A real tmpfs of ``size_kb`` at ``folder``: writes past its size fail with ENOSPC, as on a full disk.
    Skips the test where mounting is not allowed (the simulated ENOSPC tests still run there)."""
    folder.mkdir(parents=True, exist_ok=True)
    why = _mount(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)])
    if why:
        pytest.skip(f"cannot mount a small tmpfs here ({why})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` with a filler file until only ``leave`` bytes (whole pages) remain free."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(disk / "filler.bin", "wb") as handle:
        try:
            handle.write(b"\0" * max(0, free - leave))
            handle.flush()
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
    assert os.statvfs(disk).f_bavail * PAGE <= leave


@contextmanager
def read_only(folder: Path):
    """``folder`` made unwritable for this process: chmod for a normal user (root ignores permissions), a
    read-only bind mount for root. Skips where neither works."""
    if os.geteuid() != 0:
        folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        modes = {p: p.stat().st_mode for p in folders}
        for p in folders:
            p.chmod(0o555)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    why = _mount(["mount", "--bind", str(folder), str(folder)])
    if why:
        pytest.skip(f"running as root and cannot bind-mount read-only here ({why})")
    try:
        why = _mount(["mount", "-o", "remount,bind,ro", str(folder)])
        if why:
            pytest.skip(f"cannot remount read-only here ({why})")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def kill_family(proc) -> None:
    """SIGKILL the CLI and the kernel it started: no chance to clean up, like a power cut or the OOM killer."""
    import psutil

    try:
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for pid in family:
        try:
            psutil.Process(pid).send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)
