"""``ftkit augment CLIENT``: the two steps, as plain functions the CLI calls.

1. :func:`generate` (``ftkit augment CLIENT``): targets from the latest data audit's training split (and the
   suitability verdict), teacher requests logged to ``augmentation/<run>/candidates.jsonl`` (resumable), the
   filters, and the review sheet ``review.html`` / ``review.csv``. ``augment.json`` records the plan (targets,
   teacher, sampling settings, seeds), the teacher's calls, tokens and price, the rejections per reason and the
   findings.
2. ``ftkit.augmentation.accept.accept`` (``ftkit augment CLIENT --review FILLED.csv``): the filled sheet read back; accepted and edited
   candidates written to ``data/synthetic-<date>-<sheet>.jsonl`` with ``source: synthetic`` and their provenance,
   and that file added to ``data.files`` (so the next data audit reads it; the delivered files are never
   touched). The next ``ftkit run CLIENT --phase data_audit`` counts them per split and label.
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import math
import random
from pathlib import Path

from ftkit.augmentation.candidates import LOG_NAME, CandidateLog, plan_sha256
from ftkit.augmentation.filters import REASONS, filter_candidates
from ftkit.augmentation.layout import FOLDER, SUMMARY, task_context
from ftkit.augmentation.prompts import build_request, parse_candidates, request_sha256
from ftkit.augmentation.targets import NOT_YET, choose_targets, label_set, pick_shots
from ftkit.errors import FtkitError
from ftkit.findings import Finding
from ftkit.fsutil import read_json

MAX_CONSECUTIVE_PROBLEMS = 5  # unusable teacher answers in a row after which generation stops (a broken teacher)
TEACHER_PROBLEM_WARN = 0.2  # share (0-1) of requests with an unusable answer above which the finding is a warning


# -- inputs ----------------------------------------------------------------------------------------------------

def _splits(engagement) -> tuple[str, list[dict], list[dict]]:
    from ftkit.prompting import read_records

    run_dir = engagement.latest_run_dir("data_audit")
    if run_dir is None or not (run_dir / "train.jsonl").is_file():
        raise FtkitError(f"`ftkit augment` drafts from the training split of the data audit, which has not run: "
                         f"`ftkit run {engagement.slug} --phase data_audit` first.")
    return run_dir.name, read_records(run_dir / "train.jsonl"), read_records(run_dir / "test.jsonl")


def suitability_says_not_yet(engagement) -> bool:
    """True when the latest suitability run's typed results recommend "not yet" (too few examples)."""
    from ftkit.phase_results import load_or_none

    run_dir = engagement.latest_run_dir("suitability")
    if run_dir is None or not (run_dir / "results.json").is_file():
        return False
    results = load_or_none("suitability", read_json(run_dir / "results.json"))
    return bool(results and results.recommendation == NOT_YET)


def make_plan(config, audit_run: str, train: list[dict], teacher_identity: dict, not_yet: bool) -> dict:
    """Everything that decides the requests: a re-run with the same plan continues the same log."""
    a = config.augmentation
    labels = label_set(train, config.task.labels) if (config.task.type == "classification" or
                                                       config.task.label_field) else ()
    targets = choose_targets(train, labels, list(a.slice_fields), a.min_per_target, a.candidates_per_target,
                             not_yet, a.whole_set_candidates)
    schedule = []
    for t in targets:
        for k in range(math.ceil(t.want / a.per_call)):
            schedule.append({"target": t.name, "n": min(a.per_call, t.want - k * a.per_call)})
    return {"data_audit_run": audit_run, "not_yet": not_yet, "labels": list(labels),
            "targets": [t.to_dict() for t in targets], "teacher": teacher_identity,
            "sampling": {"temperature": a.temperature, "top_p": a.top_p, "max_tokens": a.max_tokens,
                         "per_call": a.per_call, "shots": a.shots},
            "seed": a.seed, "limits": {"max_calls": a.max_calls, "max_tokens_total": a.max_tokens_total},
            "prices_usd_per_1k": {"input": a.usd_per_1k_input_tokens, "output": a.usd_per_1k_output_tokens},
            "task": {"type": config.task.type, "label_field": config.task.label_field,
                     "system_prompt": config.task.system_prompt},
            "schedule": schedule[:a.max_calls], "schedule_cut": max(0, len(schedule) - a.max_calls)}


