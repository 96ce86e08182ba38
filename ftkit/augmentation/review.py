"""The review sheet: every candidate that passed the filters, for a person to accept, edit or reject.

Written twice with the same rows, like the A/B sheets: ``review.csv`` (a spreadsheet: fill ``decision``, and
``edited_answer`` for an edit, ``comment`` optionally; text that a spreadsheet would run as a formula gets a
leading ``'``, ``safe_values.csv_cell``) and ``review.html`` (a self-contained form, no external scripts, that
downloads the filled CSV). ``review_key.json`` holds the candidates' full records and where each came from.

Read back with :func:`read_review`: every row to fix (unknown or repeated item ids, a missing or unknown
decision, an edit without an edited answer, an edited answer that fails the filters) is listed in one
``DataError`` with its line number.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ftkit.errors import DataError
from ftkit.fsutil import atomic_write_json, atomic_write_text
from ftkit.safe_values import csv_text

SHEET_COLUMNS = ("item_id", "target", "input", "answer", "decision", "edited_answer", "comment", "reviewer")
REQUIRED_COLUMNS = ("item_id", "decision")
DECISIONS = ("accept", "edit", "reject")
MAX_LISTED_PROBLEMS = 40


def sheet_rows(kept: list[dict]) -> tuple[list[dict], dict]:
    """(rows, key) for the candidates that passed; the sheet id hashes the candidates, so the same run gives the
    same sheet and a filled copy of another run's sheet is recognised."""
    digest = hashlib.sha256(json.dumps([[c["cid"], c["messages"]] for c in kept], ensure_ascii=False)
                            .encode("utf-8")).hexdigest()
    sheet_id = digest[:8]
    rows, items = [], []
    for k, cand in enumerate(kept, start=1):
        item_id = f"{sheet_id}-{k:03d}"
        user = next(m["content"] for m in cand["messages"] if m["role"] == "user")
        answer = cand["messages"][-1]["content"]
        rows.append({"item_id": item_id, "target": cand["target"], "input": user, "answer": answer,
                     "decision": "", "edited_answer": "", "comment": "", "reviewer": ""})
        items.append({"item_id": item_id, **{k2: cand[k2] for k2 in ("cid", "call", "target", "seed",
                                                                     "prompt_sha256", "messages", "label")}})
    return rows, {"sheet_id": sheet_id, "n_items": len(rows), "decisions": list(DECISIONS), "items": items}


def write_review(folder: Path, kept: list[dict]) -> dict[str, Path]:
    rows, key = sheet_rows(kept)
    return {"csv": atomic_write_text(folder / "review.csv", "\ufeff" + csv_text(SHEET_COLUMNS, rows)),
            "html": atomic_write_text(folder / "review.html", render_html(rows, key["sheet_id"])),
            "key": atomic_write_json(folder / "review_key.json", key)}


def render_html(rows: list[dict], sheet_id: str) -> str:
    from ftkit.review_form import render

    return render(_HTML, rows=rows, sheet_id=sheet_id, name_field="reviewer", download_label="Download review",
                  columns=",".join(("item_id", "decision", "edited_answer", "comment", "reviewer")))


def read_review(path: Path, key: dict, recheck) -> tuple[dict[str, dict], str]:
    """({item id: {"decision", "answer", "comment"}}, reviewer) from a filled sheet.

    ``recheck(item, edited_answer) -> problem or ""`` re-applies the filters to an edited answer. Every row must
    carry a decision (a review is complete or it is not used); problems are listed with their line numbers.
    """
    # The A/B sheets' reader (BOM, ';' or tab, the ' undone) and problem list.
    from ftkit.evaluation.ab_sheet import _read_rows, absent_problem, raise_problems

    header, rows = _read_rows(Path(path))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}. The first line must be the header "
                        f"{','.join(SHEET_COLUMNS)} (found: {','.join(header) or 'nothing'}); start again from "
                        f"review.csv and fill in only decision, edited_answer and comment.")
    items = {it["item_id"]: it for it in key["items"]}
    out, problems, seen, reviewers = {}, [], {}, set()
    for line, row in rows:
        item_id = (row.get("item_id") or "").strip()
        decision = (row.get("decision") or "").strip().lower()
        edited = (row.get("edited_answer") or "").strip()
        reviewers.add((row.get("reviewer") or "").strip())
        problem = _row_problem(item_id, decision, edited, items, seen, recheck)
        seen.setdefault(item_id, line)
        if problem:
            problems.append(f"line {line}: {problem}")
            continue
        out[item_id] = {"decision": decision, "answer": edited if decision == "edit" else "",
                        "comment": (row.get("comment") or "").strip()}
    absent = [i for i in items if i not in seen]
    if absent:
        problems.append(absent_problem(absent, key["sheet_id"], "review.csv and decide them"))
    raise_problems(path, problems, "the review", MAX_LISTED_PROBLEMS)
    named = sorted(r for r in reviewers if r)
    return out, (", ".join(named) if named else Path(path).stem)


