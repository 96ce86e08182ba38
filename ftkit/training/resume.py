"""Resume: continue an interrupted training run from its newest checkpoint instead of starting over.

Runs never overwrite each other, so an interrupted run (its process killed, its kernel lost, a cell timeout,
Ctrl-C) leaves its checkpoints in its own run folder, with a status other than ``succeeded``. The next
``ftkit run CLIENT --phase training`` looks through those runs, newest first, for the checkpoint with the
highest step whose **fingerprint** (resolved hyperparameters + data, model and chat-template hashes) equals
its own, and hands it to ``Trainer.train(resume_from_checkpoint=...)``: adapter/model weights, optimizer,
scheduler, RNG states and the step counter continue where they stopped, and the data order resumes at the
same batch. A checkpoint counts only once its ``ftkit_checkpoint.json`` marker exists: the marker is written
after the Trainer finished writing every file of the checkpoint, so a half-written one is never used.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftkit.fsutil import atomic_write_json, read_json

RESUMABLE_STATUSES = ("failed", "timed_out", "kernel_died", "abandoned", "interrupted")
MARKER = "ftkit_checkpoint.json"
CHECKPOINTS_DIR = "checkpoints"


@dataclass(frozen=True)
class ResumePoint:
    run_id: str
    run_status: str
    step: int
    checkpoint: Path

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "run_status": self.run_status, "step": self.step,
                "checkpoint": str(self.checkpoint)}


def write_marker(checkpoint: Path, fingerprint: str, step: int, run_id: str) -> None:
    atomic_write_json(checkpoint / MARKER, {"fingerprint": fingerprint, "step": step, "run_id": run_id})


def _run_status(run_dir: Path) -> str:
    try:
        return read_json(run_dir / "status.json").get("status", "")
    except (OSError, ValueError):
        return ""


def _marked_checkpoints(run_dir: Path, fingerprint: str) -> list[tuple[int, Path]]:
    out = []
    for marker in (run_dir / CHECKPOINTS_DIR).glob(f"checkpoint-*/{MARKER}"):
        try:
            data = read_json(marker)
        except (OSError, ValueError):
            continue
        if data.get("fingerprint") == fingerprint and (marker.parent / "trainer_state.json").is_file():
            out.append((int(data.get("step", 0)), marker.parent))
    return out


def find_resume_point(engagement, fingerprint: str, exclude_run: str = "") -> ResumePoint | None:
    """The newest matching checkpoint of an earlier interrupted training run, or None.

    Highest step wins; between equal steps the newer run (run ids sort by time). Succeeded runs are never
    resumed from: their model is finished, and re-running means the consultant wants a new training run.
    """
    best: ResumePoint | None = None
    for run_id in engagement.run_ids("training"):
        run_dir = engagement.runs_dir("training") / run_id
        status = _run_status(run_dir)
        if run_id == exclude_run or status not in RESUMABLE_STATUSES:
            continue
        for step, path in _marked_checkpoints(run_dir, fingerprint):
            if best is None or (step, run_id) > (best.step, best.run_id):
                best = ResumePoint(run_id, status, step, path)
    return best


def checkpoint_files(point: ResumePoint) -> list[Path]:
    """The files of a checkpoint, to record as inputs of the run that resumes from it."""
    return sorted(p for p in point.checkpoint.rglob("*") if p.is_file())


def earlier_history(point: ResumePoint) -> list[dict]:
    """The interrupted run's metrics log up to the checkpoint's step, so the loss curve is complete."""
    log = point.checkpoint.parent.parent / "metrics.jsonl"
    if not log.is_file():
        return []
    import json

    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if entry.get("step", 0) <= point.step:
            out.append({**entry, "run_id": point.run_id})
    return out