def _target_objects(plan: dict) -> dict:
    from ftkit.augmentation.targets import Target

    return {t["name"]: Target(**{k: t.get(k, "") for k in ("kind", "name", "field", "value", "label")},
                              have=t["have"], want=t["want"]) for t in plan["targets"]}


# -- step 1: generate, filter, sheet -----------------------------------------------------------------------------

def _new_run_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _resumable(folder: Path, sha: str) -> Path | None:
    """The newest unfinished run whose plan is this one (a killed run to continue), else None."""
    for run in sorted((p for p in folder.glob("*") if (p / LOG_NAME).is_file()), reverse=True):
        log = CandidateLog.open(run / LOG_NAME)
        if log.complete is None and log.header.get("plan_sha256") == sha:
            return run
    return None


def _finished(folder: Path, sha: str) -> Path | None:
    """The newest finished run (with its summary) of this plan, else None."""
    for run in sorted((p for p in folder.glob("*") if (p / SUMMARY).is_file()), reverse=True):
        summary = read_json(run / SUMMARY)
        if summary.get("plan_sha256") == sha and summary.get("status") != "stopped":
            return run
    return None


def generate(engagement, teacher=None, restart: bool = False, on_event=print) -> dict:
    """Step 1; returns the summary written to ``augment.json``. ``teacher``: injected in tests, else from config."""
    from ftkit.config import load_config
    from ftkit.lock import engagement_lock

    config = load_config(engagement.config_path)
    audit_run, train, test = _splits(engagement)
    with engagement_lock(engagement.lock_path, "ftkit augment"):
        return generate_from(engagement, config, audit_run, train, test, engagement.path / FOLDER, teacher,
                             restart, on_event)


def generate_from(engagement, config, audit_run: str, train: list[dict], test: list[dict], folder: Path,
                  teacher=None, restart: bool = False, on_event=print) -> dict:
    """Step 1 on given splits, its runs under ``folder`` (the caller holds the engagement lock)."""
    teacher = teacher or _teacher(config)
    plan = make_plan(config, audit_run, train, teacher.identity(), suitability_says_not_yet(engagement))
    if not plan["targets"]:
        message = (f"No label or slice has fewer than {config.augmentation.min_per_target} training examples "
                   f"(augmentation.min_per_target) and suitability does not say \"not yet\": nothing to augment.")
        on_event(message)
        return {"plan": plan, "status": None, "findings": [Finding("info", "augment.no_targets", message).to_dict()]}
    sha = plan_sha256(plan)
    done = None if restart else _finished(folder, sha)
    if done is not None:
        on_event(f"{done.name} already ran with these settings and this data audit; its results follow. For a new "
                 f"draw change augmentation.seed (or the settings) or pass --restart.")
        return read_json(done / SUMMARY)
    run_dir = None if restart else _resumable(folder, sha)
    if run_dir is None:
        run_dir = folder / _new_run_id()
        log = CandidateLog.create(run_dir / LOG_NAME, plan)
    else:
        log = CandidateLog.open(run_dir / LOG_NAME)
        on_event(f"Continuing {run_dir.name}: {len(log.calls)} of {len(plan['schedule'])} requests were done.")
    findings = _run_requests(log, plan, train, teacher, on_event)
    if log.complete is None:
        summary = _summary(run_dir, plan, log, None, findings, status="stopped")
        _write_summary(run_dir, summary)
        return summary
    return _filter_and_sheet(engagement, config, run_dir, plan, log, train, test, findings, on_event)


