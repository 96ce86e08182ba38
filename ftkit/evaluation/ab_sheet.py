"""Blind A/B human review: export rating sheets, import filled ones, compute the win rate.

Export: each item shows the input and two outputs, "output 1" and "output 2", whose order (baseline or
fine-tuned first) is drawn per item from a seeded RNG, so raters cannot learn a position; PII in them is masked
as in the data audit (``j***@e***.com``), so the sheet can go to reviewers outside the data team. The sheet goes out
twice with the same items: ``ab_sheet.csv`` (spreadsheet) and ``ab_sheet.html`` (a self-contained form, no
external scripts, that downloads the filled CSV). Which output is which is only in ``ab_key.json``, kept by
the consultant. Items whose two outputs are identical are left out (a rater can only call them a tie).

Item ids are ``<sheet id>-<nnn>``; the sheet id is a hash of the items, outputs and seed, so re-running the
evaluation of the same model gives the same sheet and ratings of an earlier copy still match its key, while
ratings of another model's sheet are recognised as such and not mixed in.

Import: ``read_sheet`` checks a filled CSV against the key and lists every row to fix at once (missing,
unknown or duplicate item ids, invalid or blank choices, wrong columns) in one ``DataError``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ftkit.data.pii import mask
from ftkit.errors import DataError
from ftkit.fsutil import atomic_write_json, atomic_write_text
from ftkit.safe_values import csv_text, csv_uncell

SHEET_COLUMNS = ("item_id", "input", "output_1", "output_2", "choice", "comment")
REQUIRED_COLUMNS = ("item_id", "choice")
# What a rater may write in the choice column (case-insensitive) -> 1, 2 or 0 (tie).
CHOICES = {"1": 1, "2": 2, "tie": 0, "same": 0, "=": 0}
SYSTEMS = ("baseline", "fine_tuned")
MAX_LISTED_PROBLEMS = 40  # a sheet with hundreds of bad rows: show the first 40 and a count


@dataclass(frozen=True)
class PairItem:
    """One test example with both systems' outputs (inputs as the rater should read them)."""

    example_id: str
    input: str
    baseline: str
    fine_tuned: str


def build_sheet(items: list[PairItem], n_items: int, seed: int = 0, context: dict | None = None) -> tuple[list[dict], dict]:
    """(sheet rows, key). Picks up to ``n_items`` items whose outputs differ (seeded sample, kept in test order)
    and a seeded order per item. ``context`` (e.g. training run id) is stored in the key.

    >>> items = [PairItem(str(i), f"q{i}", "old", "new" if i else "old") for i in range(4)]
    >>> rows, key = build_sheet(items, 2, seed=1)
    >>> len(rows), key["n_identical_excluded"], sorted(r["first"] for r in key["items"]) != []
    (2, 1, True)
    """
    rng = random.Random(seed)
    differing = [it for it in items if it.baseline.strip() != it.fine_tuned.strip()]
    chosen = differing if len(differing) <= n_items else sorted(rng.sample(differing, n_items), key=differing.index)
    firsts = [rng.choice(SYSTEMS) for _ in chosen]
    digest = hashlib.sha256(json.dumps([[it.example_id, it.baseline, it.fine_tuned, f] for it, f in zip(chosen, firsts)]
                                       + [seed], ensure_ascii=False).encode("utf-8")).hexdigest()
    sheet_id = digest[:8]
    rows, key_items = [], []
    for k, (item, first) in enumerate(zip(chosen, firsts), start=1):
        second = SYSTEMS[1 - SYSTEMS.index(first)]
        item_id = f"{sheet_id}-{k:03d}"
        # Raters (often outside the client's data team) see PII masked; the sheet id above is computed from the
        # raw outputs, so masking never changes which key a filled sheet belongs to.
        rows.append({"item_id": item_id, "input": mask(item.input), "output_1": mask(getattr(item, first)),
                     "output_2": mask(getattr(item, second)), "choice": "", "comment": ""})
        key_items.append({"item_id": item_id, "example_id": item.example_id, "first": first})
    key = {"sheet_id": sheet_id, "seed": seed, "n_items": len(rows), "n_candidates": len(items),
           "n_identical_excluded": len(items) - len(differing), "choices": sorted(CHOICES),
           "context": dict(context or {}), "items": key_items}
    return rows, key


