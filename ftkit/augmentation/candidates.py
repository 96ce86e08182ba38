"""The candidates log: one JSON line per teacher request, appended and fsynced as each answer arrives, so a run
killed mid-generation loses at most the request in flight and a re-run continues where it stopped.

Line 1 is the header ``{"kind": "header", "plan_sha256", "plan"}``: the plan (targets, sampling, seeds, teacher)
decides whether a re-run may continue this log (same plan) or must start a new run (another plan). Each request
is ``{"kind": "call", "call": n, ...}``; the last line of a finished log is ``{"kind": "complete", ...}``. A line
cut by a kill (no newline at the end) is dropped when the log is opened again. Nothing else is written until the
log is complete: the review sheet and the synthetic data file come after (atomic writes).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ftkit.errors import DataError

LOG_NAME = "candidates.jsonl"


def plan_sha256(plan: dict) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class CandidateLog:
    def __init__(self, path: Path, plan: dict, header: dict, calls: list[dict], complete: dict | None):
        self.path, self.plan, self.header, self.calls, self.complete = path, plan, header, calls, complete

    @classmethod
    def create(cls, path: Path, plan: dict) -> "CandidateLog":
        header = {"kind": "header", "plan_sha256": plan_sha256(plan), "plan": plan}
        path.parent.mkdir(parents=True, exist_ok=True)
        log = cls(path, plan, header, [], None)
        with open(path, "x", encoding="utf-8") as handle:  # "x": never reuse a log file
            log._append(handle, header)
        return log

    @classmethod
    def open(cls, path: Path) -> "CandidateLog":
        """Read a log, dropping a last line a kill cut short (the file is truncated to its last full line)."""
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(end)
        rows = []
        for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise DataError(f"{path}, line {number}: not JSON; this candidates log was edited or damaged. "
                                f"Run `ftkit augment` with --restart to start a new one.") from None
        if not rows or rows[0].get("kind") != "header":
            raise DataError(f"{path}: no header line; run `ftkit augment` with --restart to start a new log.")
        calls = [r for r in rows if r.get("kind") == "call"]
        complete = next((r for r in rows if r.get("kind") == "complete"), None)
        return cls(path, rows[0]["plan"], rows[0], calls, complete)

    @property
    def next_call(self) -> int:
        return max((c["call"] for c in self.calls), default=-1) + 1

    def add_call(self, row: dict) -> None:
        row = {"kind": "call", **row}
        with open(self.path, "a", encoding="utf-8") as handle:
            self._append(handle, row)
        self.calls.append(row)

    def finish(self, summary: dict) -> None:
        row = {"kind": "complete", **summary}
        with open(self.path, "a", encoding="utf-8") as handle:
            self._append(handle, row)
        self.complete = row

    @staticmethod
    def _append(handle, row: dict) -> None:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    def candidates(self) -> list[dict]:
        """Every candidate the teacher returned, in request order, each with its call, target and seed."""
        out = []
        for call in self.calls:
            for k, item in enumerate(call.get("items") or []):
                out.append({"cid": f"c{call['call']:04d}-{k:02d}", "call": call["call"], "target": call["target"],
                            "seed": call["seed"], "prompt_sha256": call["prompt_sha256"], "item": item})
        return out

    def totals(self) -> dict:
        calls = self.calls
        return {"calls": len(calls), "retries": sum(c.get("retries", 0) for c in calls),
                "prompt_tokens": sum(c.get("prompt_tokens", 0) for c in calls),
                "completion_tokens": sum(c.get("completion_tokens", 0) for c in calls),
                "problems": _count(c.get("problem") for c in calls if c.get("problem"))}


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