def split_records(result) -> dict[str, list[dict]]:
    """The split records of a data audit still in memory (``AuditResult``), as its train/test.jsonl will hold them."""
    out: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    result.spool.seek(0)
    text = io.TextIOWrapper(result.spool, encoding="utf-8")
    try:
        valid = (i for i, m in enumerate(result.metas) if m.get("valid"))
        for line, index in zip(text, valid):
            name = result.splits.get(index)
            if name:
                out[name].append(json.loads(line))
    finally:
        text.detach()  # the spool stays open for write_outputs
    return out


def generate_in_run(run, result, on_event=lambda message: None) -> dict:
    """The data audit notebook's optional section: step 1 on this run's splits, under ``<run>/augmentation/``
    (hashed with the run's outputs; the runner holds the lock). Review as usual with ``ftkit augment --review``."""
    splits = split_records(result)
    return generate_from(run.engagement, run.config, run.run_id, splits["train"], splits["test"],
                         run.run_dir / FOLDER, on_event=on_event)


def _teacher(config):
    from ftkit.augmentation.teacher import teacher_for

    return teacher_for(config)


def _run_requests(log: CandidateLog, plan: dict, train: list[dict], teacher, on_event) -> list[Finding]:
    from ftkit.augmentation.teacher import TeacherError

    if log.complete is not None:
        return []
    targets, s = _target_objects(plan), plan["sampling"]
    labels, task = tuple(plan["labels"]), plan["task"]
    tokens = sum(c.get("prompt_tokens", 0) + c.get("completion_tokens", 0) for c in log.calls)
    in_a_row = 0
    for call in range(log.next_call, len(plan["schedule"])):
        if tokens >= plan["limits"]["max_tokens_total"]:
            log.finish({"stopped": "max_tokens_total"})
            return [Finding("warning", "augment.token_budget", f"Stopped after {call} of {len(plan['schedule'])} "
                            f"requests: the teacher used {tokens:,} tokens (augmentation.max_tokens_total "
                            f"{plan['limits']['max_tokens_total']:,}).", "Raise augmentation.max_tokens_total, or "
                            "ask for fewer candidates, and run `ftkit augment --restart`.")]
        step = plan["schedule"][call]
        target = targets[step["target"]]
        rng = random.Random(plan["seed"] * 1_000_003 + call)  # per request: a resumed run asks the same
        shots = pick_shots(train, target, s["shots"], rng)
        messages = build_request(target, shots, step["n"], task["type"], task["system_prompt"], labels,
                                 task["label_field"])
        seed = plan["seed"] + call
        try:
            reply = teacher.chat(messages, s["max_tokens"], s["temperature"], s["top_p"], seed)
        except TeacherError as err:
            if err.fatal:
                raise
            return [Finding("warning", "augment.teacher_unavailable", f"Request {call + 1} of "
                            f"{len(plan['schedule'])} failed: {err}", f"Run `ftkit augment` again when the teacher "
                            f"answers: it continues with request {call + 1}.")]
        items, problem = parse_candidates(reply.text)
        log.add_call({"call": call, "target": target.name, "seed": seed, "n_asked": step["n"],
                      "shots": [r.get("id") for r in shots], "request": messages,
                      "prompt_sha256": request_sha256(messages),
                      "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                      "finish_reason": reply.finish_reason, "latency_s": round(reply.latency_s, 3),
                      "retries": reply.retries, "problem": problem, "reply_excerpt": reply.text[:200] if problem else "",
                      "items": items})
        tokens += reply.prompt_tokens + reply.completion_tokens
        in_a_row = in_a_row + 1 if problem else 0
        on_event(f"request {call + 1}/{len(plan['schedule'])} ({target.name}): "
                 + (problem if problem else f"{len(items)} candidate(s)"))
        if in_a_row >= MAX_CONSECUTIVE_PROBLEMS:
            log.finish({"stopped": "teacher_problems"})
            return [Finding("warning", "augment.teacher_broken", f"Stopped after {call + 1} requests: the last "
                            f"{in_a_row} teacher answers were unusable ({problem}).",
                            "Check augmentation.teacher (model, base_url) with one request by hand, then run "
                            "`ftkit augment --restart`.")]
    log.finish({"stopped": ""})
    return []