def write_sheet(folder: str | Path, rows: list[dict], key: dict, title: str = "Blind A/B review") -> dict[str, Path]:
    """Write ``ab_sheet.csv``, ``ab_sheet.html`` and ``ab_key.json`` into ``folder``; returns their paths."""
    folder = Path(folder)
    # Inputs and outputs are client text and model output: csv_text neutralises formula-leading cells (CSV
    # injection) and read_sheet removes the added ' again. A UTF-8 BOM so Excel opens accented text correctly;
    # read_sheet strips it again.
    paths = {"csv": atomic_write_text(folder / "ab_sheet.csv", "\ufeff" + csv_text(SHEET_COLUMNS, rows)),
             "html": atomic_write_text(folder / "ab_sheet.html", render_html(rows, key["sheet_id"], title)),
             "key": atomic_write_json(folder / "ab_key.json", key)}
    return paths


def render_html(rows: list[dict], sheet_id: str, title: str) -> str:
    """The rating form: inputs and outputs escaped, answers kept in the browser and downloaded as CSV."""
    from ftkit.review_form import render

    return render(_HTML, rows=rows, sheet_id=sheet_id, title=title, name_field="rater",
                  download_label="Download ratings", columns=",".join(("item_id", "choice", "comment", "rater")))


# -- import ----------------------------------------------------------------------------------------------

def sheet_id_of(path: str | Path) -> str | None:
    """The sheet id a filled CSV belongs to (from its first item id), or None when it has no item ids."""
    header, rows = _read_rows(Path(path))
    if "item_id" not in header:
        return None
    ids = [r.get("item_id", "").strip() for _, r in rows if r.get("item_id", "").strip()]
    return ids[0].rsplit("-", 1)[0] if ids else None


def read_sheet(path: str | Path, key: dict, allow_partial: bool = False) -> tuple[str, dict[str, int]]:
    """(rater, {item id: 1 | 2 | 0 (tie)}) from a filled sheet; every problem listed in one DataError.

    The rater is the ``rater`` column when the sheet has one (the HTML form writes it), else the file name.
    ``allow_partial`` accepts blank choices and missing rows (ratings in progress); otherwise they are errors.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing_cols:
        raise DataError(f"{path}: missing column(s) {', '.join(missing_cols)}. The first line must be the header "
                        f"{','.join(SHEET_COLUMNS)} (found: {','.join(header) or 'nothing'}); "
                        f"start again from ab_sheet.csv and only fill in the choice and comment columns.")
    known = {it["item_id"] for it in key["items"]}
    choices, problems, seen, raters = {}, [], {}, set()
    for line, row in rows:
        item_id = (row.get("item_id") or "").strip()
        raw = (row.get("choice") or "").strip().lower()
        raters.add((row.get("rater") or "").strip())
        problem = _row_problem(item_id, raw, known, seen, allow_partial)
        if problem:
            problems.append(f"line {line}: {problem}")
        elif raw:
            choices[item_id] = CHOICES[raw]
        seen.setdefault(item_id, line)
    absent = [i for i in sorted(known) if i not in seen]
    if absent and not allow_partial:
        problems.append(absent_problem(absent, key["sheet_id"], "ab_sheet.csv and rate them"))
    raise_problems(path, problems, "the ratings")
    named = sorted(r for r in raters if r)
    return (named[0] if len(named) == 1 else path.stem), choices


def absent_problem(absent: list[str], sheet_id: str, fix: str) -> str:
    """The problem line for items of the sheet that have no row (the first 20 named); ``fix`` ends "copy those
    rows back from ...". Shared with the synthetic-candidate review (``augmentation.review``)."""
    return (f"{len(absent)} item(s) of sheet {sheet_id} have no row: {', '.join(absent[:20])}"
            + (" ..." if len(absent) > 20 else "") + f"; copy those rows back from {fix}")


def raise_problems(path: str | Path, problems: list[str], what: str, limit: int = MAX_LISTED_PROBLEMS) -> None:
    """Raise one DataError listing every row to fix (the first ``limit`` and a count) before ``what`` can be used;
    nothing when ``problems`` is empty."""
    if problems:
        listed = problems[:limit] + ([f"... and {len(problems) - limit} more"] if len(problems) > limit else [])
        raise DataError(f"{path}: {len(problems)} row(s) to fix before {what} can be used:\n"
                        + "\n".join(f"  - {p}" for p in listed))


