"""The monitoring and retraining plan, the training data's reference statistics, and ``ftkit monitor``.

Reference statistics (``monitoring/reference_stats.json`` in the deployment plan run) describe the training
split the model learned from: tokens of the user's input (all user turns' content), tokens of the answer, and
the label mix (``task.label_field`` of a JSON answer, or the answer itself for classification). Only content
is counted, not the chat template or system prompt, so a log from any server (vLLM, TGI, ``ftkit serve``)
compares like with like.

A production log is JSONL, one request per line: ``{"messages": [{role, content}...] | "input": str,
"output": str, "finish_reason"?: str, "time"?: str}`` (``ftkit serve`` writes exactly this). ``monitor_log``
compares it with the reference (see ``ftkit.deployment.drift``) and returns a :class:`DriftReport`.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.deployment import drift
from ftkit.errors import DataError, FtkitError
from ftkit.fsutil import atomic_write_json, read_json

REFERENCE_FILE = "monitoring/reference_stats.json"
MAX_BAD_LINES_SHOWN = 10
RUNAWAY_ALERT_SHARE = 0.02  # > 2 % of answers cut by max_tokens: the model is not stopping (template drift?)


# -- reference statistics -------------------------------------------------------------------------

def content_lengths(tokenizer, messages_list: list[list[dict]], outputs: list[str]) -> tuple[list[int], list[int]]:
    """(input tokens, output tokens) per row: user turns' content, and the answer, without special tokens."""
    users = ["\n".join(m["content"] for m in msgs if m.get("role") == "user") for msgs in messages_list]
    enc = tokenizer(users + list(outputs), add_special_tokens=False)["input_ids"]  # one batched (fast) call
    return [len(x) for x in enc[:len(users)]], [len(x) for x in enc[len(users):]]


def label_of(messages: list[dict], output: str, task_type: str, label_field: str) -> str | None:
    """The class label an answer carries, derived exactly as the data audit derives it for training data."""
    from ftkit.data.record_checks import TaskContext, derive_label

    return derive_label(list(messages) + [{"role": "assistant", "content": output}], TaskContext(task_type, label_field))