def teacher_findings(totals: dict, cut: int) -> list[Finding]:
    """One finding per kind of unusable teacher answer (warning above TEACHER_PROBLEM_WARN of the requests)."""
    out = []
    calls = totals["calls"] or 1
    for code, n in sorted(totals["problems"].items()):
        severity = "warning" if n / calls > TEACHER_PROBLEM_WARN else "info"
        what = {"teacher.empty": "were empty", "teacher.refusal": "were refusals",
                "teacher.not_json": "were not JSON"}.get(code, code)
        out.append(Finding(severity, f"augment.{code.split('.', 1)[1]}", f"{n} of {totals['calls']} teacher answers "
                           f"{what}; they gave no candidates.", "Use a stronger teacher (augmentation.teacher) or "
                           "lower augmentation.per_call." if severity == "warning" else ""))
    if cut:
        out.append(Finding("info", "augment.max_calls", f"{cut} planned request(s) were not made: "
                           f"augmentation.max_calls is the limit.", "Raise augmentation.max_calls for more."))
    return out


def cost_usd(totals: dict, prices: dict) -> float | None:
    """Teacher cost from its token counts (None when no price is set).

    >>> cost_usd({"prompt_tokens": 2000, "completion_tokens": 1000}, {"input": 0.5, "output": 1.5})
    2.5
    """
    if not (prices.get("input") or prices.get("output")):
        return None
    return round(totals["prompt_tokens"] / 1000 * prices["input"] + totals["completion_tokens"] / 1000 * prices["output"], 6)


def rejection_findings(counts: dict, kept: int, total: int) -> list[Finding]:
    if not total:
        return [Finding("warning", "augment.no_candidates", "The teacher's answers held no candidate at all.",
                        "Use a stronger teacher (augmentation.teacher) and run `ftkit augment --restart`.")]
    rejected = {r: n for r, n in counts.items() if n}
    text = "; ".join(f"{n} {REASONS[r]}" for r, n in sorted(rejected.items(), key=lambda kv: -kv[1])) or "none"
    out = [Finding("info", "augment.filtered", f"{kept} of {total} candidates passed the filters and go to review; "
                   f"rejected: {text}.")]
    if counts.get("test_leak"):
        out.append(Finding("info", "augment.test_leak", f"{counts['test_leak']} candidate(s) were copies or near "
                           f"copies of test examples and were dropped, so the test set stays unseen."))
    if not kept:
        out.append(Finding("warning", "augment.none_kept", "No candidate passed the filters.",
                           "Use a stronger teacher (augmentation.teacher) and run `ftkit augment --restart`."))
    return out


def _filter_and_sheet(engagement, config, run_dir, plan, log, train, test, findings, on_event) -> dict:
    from ftkit.augmentation.review import write_review

    candidates = log.candidates()
    filtered = filter_candidates(candidates, train, test, task_context(config), tuple(plan["labels"]),
                                 plan["task"]["system_prompt"], config.data.near_duplicate_threshold,
                                 {t["name"]: t for t in plan["targets"]})
    _write_rejections(run_dir, filtered.rejected)
    paths = write_review(run_dir, filtered.kept) if filtered.kept else {}
    counts = filtered.counts()
    findings = findings + teacher_findings(log.totals(), plan["schedule_cut"]) + \
        rejection_findings(counts, len(filtered.kept), len(candidates))
    summary = _summary(run_dir, plan, log, {"candidates": len(candidates), "kept": len(filtered.kept),
                                            "rejected": counts}, findings, "awaiting_review" if paths else "nothing_to_review")
    summary["sheet"] = {k: engagement.relative(v) for k, v in paths.items()}
    _write_summary(run_dir, summary)
    return summary