def _row_problem(item_id: str, raw: str, known: set, seen: dict, allow_partial: bool) -> str:
    if not item_id:
        return "empty item_id; do not edit or delete the item_id column"
    if item_id not in known:
        return (f"unknown item id {item_id!r}: it is not in this sheet's key (a row from another sheet, or an "
                f"edited id); remove the row or restore the id")
    if item_id in seen:
        return f"item {item_id} appears twice (first on line {seen[item_id]}); keep one row per item"
    if not raw:
        return "" if allow_partial else f"item {item_id} has no choice; write 1, 2 or tie"
    if raw not in CHOICES:
        return f"item {item_id}: choice {raw!r} is not valid; write 1 (output 1 is better), 2, or tie"
    return ""


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line number, row) pairs; tolerates Excel's BOM and ';' or tab separators."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # not read_text: it turns a CR inside a quoted cell into LF
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); save it as 'CSV UTF-8' and retry") from None
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        for row in reader:
            if not any((v or "").strip() for k, v in row.items() if k is not None and isinstance(v, str)):
                continue  # blank spreadsheet line
            # Undo the ' that neutralises formula-leading cells (ours, or the HTML form's download).
            rows.append((reader.line_num, {k: csv_uncell(v) if isinstance(v, str) else v for k, v in row.items()}))
    except csv.Error as err:
        raise DataError(f"{path}, line {reader.line_num}: not readable as CSV ({err}); save the sheet again as "
                        f"'CSV UTF-8' from the spreadsheet program") from None
    return header, rows


# -- results ---------------------------------------------------------------------------------------------

def unblind(choices: dict[str, int], key: dict) -> dict[str, str]:
    """{item id: 'fine_tuned' | 'baseline' | 'tie'}: the system the rater preferred, using the key.

    >>> key = {"items": [{"item_id": "s-001", "first": "baseline"}, {"item_id": "s-002", "first": "fine_tuned"}]}
    >>> unblind({"s-001": 2, "s-002": 0}, key)
    {'s-001': 'fine_tuned', 's-002': 'tie'}
    """
    first = {it["item_id"]: it["first"] for it in key["items"]}
    out = {}
    for item_id, choice in choices.items():
        if choice == 0:
            out[item_id] = "tie"
        else:
            out[item_id] = first[item_id] if choice == 1 else SYSTEMS[1 - SYSTEMS.index(first[item_id])]
    return out


_SCORE = {"fine_tuned": 1.0, "tie": 0.5, "baseline": 0.0}  # the fine-tuned model's score on one rating


