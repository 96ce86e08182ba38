"""The audit's result: per-record metadata, issues, duplicate groups, splits and stats, and the writers of
train/validation/test.jsonl, issues.csv and stats.json.

Records are referred to by their index in ``metas`` (one dict per record read, in file order); the normalised
records themselves live in a temporary spool file (one JSON line per valid record, in the same order), so
writing the splits is one sequential pass whatever the data size.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftkit.data.checks import CHECKS, Issue


@dataclass
class FileSummary:
    path: str
    role: str  # "train" | "test"
    format: str = ""
    container: str = ""
    dialect: str = ""  # how it was read beyond the container: "semicolon-separated, double-quoted", "gzip-compressed"
    n_records: int = 0
    n_valid: int = 0
    readable: bool = True


@dataclass
class AuditResult:
    files: list[FileSummary]
    metas: list[dict]  # one per record read; valid ones carry key/label/tokens...
    issues: list[Issue]
    signatures: np.ndarray
    duplicate_groups: list[list[int]] = field(default_factory=list)  # indices into metas
    near_duplicate_groups: list[list[int]] = field(default_factory=list)
    conflict_groups: list[list[int]] = field(default_factory=list)
    leaked: list[int] = field(default_factory=list)
    splits: dict[int, str] = field(default_factory=dict)  # meta index -> split name
    stats: dict = field(default_factory=dict)
    spool: Any = None  # temporary file with one normalised JSON line per valid record, in meta order
    redacted_spool: Any = None
    options: Any = None  # the AuditOptions used
    tokenizer_note: str = ""  # why token checks were skipped, if they were
    profile_columns: Any = None  # ftkit.data.stats.ProfileColumns of the valid records, collected while reading
    fixes: dict = field(default_factory=dict)  # meta index -> a review sheet's fix (ftkit.data.corrections.apply)
    corrections: Any = None  # the applied ftkit.data.corrections.Plan (None: data.corrections is empty)

    # -- counts the CLI and notebook show
    @property
    def n_records(self) -> int:
        return len(self.metas)

    @property
    def n_valid(self) -> int:
        return sum(1 for m in self.metas if m.get("valid"))

    def count(self, severity: str) -> int:
        return sum(1 for i in self.issues if i.severity == severity)

    def issue_counts(self) -> dict[str, int]:
        """Issues per check code, most frequent first."""
        return dict(Counter(i.code for i in self.issues).most_common())

    def split_counts(self) -> dict[str, int]:
        return dict(Counter(self.splits.values()))

    def where(self, index: int) -> str:
        meta = self.metas[index]
        return f"{Path(self.files[meta['file']].path).name}:{meta['line']}"

    def pii_hits(self) -> list[dict]:
        return [{"file": self.files[m["file"]].path, "line": m["line"], "kind": k}
                for m in self.metas for k in m.get("pii", [])]

    def line_groups(self, groups: list[list[int]]) -> list[list[int]]:
        return [[self.metas[i]["line"] for i in g] for g in groups]

    # -- outputs
    def write_outputs(self, folder: str | Path) -> dict[str, Path]:
        """train/validation/test.jsonl (normalised chat records), issues.csv, stats.json; redacted copies under
        redacted/ when PII redaction was on. Returns name -> path."""
        from ftkit.fsutil import atomic_write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = self._write_splits(folder, self.spool)
        if self.redacted_spool is not None:
            paths.update({f"redacted/{k}": v for k, v in
                          self._write_splits(folder / "redacted", self.redacted_spool, redacted=True).items()})
        paths["issues.csv"] = self.write_issues_csv(folder / "issues.csv")
        paths["stats.json"] = atomic_write_json(folder / "stats.json", self.stats)
        return paths

    def _write_splits(self, folder: Path, spool, redacted: bool = False) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        names = ("train", "validation", "test")
        tmp = {n: folder / f".{n}.jsonl.tmp" for n in names}
        handles = {n: open(tmp[n], "w", encoding="utf-8") for n in names}
        try:
            spool.seek(0)
            valid = (i for i, m in enumerate(self.metas) if m.get("valid"))
            for line, index in zip(io.TextIOWrapper(spool, encoding="utf-8"), valid):
                name = self.splits.get(index)
                if name and index in self.fixes:  # a reviewer's correction (data.corrections)
                    from ftkit.data.corrections import patch_line

                    line = patch_line(line, self.fixes[index], redacted)
                if name:
                    handles[name].write(line if line.endswith("\n") else line + "\n")
        finally:
            for h in handles.values():
                h.close()
        out = {}
        for n in names:
            os.replace(tmp[n], folder / f"{n}.jsonl")
            out[f"{n}.jsonl"] = folder / f"{n}.jsonl"
        return out

    def write_issues_csv(self, path: str | Path) -> Path:
        from ftkit.fsutil import atomic_write_text
        from ftkit.safe_values import csv_text

        # Excerpts and messages quote client text: csv_text neutralises formula-leading cells (CSV injection).
        rows = ([Path(i.file).name, i.line, i.severity, i.code, i.message, i.excerpt, CHECKS[i.code].fix]
                for i in self.issues)
        header = ["file", "line", "severity", "code", "message", "excerpt", "fix"]
        return atomic_write_text(path, csv_text(header, rows))

    def close(self) -> None:
        for spool in (self.spool, self.redacted_spool):
            if spool is not None:
                spool.close()
