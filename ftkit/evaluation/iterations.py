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

from ftkit.evaluation.yardstick import on_current_references, test_set_hash  # noqa: F401 (re-exported)
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


def what_changed(it: Iteration) -> str:
    """One line on how an iteration was trained, from its results.json headline (method, loss, time)."""
    head = it.results.get("headline", {})
    parts = [f"{k}={head[k]:.4g}" if isinstance(head[k], float) else f"{k}={head[k]}"
             for k in ("method", "final_val_loss", "train_minutes", "n_train", "epochs") if k in head]
    return ", ".join(parts) or "(no training headline recorded)"


# -- the iteration ledger ----------------------------------------------------------------------------------------
# One row per iteration (succeeded training run), oldest first, from what the runs recorded: the data audit run the
# training read and the hash of the splits it trained on, what changed in those splits and in the settings since
# the previous iteration, validation loss, and (once an evaluation of it succeeded) the headline test metric with
# its CI and the paired differences against the previous iteration and the baseline. ``test_set`` hashes the
# (id, reference) pairs the evaluation scored on: iterations with another hash than the newest were measured on
# another yardstick (a review sheet changed the test split) and are marked not comparable.

LEDGER_SETTINGS = ("training", "base_model", "data")  # engagement.yaml sections whose changes the ledger lists
LEDGER_IGNORED = ("data.corrections",)  # shown as corrected records instead


def _phase_run_of(inputs: dict, phase: str) -> tuple[str, dict]:
    """(run id, {file name: sha256}) of ``phase``'s run among a run's recorded inputs ('' when none).

    >>> _phase_run_of({"phases/02_data_audit/runs/r1/train.jsonl": "ab", "data/x.jsonl": "cd"}, "data_audit")
    ('r1', {'train.jsonl': 'ab'})
    """
    from ftkit.phases import get_phase

    folder = get_phase(phase).folder
    run_id, files = "", {}
    for key, digest in (inputs or {}).items():
        parts = Path(key).parts
        for i in range(len(parts) - 3):
            if parts[i] == folder and parts[i + 1] == "runs":
                run_id = parts[i + 2]
                files["/".join(parts[i + 3:])] = digest
    return run_id, files


def _read(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def split_answers(run_dir: Path | None, names=("train", "validation")) -> dict:
    """id -> final answer of the records in ``names`` splits of a data audit run ({} when not there)."""
    import json

    out = {}
    for name in names:
        path = run_dir / f"{name}.jsonl" if run_dir else None
        if path is None or not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                messages = record.get("messages") or [{}]
                out[str(record.get("id"))] = str(messages[-1].get("content", ""))
    return out


def data_changes(before: dict, after: dict) -> dict:
    """Records added, removed and corrected (same id, another answer) between two id -> answer maps.

    >>> data_changes({"a": "1", "b": "2"}, {"a": "9", "c": "3"})
    {'added': 1, 'removed': 1, 'corrected': 1}
    """
    common = before.keys() & after.keys()
    return {"added": len(after.keys() - before.keys()), "removed": len(before.keys() - after.keys()),
            "corrected": sum(1 for k in common if before[k] != after[k])}


def _flat(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def settings_changes(before: dict, after: dict) -> list[str]:
    """'training.learning_rate: 0.001 -> 0.0005' for every setting of LEDGER_SETTINGS that differs.

    >>> settings_changes({"training": {"epochs": 1, "lr": 1}}, {"training": {"epochs": 2, "lr": 1}})
    ['training.epochs: 1 -> 2']
    """
    a = {k: v for s in LEDGER_SETTINGS for k, v in _flat(before.get(s), s + ".").items()}
    b = {k: v for s in LEDGER_SETTINGS for k, v in _flat(after.get(s), s + ".").items()}
    return [f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k) and k not in LEDGER_IGNORED]


def _snapshot(run_dir: Path) -> dict:
    from ftkit.yamlio import safe_load

    path = run_dir / "engagement.snapshot.yaml"
    try:
        return safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError):
        return {}


def _evaluation_of(engagement, training_run_id: str) -> tuple[Path | None, dict]:
    """The newest succeeded evaluation run of a training run and its results.json."""
    for run_dir in reversed(succeeded_runs(engagement, "evaluation")):
        res = _read(run_dir / "results.json")
        if res.get("results", {}).get("training_run") == training_run_id:
            return run_dir, res
    return None, {}