def analyse(ratings: dict[str, dict[str, int]], key: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Win rate of the fine-tuned model over the baseline from one or more raters' choices.

    ``ratings``: rater -> {item id: 1 | 2 | 0}. Per rater: wins, losses, ties and win rate (ties count half,
    0.5 = parity). Pooled: each item's mean score over its raters, averaged over items, with a bootstrap CI
    over *items* (raters of one item are not independent evidence). Agreement: Cohen's kappa (two raters)
    or mean pairwise kappa, on the unblinded preferences.
    """
    from ftkit.evaluation.agreement import agreement
    from ftkit.evaluation.paired import binom_two_sided
    from ftkit.metrics.bootstrap import bootstrap_ci, mean_statistic

    prefs = {rater: unblind(choices, key) for rater, choices in ratings.items()}
    per_rater = [{"rater": rater, **_counts(list(p.values()))} for rater, p in sorted(prefs.items())]
    by_item: dict[str, list[float]] = {}
    for p in prefs.values():
        for item_id, pref in p.items():
            by_item.setdefault(item_id, []).append(_SCORE[pref])
    item_scores = [sum(v) / len(v) for _, v in sorted(by_item.items())]
    stat = mean_statistic("win_rate", item_scores)
    lo, hi = bootstrap_ci(stat, n_boot=n_boot, seed=seed)
    wins = sum(s > 0.5 for s in item_scores)
    losses = sum(s < 0.5 for s in item_scores)
    return {"sheet_id": key["sheet_id"], "n_raters": len(ratings), "n_items": len(item_scores),
            "n_ratings": sum(len(p) for p in prefs.values()), "win_rate": stat.value(), "ci": [lo, hi],
            "items_won": wins, "items_lost": losses, "items_tied": len(item_scores) - wins - losses,
            "p_sign": binom_two_sided(min(wins, losses), wins + losses),
            "per_rater": per_rater, "agreement": agreement(prefs),
            "n_identical_excluded": key.get("n_identical_excluded", 0)}


def _counts(prefs: list[str]) -> dict:
    wins, losses = prefs.count("fine_tuned"), prefs.count("baseline")
    n = len(prefs)
    return {"n": n, "wins": wins, "losses": losses, "ties": n - wins - losses,
            "win_rate": (wins + 0.5 * (n - wins - losses)) / n if n else float("nan")}


def collect(folder: str | Path, key: dict,
            allow_partial: bool = False) -> tuple[dict[str, dict[str, int]], list[Path], list[str]]:
    """Read every ``*.csv`` in ``folder`` that belongs to ``key``'s sheet: (rater -> choices, files used,
    names of other sheets' files).

    Files of another sheet (an earlier model's) are returned by name, not read as ratings. With
    ``allow_partial`` an unfilled copy of the sheet is skipped. Two files with the same rater are an error.
    """
    folder = Path(folder)
    ratings, others, source = {}, [], {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        if sheet_id_of(path) != key["sheet_id"]:
            others.append(path.name)
            continue
        rater, choices = read_sheet(path, key, allow_partial)
        if not choices and allow_partial:
            continue  # an unfilled copy
        if rater in ratings:
            raise DataError(f"{path} and {source[rater].name} are both ratings by '{rater}'; keep one file per rater "
                            f"(or give each rater's file a different name).")
        ratings[rater], source[rater] = choices, path
    return ratings, sorted(source.values()), others


_HTML = """{% extends "review_form.html" %}{% from "review_form_macros.html" import choices %}
{% block title %}{{ title }} ({{ sheet_id }}){% endblock %}
{% block css %}.outs{display:flex;gap:1em}.out{flex:1;background:#f6f6f6;padding:.6em;border-radius:4px}
pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;font-family:inherit}
{% endblock %}
{% block intro %}<h1>{{ title }}</h1>
<p>Sheet <code>{{ sheet_id }}</code>, {{ rows|length }} items. For each item, read the input and the two answers
and choose the better one, or <em>tie</em> when neither is better. The answers are in a random order per item;
judge them on the task, not on length or style. Your choices are kept in this browser; press
<strong>Download ratings</strong> when done and send the CSV file back.</p>{% endblock %}
{% block items %}{% for r in rows %}
<div class="item" data-id="{{ r.item_id }}"><h3>Item {{ loop.index }} <small>({{ r.item_id }})</small></h3>
<div><strong>Input</strong><pre>{{ r.input }}</pre></div>
<div class="outs"><div class="out"><strong>Output 1</strong><pre>{{ r.output_1 }}</pre></div>
<div class="out"><strong>Output 2</strong><pre>{{ r.output_2 }}</pre></div></div>
{{ choices("c-" ~ r.item_id, [("1", "Output 1 is better"), ("2", "Output 2 is better"), ("tie", "Tie")]) }}
<textarea name="m-{{ r.item_id }}" placeholder="Optional comment"></textarea></div>
{% endfor %}{% endblock %}
{% block script %}
  var items = Array.prototype.slice.call(document.querySelectorAll(".item"));
  reviewForm({store: "ftkit-ab-{{ sheet_id }}", who: "rater", total: items.length, word: "rated",
    read: function(s){
      s.items = {};
      items.forEach(function(el){
        var c = el.querySelector("input[type=radio]:checked");
        s.items[el.dataset.id] = {choice: c ? c.value : "", comment: el.querySelector("textarea").value};
      });
    },
    restore: function(saved){
      items.forEach(function(el){
        var prev = (saved.items || {})[el.dataset.id] || {};
        el.querySelectorAll("input[type=radio]").forEach(function(r){ r.checked = r.value === prev.choice; });
        el.querySelector("textarea").value = prev.comment || "";
      });
    },
    done: function(s){ return Object.keys(s.items).filter(function(k){return s.items[k].choice;}).length; },
    header: "{{ columns }}",
    rows: function(s){
      return Object.keys(s.items).map(function(id){ return [id, s.items[id].choice, s.items[id].comment, s.rater]; });
    },
    file: function(s){ return "ab_ratings_{{ sheet_id }}_" + fileSafe(s.rater || "rater") + ".csv"; }});
{% endblock %}"""
