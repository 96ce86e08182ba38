"""Earlier iterations: the newest fine-tuned model compared with the models of earlier training runs.

An iteration is a succeeded training run. Each evaluation run records which training run it evaluated and
a fingerprint of the prompts (``prompts_sha256``: the baseline's per-example prompt hashes, in order). An
earlier iteration evaluated on the same prompts is compared from its recorded predictions, for free;
otherwise its model is loaded and run on the prompts (bounded by ``evaluation.compare_iterations``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ftkit.fsutil import read_json

PREDICTIONS = "predictions.jsonl"


def prompts_fingerprint(predictions: list) -> str:
    """sha256 over the per-example prompt hashes, in order: equal = same examples with the same prompts.

    >>> from types import SimpleNamespace as P
    >>> prompts_fingerprint([P(prompt_sha256="a")]) == prompts_fingerprint([P(prompt_sha256="b")])
    False
    """
    return hashlib.sha256("\n".join(p.prompt_sha256 for p in predictions).encode("utf-8")).hexdigest()


@dataclass
class Iteration:
    number: int  # 1 = first succeeded training run
    run_id: str
    run_dir: Path
    results: dict  # its results.json (empty when unreadable)


def _succeeded(run_dir: Path) -> bool:
    try:
        return read_json(run_dir / "status.json").get("status") == "succeeded"
    except (OSError, ValueError):
        return False


def succeeded_runs(engagement, phase: str) -> list[Path]:
    """Run folders of ``phase`` that succeeded, oldest first (run ids sort by UTC start time)."""
    return [engagement.runs_dir(phase) / r for r in engagement.run_ids(phase)
            if _succeeded(engagement.runs_dir(phase) / r)]


def training_iterations(engagement) -> list[Iteration]:
    """Every succeeded training run, numbered from 1, oldest first."""
    out = []
    for number, run_dir in enumerate(succeeded_runs(engagement, "training"), start=1):
        try:
            results = read_json(run_dir / "results.json")
        except (OSError, ValueError):
            results = {}
        out.append(Iteration(number, run_dir.name, run_dir, results))
    return out


def find(iterations: list[Iteration], run_id: str) -> Iteration:
    """The iteration of training run ``run_id``; PhaseFailed when that run is not a succeeded one."""
    from ftkit.errors import PhaseFailed

    for it in iterations:
        if it.run_id == run_id:
            return it
    raise PhaseFailed(f"Training run {run_id} is not among the succeeded training runs "
                      f"({', '.join(i.run_id for i in iterations) or 'none'}); re-run the training phase.")


def recorded_predictions(engagement, training_run_id: str, fingerprint: str) -> Path | None:
    """The predictions of the newest succeeded evaluation of ``training_run_id`` on the same prompts, if any."""
    for run_dir in reversed(succeeded_runs(engagement, "evaluation")):
        try:
            res = read_json(run_dir / "results.json").get("results", {})
        except (OSError, ValueError):
            continue
        if res.get("training_run") == training_run_id and res.get("prompts_sha256") == fingerprint \
                and (run_dir / PREDICTIONS).is_file():
            return run_dir / PREDICTIONS
    return None


def earlier(iterations: list[Iteration], current_run_id: str, limit: int) -> list[Iteration]:
    """Up to ``limit`` iterations before ``current_run_id``, newest first.

    >>> its = [Iteration(i, f"r{i}", Path("."), {}) for i in (1, 2, 3)]
    >>> [i.run_id for i in earlier(its, "r3", 5)], earlier(its, "r3", 0)
    (['r2', 'r1'], [])
    """
    before = [it for it in iterations if it.run_id < current_run_id]
    return list(reversed(before))[:max(0, limit)]


def predictions_of(run, it: Iteration, baseline, fingerprint: str, progress: bool = False) -> tuple[list, str]:
    """(predictions on the baseline's prompts, where they came from) for an earlier iteration ``it``.

    Recorded predictions of an earlier evaluation are reused (and recorded as an input of ``run``);
    otherwise the iteration's model is loaded and generates, exactly like the newest one.
    """
    from ftkit.evaluation.finetuned import load_finetuned
    from ftkit.evaluation.baseline_record import prompts_for
    from ftkit.generation import generate_local, read_predictions

    path = recorded_predictions(run.engagement, it.run_id, fingerprint)
    if path is not None:
        run.record_input(path)
        return on_current_references(read_predictions(path), baseline.records), \
            f"recorded by evaluation run {path.parent.name}"
    ft = load_finetuned(run.config, it.run_dir)
    preds = generate_local(ft.model, ft.tokenizer, prompts_for(baseline, ft.tokenizer), baseline.max_new_tokens,
                           baseline.batch_size, progress=progress)
    return preds, "generated in this run"


def on_current_references(predictions: list, records: list[dict]) -> list:
    """Recorded answers scored against the current test records' references (same ids): a review sheet may have
    corrected a test answer since they were recorded, and a paired comparison needs one yardstick.

    >>> from ftkit.generation.predictions import Prediction
    >>> p = Prediction("a", "h", "out", "old", 1, 1, 0.0, False, "x")
    >>> [(q.reference, q.label) for q in on_current_references([p], [{"id": "a", "label": "y",
    ...     "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "new"}]}])]
    [('new', 'y')]
    """
    from dataclasses import replace

    from ftkit.prompting import split_record

    by_id = {str(r.get("id")): r for r in records}
    out = []
    for p in predictions:
        r = by_id.get(p.id)
        if r is None:
            out.append(p)
            continue
        label = r.get("label")
        out.append(replace(p, reference=split_record(r)[1], label=None if label is None else str(label)))
    return out


def what_changed(it: Iteration) -> str:
    """One line on how an iteration was trained, from its results.json headline (method, loss, time)."""
    head = it.results.get("headline", {})
    parts = [f"{k}={head[k]:.4g}" if isinstance(head[k], float) else f"{k}={head[k]}"
             for k in ("method", "final_val_loss", "train_minutes", "n_train", "epochs") if k in head]
    return ", ".join(parts) or "(no training headline recorded)"
