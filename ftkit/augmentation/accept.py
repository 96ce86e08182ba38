"""Step 2 of ``ftkit augment`` (``--review FILLED.csv``): the filled review sheet read back, and the accepted and
edited candidates written to ``data/synthetic-<date>-<sheet>.jsonl`` with ``source: synthetic`` and their
provenance; that file is appended to ``data.files`` in engagement.yaml (comments kept) and logged in
``audit.jsonl``. The delivered data files are never touched.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
from pathlib import Path

from ftkit.augmentation.layout import FOLDER, SOURCE, SUMMARY, task_context
from ftkit.augmentation.filters import REASONS, filter_candidates
from ftkit.errors import FtkitError


def _review_runs(engagement) -> list[Path]:
    """Augmentation runs with a review sheet: ``ftkit augment``'s and the data audit notebook's, oldest first."""
    keys = list(engagement.path.glob(f"{FOLDER}/*/review_key.json"))
    keys += engagement.runs_dir("data_audit").glob(f"*/{FOLDER}/*/review_key.json")
    return sorted((k.parent for k in keys), key=lambda p: p.name)


def _review_run(engagement, run_id: str = "") -> Path:
    folder = engagement.path / FOLDER
    runs = _review_runs(engagement)
    if run_id:
        runs = [p for p in runs if p.name == run_id]
    if not runs:
        raise FtkitError(f"No review sheet{' for run ' + run_id if run_id else ''} under {folder}: run "
                         f"`ftkit augment {engagement.slug}` first.")
    return runs[-1]


def accept(engagement, filled: str | Path, run_id: str = "", on_event=print) -> dict:
    """Step 2; returns what was accepted (also written to ``accepted.json`` in the augmentation run)."""
    from ftkit.audit_log import append_event
    from ftkit.augmentation.review import read_review, sheet_sha256
    from ftkit.config import load_config
    from ftkit.fsutil import atomic_write_json, atomic_write_text, read_json, sha256_file
    from ftkit.lock import engagement_lock

    config = load_config(engagement.config_path)
    filled = Path(filled)
    run_dir = _review_run(engagement, run_id or _sheet_run(engagement, filled))
    key, summary = read_json(run_dir / "review_key.json"), read_json(run_dir / SUMMARY)
    plan = summary["plan"]
    train, test = _plan_splits(engagement, plan)
    decisions, reviewer = read_review(filled, key, _recheck(config, plan, train, test))
    sheet_sha = sheet_sha256(filled)
    records = _accepted_records(key, decisions, plan, summary, reviewer, sheet_sha, filled.name)
    counts = {d: sum(1 for v in decisions.values() if v["decision"] == d) for d in ("accept", "edit", "reject")}
    with engagement_lock(engagement.lock_path, "ftkit augment --review"):
        out = {"run_id": run_dir.name, "sheet": filled.name, "sheet_sha256": sheet_sha, "reviewer": reviewer,
               "decisions": counts, "file": "", "file_sha256": ""}
        if records:
            date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d")
            path = engagement.data_dir / f"synthetic-{date}-{key['sheet_id']}.jsonl"
            if path.exists():
                raise FtkitError(f"{path} exists: this review was accepted already. Each review sheet is accepted once; "
                                 f"to change decisions, delete that file and its line in data.files first.")
            atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            rel = engagement.relative(path)
            added = add_data_file(engagement.config_path, rel)
            out.update(file=rel, file_sha256=sha256_file(path), added_to_data_files=added)
            append_event(engagement.audit_path, "synthetic_data_added", file=rel, sha256=out["file_sha256"],
                         augmentation_run=run_dir.name, sheet_sha256=sheet_sha, reviewer=reviewer, **counts)
        atomic_write_json(run_dir / "accepted.json", out)
    on_event(f"{counts['accept']} accepted, {counts['edit']} edited, {counts['reject']} rejected by {reviewer}.")
    return out


def _sheet_run(engagement, filled: Path) -> str:
    """The augmentation run a filled sheet belongs to (by its sheet id), or "" to take the newest."""
    from ftkit.evaluation.ab_sheet import sheet_id_of
    from ftkit.fsutil import read_json

    sheet = sheet_id_of(filled)
    for run in _review_runs(engagement):
        if read_json(run / "review_key.json")["sheet_id"] == sheet:
            return run.name
    return ""


def _plan_splits(engagement, plan: dict) -> tuple[list[dict], list[dict]]:
    from ftkit.prompting import read_records

    run_dir = engagement.runs_dir("data_audit") / plan["data_audit_run"]
    return read_records(run_dir / "train.jsonl"), read_records(run_dir / "test.jsonl")


def _recheck(config, plan: dict, train: list[dict], test: list[dict]):
    """An edited answer goes through every filter again (against train, test and nothing else)."""
    def recheck(item: dict, answer: str) -> str:
        messages = item["messages"][:-1] + [{"role": "assistant", "content": answer}]
        cand = {"cid": item["cid"], "call": item["call"], "target": item["target"], "seed": item["seed"],
                "prompt_sha256": item["prompt_sha256"], "item": {"input": messages[-2]["content"], "answer": answer}}
        result = filter_candidates([cand], train, test, task_context(config), tuple(plan["labels"]),
                                   plan["task"]["system_prompt"], config.data.near_duplicate_threshold,
                                   {t["name"]: t for t in plan["targets"]})
        return "" if result.kept else f"is rejected: {REASONS[result.rejected[0]['reason']]} ({result.rejected[0]['detail']})"
    return recheck


def _accepted_records(key: dict, decisions: dict, plan: dict, summary: dict, reviewer: str, sheet_sha: str,
                      sheet_name: str) -> list[dict]:
    from ftkit.data.pii import mask  # a reviewer's comment may quote personal data: it is masked in the record

    targets = {t["name"]: t for t in plan["targets"]}
    out = []
    for item in key["items"]:
        d = decisions[item["item_id"]]
        if d["decision"] == "reject":
            continue
        messages = [dict(m) for m in item["messages"]]
        if d["decision"] == "edit":
            messages[-1]["content"] = d["answer"]
        target = targets.get(item["target"], {})
        record = {"id": f"synthetic-{item['item_id']}", "messages": messages, "source": SOURCE, "provenance": {
            "teacher": plan["teacher"], "augmentation_run": summary["run_id"], "plan_sha256": summary["plan_sha256"],
            "target": item["target"], "call": item["call"], "seed": item["seed"],
            "prompt_sha256": item["prompt_sha256"], "sampling": plan["sampling"],
            "data_audit_run": plan["data_audit_run"], "decision": d["decision"], "reviewer": reviewer,
            "review_comment": mask(d["comment"]), "sheet": sheet_name, "sheet_sha256": sheet_sha,
            "sheet_id": key["sheet_id"]}}
        if target.get("kind") == "slice":
            record["metadata"] = {target["field"]: target["value"]}  # the data audit carries it into `fields`
        out.append(record)
    return out


def add_data_file(config_path: Path, rel: str) -> bool:
    """Append ``rel`` to ``data.files`` in engagement.yaml, comments kept; False when it is listed already."""
    from ftkit.config import parse_config
    from ftkit.fsutil import atomic_write_text
    from ftkit.yamlio import round_trip, safe_load

    yaml = round_trip()
    doc = yaml.load(Path(config_path).read_text(encoding="utf-8"))
    files = doc.setdefault("data", {}).setdefault("files", [])
    if rel in files:
        return False
    files.append(rel)
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    parse_config(safe_load(buffer.getvalue()), source=str(config_path))
    atomic_write_text(config_path, buffer.getvalue())
    return True