def _write_rejections(run_dir: Path, rejected: list[dict]) -> None:
    from ftkit.fsutil import atomic_write_text
    from ftkit.safe_values import csv_text

    rows = [{"candidate": r["cid"], "target": r["target"], "reason": r["reason"], "detail": r["detail"],
             "item": json.dumps(r["item"], ensure_ascii=False)[:500]} for r in rejected]
    atomic_write_text(run_dir / "rejected.csv", csv_text(["candidate", "target", "reason", "detail", "item"], rows))


def _summary(run_dir: Path, plan: dict, log: CandidateLog, filtered: dict | None, findings: list, status: str) -> dict:
    totals = log.totals()
    return {"run_id": run_dir.name, "status": status, "plan_sha256": plan_sha256(plan), "plan": plan,
            "teacher": plan["teacher"], "calls": totals, "cost_usd": cost_usd(totals, plan["prices_usd_per_1k"]),
            "filtered": filtered, "findings": [f.to_dict() for f in findings]}


def _write_summary(run_dir: Path, summary: dict) -> None:
    from ftkit.fsutil import atomic_write_json

    atomic_write_json(run_dir / SUMMARY, summary)


# -- the CLI's entry point ------------------------------------------------------------------------------------

def augment_command(client: str, root: str | Path = "engagements", review: str = "", restart: bool = False,
                    run_id: str = "") -> int:
    """``ftkit augment``: 0 when a sheet is ready (or a review was accepted), 1 when nothing came out of it."""
    from ftkit.engagement import Engagement

    engagement = Engagement.at(client, root)
    if review:
        from ftkit.augmentation.accept import accept

        out = accept(engagement, review, run_id)
        if out["file"]:
            print(f"Wrote {out['file']} ({out['decisions']['accept'] + out['decisions']['edit']} synthetic examples, "
                  f"source: synthetic, with their provenance)"
                  + (" and added it to data.files in engagement.yaml." if out.get("added_to_data_files") else "."))
            print(f"Next: ftkit run {engagement.slug} --phase data_audit --root {root}  (the audit counts them per "
                  f"split and label; the evaluation scores the client's own test examples only)")
        else:
            print("No candidate was accepted: no data file was written.")
        return 0
    summary = generate(engagement, restart=restart, on_event=lambda m: print(m, flush=True))
    for line in describe(summary, engagement):
        print(line)
    return 0 if summary.get("status") in ("awaiting_review", None) else 1


def describe(summary: dict, engagement) -> list[str]:
    """What `ftkit augment` prints after generating: targets, teacher use and cost, filters, findings, next step."""
    plan = summary["plan"]
    lines = []
    if plan.get("targets"):
        lines.append("Targets: " + ", ".join(f"{t['name']} ({t['have']} in train, {t['want']} asked)"
                                             for t in plan["targets"]))
    calls = summary.get("calls")
    if calls:
        cost = summary.get("cost_usd")
        lines.append(f"Teacher {plan['teacher'].get('model', '')}: {calls['calls']} request(s), "
                     f"{calls['prompt_tokens']:,} prompt + {calls['completion_tokens']:,} answer tokens"
                     + (f", ${cost:,.4f}" if cost is not None else " (no price set)") + ".")
    for f in summary.get("findings", []):
        lines.append(f"[{f['severity']}] {f['message']}" + (f" Next: {f['next_step']}" if f.get("next_step") else ""))
    sheet = summary.get("sheet") or {}
    if sheet:
        lines.append(f"Review sheet: {engagement.path / sheet['html']} (or review.csv beside it); fill in decision "
                     f"(accept | edit | reject), then: ftkit augment {engagement.slug} --review FILLED.csv")
    return lines
