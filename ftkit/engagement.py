"""An engagement's folder: paths, safe client names, and `latest` pointers.

Layout (the contract in the README):
    <root>/<client>/engagement.yaml, data/, phases/<NN_phase>/runs/<run_id>/, phases/<NN_phase>/latest,
    report/, audit.jsonl, intake.json
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import FtkitError, UsageError
from ftkit.fsutil import atomic_write_text
from ftkit.phases import Phase, get_phase

# A slug: starts with a letter or digit, then letters, digits, '-', '_' or '.', at most 64 characters.
# No '/', '..', spaces or control characters, so a client name can never leave the engagements root.
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESERVED = {"con", "prn", "aux", "nul"}  # Windows device names: a consultant may copy the folder to Windows


def check_client_name(name: str) -> str:
    """Return ``name`` if it is a safe folder name, else raise UsageError saying what is allowed.

    >>> check_client_name("acme-bank")
    'acme-bank'
    """
    if not isinstance(name, str) or not _SLUG.match(name) or name.endswith(".") or ".." in name \
            or name.lower() in _RESERVED:
        raise UsageError(
            f"Client name {name!r} is not a safe folder name. Use 1-64 letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit (for example 'acme-bank'); no '/', '..', spaces or control characters.")
    return name


@dataclass(frozen=True)
class Engagement:
    root: Path
    slug: str

    @classmethod
    def at(cls, client: str, root: str | Path = "engagements", must_exist: bool = True) -> "Engagement":
        slug = check_client_name(client)
        engagement = cls(Path(root).resolve(), slug)
        if must_exist and not engagement.config_path.is_file():
            raise FtkitError(f"No engagement '{slug}' under {engagement.root} (no {engagement.config_path.name} there). "
                             f"Create it with `ftkit new {slug} --data FILE`, or pass --root.")
        return engagement

    @classmethod
    def from_dir(cls, path: str | Path) -> "Engagement":
        path = Path(path).resolve()
        return cls(path.parent, path.name)

    @property
    def path(self) -> Path:
        return self.root / self.slug

    @property
    def config_path(self) -> Path:
        return self.path / "engagement.yaml"

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def audit_path(self) -> Path:
        return self.path / "audit.jsonl"

    @property
    def intake_path(self) -> Path:
        return self.path / "intake.json"

    @property
    def lock_path(self) -> Path:
        return self.path / ".ftkit.lock"

    def phase_dir(self, phase: Phase | str) -> Path:
        phase = get_phase(phase) if isinstance(phase, str) else phase
        return self.path / "phases" / phase.folder

    def runs_dir(self, phase: Phase | str) -> Path:
        return self.phase_dir(phase) / "runs"

    def latest_run_id(self, phase: Phase | str) -> str | None:
        pointer = self.phase_dir(phase) / "latest"
        if not pointer.is_file():
            return None
        run_id = pointer.read_text(encoding="utf-8").strip()
        return run_id if run_id and (self.runs_dir(phase) / run_id).is_dir() else None

    def latest_run_dir(self, phase: Phase | str) -> Path | None:
        run_id = self.latest_run_id(phase)
        return self.runs_dir(phase) / run_id if run_id else None

    def set_latest(self, phase: Phase | str, run_id: str) -> None:
        """Point `latest` at ``run_id``: a text file replaced atomically (portable, unlike symlinks)."""
        atomic_write_text(self.phase_dir(phase) / "latest", run_id + "\n")

    def run_ids(self, phase: Phase | str) -> list[str]:
        runs = self.runs_dir(phase)
        return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def relative(self, path: str | Path) -> str:
        """Path relative to the engagement folder, with '/' separators (stable across machines)."""
        return Path(path).resolve().relative_to(self.path).as_posix()


def resolve_root(root: str | Path | None) -> Path:
    if root is None:
        return Path("engagements").resolve()
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"--root {root} is a file, not a folder.")
    return root.resolve()