def _row_problem(item_id: str, decision: str, edited: str, items: dict, seen: dict, recheck) -> str:
    if not item_id:
        return "empty item_id; do not edit or delete the item_id column"
    if item_id not in items:
        return (f"unknown item id {item_id!r}: not in this sheet (a row from another review, or an edited id); "
                f"remove the row or restore the id")
    if item_id in seen:
        return f"item {item_id} appears twice (first on line {seen[item_id]}); keep one row per item"
    if decision not in DECISIONS:
        return (f"item {item_id} has no decision; write accept, edit or reject" if not decision else
                f"item {item_id}: decision {decision!r} is not valid; write accept, edit or reject")
    if decision == "edit":
        if not edited:
            return f"item {item_id} is marked edit but edited_answer is empty; write the corrected answer there"
        problem = recheck(items[item_id], edited)
        if problem:
            return f"item {item_id}: the edited answer {problem}; correct it or reject the item"
    return ""


def sheet_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_HTML = """{% extends "review_form.html" %}{% from "review_form_macros.html" import choices %}
{% block title %}Review of synthetic candidates ({{ sheet_id }}){% endblock %}
{% block css %}pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;font-family:inherit;background:#f6f6f6;padding:.5em}
{% endblock %}
{% block intro %}<h1>Review of synthetic candidates</h1>
<p>Sheet <code>{{ sheet_id }}</code>, {{ rows|length }} candidates drafted by a teacher model and passed by the
automatic filters. For each one decide: <em>accept</em> (correct and realistic), <em>edit</em> (write the corrected
answer) or <em>reject</em>. Only accepted and edited examples are trained on, marked as synthetic. Your decisions
are kept in this browser; press <strong>Download review</strong> when every item is decided and send the CSV back.</p>{% endblock %}
{% block items %}{% for r in rows %}
<div class="item" data-id="{{ r.item_id }}"><h3>Candidate {{ loop.index }} <small>({{ r.item_id }}, target {{ r.target }})</small></h3>
<div><strong>Input</strong><pre>{{ r.input }}</pre></div>
<div><strong>Answer</strong><pre>{{ r.answer }}</pre></div>
{{ choices("d-" ~ r.item_id, [("accept", "accept"), ("edit", "edit"), ("reject", "reject")]) }}
<textarea name="e-{{ r.item_id }}" placeholder="Edited answer (for edit)"></textarea>
<textarea name="m-{{ r.item_id }}" placeholder="Optional comment"></textarea></div>
{% endfor %}{% endblock %}
{% block script %}
  var items = Array.prototype.slice.call(document.querySelectorAll(".item"));
  reviewForm({store: "ftkit-review-{{ sheet_id }}", who: "reviewer", total: items.length, word: "decided",
    read: function(s){
      s.items = {};
      items.forEach(function(el){
        var c = el.querySelector("input[type=radio]:checked"), t = el.querySelectorAll("textarea");
        s.items[el.dataset.id] = {decision: c ? c.value : "", edited: t[0].value, comment: t[1].value};
      });
    },
    restore: function(saved){
      items.forEach(function(el){
        var prev = (saved.items || {})[el.dataset.id] || {}, t = el.querySelectorAll("textarea");
        el.querySelectorAll("input[type=radio]").forEach(function(r){ r.checked = r.value === prev.decision; });
        t[0].value = prev.edited || ""; t[1].value = prev.comment || "";
      });
    },
    done: function(s){ return Object.keys(s.items).filter(function(k){return s.items[k].decision;}).length; },
    header: "{{ columns }}",
    rows: function(s){
      return Object.keys(s.items).map(function(id){
        var it = s.items[id];
        return [id, it.decision, it.edited, it.comment, s.reviewer];
      });
    },
    file: function(s){ return "review_{{ sheet_id }}_" + fileSafe(s.reviewer || "reviewer") + ".csv"; }});
{% endblock %}"""