def build_reference(records: list[dict], tokenizer, task_type: str, label_field: str, tokenizer_ref: str = "") -> dict:
    """Reference statistics of training records (``{"messages": [..., assistant]}``), for reference_stats.json."""
    from ftkit.data.stats import percentiles
    from ftkit.prompting import split_record

    if not records:
        raise DataError("The training split is empty: no reference statistics for drift detection.")
    pairs = [split_record(r) for r in records]
    inputs, outputs = content_lengths(tokenizer, [p[0] for p in pairs], [p[1] for p in pairs])
    labels = [r.get("label") if r.get("label") is not None else label_of(p[0], p[1], task_type, label_field)
              for r, p in zip(records, pairs)]
    counts: dict[str, int] = {}
    for lab in labels:
        if lab is not None:
            counts[str(lab)] = counts.get(str(lab), 0) + 1
    return {"version": 1, "n": len(records), "tokenizer": tokenizer_ref,
            "task": {"type": task_type, "label_field": label_field},
            "features": {"input_tokens": _feature(inputs, percentiles), "output_tokens": _feature(outputs, percentiles)},
            "labels": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _feature(values: list[int], percentiles) -> dict:
    return {"n": len(values), "summary": percentiles(values), "values": drift.quantile_sketch(values)}


# -- production logs ------------------------------------------------------------------------------

@dataclass
class LogRow:
    line: int
    messages: list[dict]
    output: str
    finish_reason: str = ""


def _row(obj, line: int) -> tuple[LogRow | None, str]:
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    messages = obj.get("messages")
    if messages is None and isinstance(obj.get("input"), str):
        messages = [{"role": "user", "content": obj["input"]}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                 and isinstance(m.get("role"), str) for m in messages):
        return None, "needs 'messages' (a list of {role, content} with text content) or 'input' (text)"
    output = obj.get("output", obj.get("completion"))
    if not isinstance(output, str):
        return None, "needs 'output' (the model's answer as text)"
    return LogRow(line, messages, output, str(obj.get("finish_reason") or "")), ""


def read_log(path: str | Path) -> list[LogRow]:
    """Rows of a production log; every bad line is reported at once (line number, what is wrong, the fix)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Log file {path} does not exist; pass the JSONL log your serving layer writes "
                        f"(`ftkit serve` writes deployment.uat_log).")
    rows, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as err:
                bad.append(f"line {number}: not valid JSON ({err.msg} at column {err.colno})")
                continue
            row, problem = _row(obj, number)
            if problem:
                bad.append(f"line {number}: {problem}")
            else:
                rows.append(row)
    if bad:
        shown = "\n".join(f"  - {b}" for b in bad[:MAX_BAD_LINES_SHOWN])
        more = f"\n  ... and {len(bad) - MAX_BAD_LINES_SHOWN} more" if len(bad) > MAX_BAD_LINES_SHOWN else ""
        raise DataError(f"{path}: {len(bad)} of {len(bad) + len(rows)} lines cannot be used:\n{shown}{more}\n"
                        f"Each line must be one JSON object like "
                        f'{{"messages": [{{"role": "user", "content": "..."}}], "output": "..."}}; fix or drop those lines.')
    if not rows:
        raise DataError(f"{path} has no log lines; nothing to compare.")
    return rows


# -- the drift report -----------------------------------------------------------------------------

@dataclass
class DriftReport:
    log: str
    n_rows: int
    features: list[drift.FeatureDrift]
    runaway_share: float | None  # share of answers cut by max_tokens (None: log has no finish_reason)
    psi_alert: float
    notes: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[str]:
        out = [f"{f.feature}: PSI {f.psi:.2f}, p = {f.p_value:.2g}" for f in self.features if f.status == "alert"]
        if self.runaway_share is not None and self.runaway_share > RUNAWAY_ALERT_SHARE:
            out.append(f"{self.runaway_share:.1%} of answers hit max_tokens (model not stopping)")
        return out

    @property
    def status(self) -> str:
        if self.alerts:
            return "alert"
        statuses = {f.status for f in self.features}
        return "watch" if "watch" in statuses else ("too_few" if statuses == {"too_few"} else "stable")

    def rows(self) -> list[dict]:
        return [{"feature": f.feature, "status": f.status, "psi": round(f.psi, 3), "test": f.test,
                 "statistic": round(f.statistic, 3), "p_value": float(f"{f.p_value:.3g}"),
                 "reference": round(f.reference_median, 3), "production": round(f.production_median, 3),
                 "n_production": f.n_production} for f in self.features]

    def to_dict(self) -> dict:
        return {"log": self.log, "n_rows": self.n_rows, "status": self.status, "alerts": self.alerts,
                "psi_alert": self.psi_alert, "runaway_share": self.runaway_share, "features": self.rows(),
                "notes": self.notes}


def compare_to_reference(reference: dict, rows: list[LogRow], tokenizer, psi_alert: float = drift.PSI_ALERT,
                         log_name: str = "") -> DriftReport:
    """Drift of production ``rows`` against ``reference`` (from :func:`build_reference`)."""
    inputs, outputs = content_lengths(tokenizer, [r.messages for r in rows], [r.output for r in rows])
    feats = reference["features"]
    features = [drift.length_drift("input tokens", feats["input_tokens"], inputs, psi_alert),
                drift.length_drift("output tokens", feats["output_tokens"], outputs, psi_alert)]
    notes = []
    if reference.get("labels"):
        task = reference["task"]
        labels = [label_of(r.messages, r.output, task["type"], task["label_field"]) for r in rows]
        features.append(drift.label_drift(reference["labels"], labels, psi_alert))
    else:
        notes.append("The training data has no labels (no task.label_field): the label mix is not monitored.")
    reasons = [r.finish_reason for r in rows if r.finish_reason]
    runaway = sum(1 for x in reasons if x == "length") / len(reasons) if reasons else None
    if len(rows) < drift.MIN_SAMPLES:
        notes.append(f"Only {len(rows)} log lines: at least {drift.MIN_SAMPLES} are needed for a verdict.")
    return DriftReport(log_name, len(rows), features, runaway, psi_alert, notes)


def reference_path(engagement) -> Path:
    run_dir = engagement.latest_run_dir("deployment_plan")
    if run_dir is None or not (run_dir / REFERENCE_FILE).is_file():
        raise FtkitError(f"Engagement '{engagement.slug}' has no deployment plan with reference statistics; run "
                         f"`ftkit run {engagement.slug} --phase deployment_plan` first.")
    return run_dir / REFERENCE_FILE


def monitor_log(engagement, log_path: str | Path) -> DriftReport:
    """``ftkit monitor``: compare a production log with the latest deployment plan's reference statistics."""
    from ftkit.config import load_config
    from ftkit.models import load_tokenizer

    ref_file = reference_path(engagement)
    reference = read_json(ref_file)
    rows = read_log(log_path)
    tok_dir = engagement.path / reference["tokenizer"] if reference.get("tokenizer") else None
    if tok_dir is None or not tok_dir.is_dir():
        raise FtkitError(f"The tokenizer the reference statistics were counted with ({tok_dir}) is missing; "
                         f"re-run the deployment plan phase.")
    config = load_config(engagement.config_path)
    return compare_to_reference(reference, rows, load_tokenizer(str(tok_dir)), config.deployment.drift_psi_alert,
                                str(log_path))


def write_report(report: DriftReport, folder: str | Path) -> Path:
    """Keep a dated copy of the drift report (``<folder>/drift-<UTC time>.json``) as evidence."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return atomic_write_json(Path(folder) / f"drift-{stamp}.json", report.to_dict())