def evaluation_row(results: dict, test_set: str) -> dict:
    """The ledger's test-metric columns from an evaluation's results ``results`` dict."""
    from ftkit.evaluation.paired import p_value

    m = (results.get("fine_tuned_metrics") or {}).get("headline", {}).get("name")
    row = (results.get("metrics") or {}).get(m)
    if not row:
        return {}
    prev = next((r for r in results.get("iterations") or [] if r.get("iteration") == results.get("iteration", 0) - 1
                 and "diff" in r), None)
    return {"metric": m, "value": row["fine_tuned"], "ci": list(row.get("fine_tuned_ci") or []),
            "baseline": row["baseline"], "vs_baseline": row["diff"], "vs_baseline_ci": list(row.get("diff_ci") or []),
            "vs_baseline_p": p_value(row), "vs_baseline_significant": bool(row.get("significant")),
            "higher_is_better": row.get("higher_is_better", True) is not False,
            "vs_previous": prev["diff"] if prev else None, "vs_previous_ci": prev["diff_ci"] if prev else None,
            "vs_previous_p": prev["p"] if prev else None,
            "vs_previous_significant": bool(prev["significant"]) if prev else None, "test_set": test_set}


def ledger_rows(engagement, current: dict | None = None) -> list[dict]:
    """The ledger, oldest iteration first. ``current``: {training_run, evaluation columns} of the evaluation now
    running (not yet on disk); other iterations are read from their newest succeeded evaluation."""
    from ftkit.generation import read_predictions

    rows, prev_answers, prev_settings = [], None, None
    for it in training_iterations(engagement):
        audit_run, read = _phase_run_of(it.results.get("inputs"), "data_audit")
        trained_on = {k: v for k, v in read.items() if k.endswith(".jsonl")}  # the splits, not results.json
        audit_dir = engagement.runs_dir("data_audit") / audit_run if audit_run else None
        answers = split_answers(audit_dir)
        settings = _snapshot(it.run_dir)
        head = it.results.get("headline", {})
        audit = _read(audit_dir / "results.json").get("results", {}) if audit_dir else {}
        row = {"iteration": it.number, "training_run": it.run_id, "data_audit_run": audit_run,
               "data_sha256": hashlib.sha256("".join(f"{k}:{trained_on[k]}" for k in sorted(trained_on)).encode()).hexdigest()
               if trained_on else "",
               "changes": data_changes(prev_answers, answers) if prev_answers is not None else None,
               "review_sheets": [s.get("path") for s in (audit.get("corrections") or {}).get("sheets", [])],
               "test_corrected": (audit.get("corrections") or {}).get("test_changed", 0),
               "settings_changed": settings_changes(prev_settings, settings) if prev_settings is not None else [],
               "val_loss": head.get("final_val_loss"), "evaluation_run": ""}
        if current and current.get("training_run") == it.run_id:
            row.update(current.get("columns") or {}, evaluation_run=current.get("evaluation_run", ""))
        else:
            ev_dir, ev = _evaluation_of(engagement, it.run_id)
            if ev_dir is not None and (ev_dir / PREDICTIONS).is_file():
                row.update(evaluation_row(ev.get("results", {}), test_set_hash(read_predictions(ev_dir / PREDICTIONS))),
                           evaluation_run=ev_dir.name)
        rows.append(row)
        prev_answers, prev_settings = answers, settings
    newest = next((r["test_set"] for r in reversed(rows) if r.get("test_set")), "")
    for r in rows:
        r["comparable"] = bool(r.get("test_set")) and r["test_set"] == newest
    return rows


def stalled_iterations(rows: list[dict]) -> list[dict]:
    """The newest evaluated iterations, in a row, without a significant gain over the one before (the baseline for
    iteration 1): what ``evaluation.max_iterations`` counts.

    >>> stalled_iterations([{"iteration": 1, "vs_baseline_significant": True, "vs_baseline": 0.2, "value": 1},
    ...                     {"iteration": 2, "vs_previous_significant": False, "vs_previous": 0.01, "value": 1}])
    [2]
    """
    out = []
    for r in reversed([r for r in rows if r.get("value") is not None]):
        if r["iteration"] == 1 or r.get("vs_previous_significant") is None:
            gained = r.get("vs_baseline_significant") and _better(r, r.get("vs_baseline"))
        else:
            gained = r["vs_previous_significant"] and _better(r, r.get("vs_previous"))
        if gained:
            break
        out.append(r["iteration"])
    return list(reversed(out))


def _better(row: dict, diff) -> bool:
    return diff is not None and (diff > 0 if row.get("higher_is_better", True) else diff < 0)
