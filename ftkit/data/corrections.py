"""The client's corrections (``data.corrections``): filled review sheets applied by the data audit, with provenance.

A review sheet is a CSV with at least ``file, line, decision, new_answer`` (optional ``reviewer``, ``comment``;
the evaluation's ``suspect_labels.csv`` has these and more). ``file`` + ``line`` name a record of the delivered
data as ``issues.csv`` does (JSONL line; CSV row counting the header as 1); ``decision`` is empty (not
reviewed), ``keep``, ``fix`` (``new_answer`` is the corrected answer text) or ``drop``.

The delivered files in ``data/`` are never touched. The audit reads every sheet before writing anything
(:func:`load_corrections`), matches each row to the audited record (:func:`plan`), and the splits it writes carry the
change: a fix replaces the record's final assistant answer (and the label derived from it) and adds
``provenance.correction`` {sheet, sha256, row, reviewer, old answer}; a drop leaves the record out of every split.
Each change is one line of ``corrections.jsonl`` in the run folder. Every bad row (unknown file or line, unknown
decision, fix without an answer, an answer that fails the task's checks, two sheets deciding one record
differently) is reported at once, with the sheet, its row and what to do: a :class:`ftkit.errors.DataError`.

>>> parse_decision("  Fix ")
'fix'
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftkit.errors import ConfigError, DataError

DECISIONS = ("keep", "fix", "drop")  # an empty decision = not reviewed (the row is ignored)
REQUIRED_COLUMNS = ("file", "line", "decision", "new_answer")
OPTIONAL_COLUMNS = ("reviewer", "comment")
CORRECTIONS_FILE = "corrections.jsonl"
MAX_PROBLEMS_SHOWN = 25  # a sheet with hundreds of bad rows: the first ones say enough to fix the export


@dataclass
class Correction:
    """One reviewed row of a sheet (``row`` counts the header as 1, as a spreadsheet shows it)."""

    sheet: str  # the path as listed in data.corrections
    sheet_sha256: str
    row: int
    file: str
    line: int
    decision: str  # keep | fix | drop
    new_answer: str = ""
    reviewer: str = ""
    comment: str = ""

    @property
    def where(self) -> str:
        return f"{self.sheet} row {self.row}"


@dataclass
class Sheet:
    path: str
    sha256: str
    rows: int  # data rows read
    reviewed: int  # rows with a decision


@dataclass
class Plan:
    """What the audit will change: meta index -> fix, the dropped indices, and the change log rows."""

    fixes: dict = field(default_factory=dict)  # meta index -> {"answer", "label", "correction": provenance}
    drops: set = field(default_factory=set)
    changes: list = field(default_factory=list)  # corrections.jsonl rows
    sheets: list = field(default_factory=list)  # Sheet
    kept: int = 0
    already_excluded: int = 0  # drops of records the audit had left out anyway

    def summary(self) -> dict:
        """DataAuditResults.corrections: counts per decision and split, the sheets with their sha256."""
        by_split = Counter((c["split"], c["decision"]) for c in self.changes)
        test = [c for c in self.changes if c["split"] == "test"]
        return {"sheets": [asdict(s) for s in self.sheets], "fixed": sum(1 for c in self.changes if c["decision"] == "fix"),
                "dropped": sum(1 for c in self.changes if c["decision"] == "drop"), "kept": self.kept,
                "already_excluded": self.already_excluded,
                "by_split": {f"{s}/{d}": n for (s, d), n in sorted(by_split.items())},
                "test_changed": len(test), "test_changes": [{k: c[k] for k in ("file", "line", "decision")} for c in test],
                "file": CORRECTIONS_FILE if self.changes else ""}


def parse_decision(value: str) -> str:
    return (value or "").strip().lower()


def _read_csv(path: Path, shown: str) -> tuple[list[str], list[dict]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{shown} is not UTF-8 text (byte {err.start}): save the sheet as CSV UTF-8 and re-run.") from None
    # The separator is the one that makes the header hold the required columns (a ';'-locale spreadsheet writes
    # ';'); csv.Sniffer guesses from the whole sample and is misled by free text full of ';' or tabs.
    first = text.split("\n", 1)[0].lower()
    delimiter = next((d for d in (",", ";", "\t") if {"file", "decision"} <= {c.strip().strip('"') for c in first.split(d)}),
                     ",")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    try:
        return header, list(reader)
    except csv.Error as err:
        raise DataError(f"{shown} line {reader.line_num}: {err}; save the sheet as plain CSV and re-run.") from None


def read_sheet(path: Path, shown: str, sha256: str) -> tuple[list[Correction], list[str], Sheet]:
    """The reviewed rows of one sheet and the problems of its rows (empty decisions are skipped)."""
    from ftkit.safe_values import csv_uncell

    header, rows = _read_csv(path, shown)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{shown} lacks the column(s) {', '.join(missing)} (it has: {', '.join(h for h in header if h) or 'none'}). "
                        f"A review sheet needs {', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)}), "
                        f"as in suspect_labels.csv.")
    out, problems = [], []
    for n, raw in enumerate(rows, start=2):  # row 1 is the header
        cell = {k: csv_uncell((raw.get(k) or "")) for k in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
        decision = parse_decision(cell["decision"])
        if not decision:
            continue
        where = f"{shown} row {n}"
        if decision not in DECISIONS:
            problems.append(f"{where}: decision {cell['decision'].strip()!r} is not one of {', '.join(DECISIONS)} "
                            f"(or empty = not reviewed); correct the cell.")
            continue
        line_text = cell["line"].strip()
        line = int(float(line_text)) if _is_whole(line_text) else None  # spreadsheets write 12 as 12.0
        if line is None or line < 1:
            problems.append(f"{where}: line {line_text!r} is not a line number; copy it from suspect_labels.csv or issues.csv.")
            continue
        if not cell["file"].strip():
            problems.append(f"{where}: the file cell is empty; name the data file as in data.files.")
            continue
        if decision == "fix" and not cell["new_answer"].strip():
            problems.append(f"{where}: decision fix needs the corrected answer in new_answer; write it, or decide "
                            f"keep or drop.")
            continue
        out.append(Correction(shown, sha256, n, Path(cell["file"].strip()).name, line, decision,
                              cell["new_answer"].strip() if decision == "fix" else "", cell["reviewer"].strip(),
                              cell["comment"].strip()))
    return out, problems, Sheet(shown, sha256, len(rows), len(out))


def _is_whole(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except (ValueError, OverflowError):
        return False


def load_corrections(engagement_dir: Path, listed: list[str], record_input=None) -> tuple[list[Correction], list[Sheet]]:
    """Every sheet of ``data.corrections`` read and cross-checked (one decision per record); DataError listing
    every bad row, ConfigError for a listed sheet that does not exist. ``record_input(path) -> sha256`` records
    the sheet as an input of the run (``PhaseRun.record_input``); without it the sheet is hashed here."""
    from ftkit.fsutil import sha256_file

    missing = [f"data.corrections[{i}]: {rel!r} does not exist in {engagement_dir}; put the filled sheet there or "
               f"remove it from the list" for i, rel in enumerate(listed) if not (Path(engagement_dir) / rel).is_file()]
    if missing:
        raise ConfigError(missing)
    corrections, problems, sheets = [], [], []
    for rel in listed:
        path = (Path(engagement_dir) / rel).resolve()
        digest = record_input(path) if record_input else sha256_file(path)
        rows, bad, sheet = read_sheet(path, rel, digest)
        corrections += rows
        problems += bad
        sheets.append(sheet)
    problems += _conflicts(corrections)
    _raise(problems)
    return _unique(corrections), sheets


def _conflicts(corrections: list[Correction]) -> list[str]:
    first: dict[tuple, Correction] = {}
    out = []
    for c in corrections:
        key = (c.file, c.line)
        seen = first.setdefault(key, c)
        if seen is not c and (seen.decision, seen.new_answer) != (c.decision, c.new_answer):
            out.append(f"{c.where}: {c.file} line {c.line} is decided {_said(c)} here but {_said(seen)} in "
                       f"{seen.where}; keep one decision per record (correct or empty one of the two rows).")
    return out


def _said(c: Correction) -> str:
    return f"fix -> {c.new_answer[:60]!r}" if c.decision == "fix" else c.decision


def _unique(corrections: list[Correction]) -> list[Correction]:
    seen, out = set(), []
    for c in corrections:
        if (c.file, c.line) not in seen:
            seen.add((c.file, c.line))
            out.append(c)
    return out


def _raise(problems: list[str]) -> None:
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise DataError(f"The review sheets in data.corrections have {len(problems)} problem(s); nothing was "
                        f"written:\n" + "\n".join(f"  - {p}" for p in shown) + more)


# -- matching the sheets to the audited records ----------------------------------------------------------------

def plan(result, corrections: list[Correction], sheets: list[Sheet], task) -> Plan:
    """Match every correction to its audited record (``result``: the AuditResult) and check each new answer with
    the task's record checks; DataError listing every row that cannot be applied."""
    from ftkit.data.checks import CHECKS
    from ftkit.data.record_checks import derive_label, run_record_checks

    files = {Path(f.path).name: i for i, f in enumerate(result.files)}
    at = {(m["file"], m["line"]): i for i, m in enumerate(result.metas)}
    out, problems, targets = Plan(sheets=list(sheets)), [], {}
    for c in corrections:
        if c.file not in files:
            problems.append(f"{c.where}: file {c.file!r} is not a data file of this engagement "
                            f"({', '.join(files) or 'none'}); correct the file cell.")
            continue
        index = at.get((files[c.file], c.line))
        if index is None:
            problems.append(f"{c.where}: {c.file} has no record at line {c.line} (it has "
                            f"{result.files[files[c.file]].n_records:,}); correct the line cell.")
            continue
        if c.decision == "keep":
            out.kept += 1
        elif index not in result.splits:
            if c.decision == "drop":
                out.already_excluded += 1
            else:
                problems.append(f"{c.where}: {c.file} line {c.line} is not in the splits (the audit left it out: see "
                                f"issues.csv, or it is a duplicate copy); correct the delivered file instead, or "
                                f"empty the decision.")
        else:
            targets[index] = c
    records = _records_at(result, set(targets))
    for index, c in targets.items():
        record = records[index]
        old = _answer(record)
        change = {"sheet": c.sheet, "sheet_sha256": c.sheet_sha256, "row": c.row, "file": c.file, "line": c.line,
                  "id": record.get("id"), "split": result.splits[index], "decision": c.decision, "old_answer": old,
                  "old_label": record.get("label"), "reviewer": c.reviewer, "comment": c.comment}
        if c.decision == "drop":
            out.drops.add(index)
            out.changes.append(change)
            continue
        messages = fixed_messages(record["messages"], c.new_answer)
        errors = [msg for code, msg, *_ in run_record_checks(messages, task) if CHECKS[code].severity == "error"]
        if errors:
            problems.append(f"{c.where}: new_answer {c.new_answer[:80]!r} fails the task's checks ({errors[0]}); "
                            f"correct it.")
            continue
        label = derive_label(messages, task)
        provenance = {k: v for k, v in (("sheet", c.sheet), ("sheet_sha256", c.sheet_sha256), ("row", c.row),
                                        ("reviewer", c.reviewer), ("old_answer", old)) if v not in ("", None)}
        out.fixes[index] = {"answer": c.new_answer, "label": label, "correction": provenance}
        out.changes.append({**change, "new_answer": c.new_answer, "new_label": label})
    _raise(problems)
    out.changes.sort(key=lambda ch: (ch["file"], ch["line"]))
    return out


def _records_at(result, indices: set) -> dict:
    """The normalised records (from the audit's spool) of the given meta indices, in one pass."""
    if not indices:
        return {}
    spool = result.spool
    spool.seek(0)
    valid = (i for i, m in enumerate(result.metas) if m.get("valid"))
    out = {}
    text = io.TextIOWrapper(spool, encoding="utf-8")
    try:
        for line, index in zip(text, valid):
            if index in indices:
                out[index] = json.loads(line)
    finally:
        text.detach()  # a collected wrapper would close the spool the splits are written from
    spool.seek(0)
    return out


def _answer(record: dict) -> str:
    from ftkit.data.record_checks import final_answer

    fa = final_answer(record["messages"])
    return fa[1]["content"] if fa else ""


def fixed_messages(messages: list[dict], new_answer: str) -> list[dict]:
    """``messages`` with the final assistant turn's content replaced by ``new_answer`` (copies, input untouched).

    >>> fixed_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bad"}], "good")[1]
    {'role': 'assistant', 'content': 'good'}
    """
    from ftkit.data.record_checks import final_answer

    out = [dict(m) for m in messages]
    fa = final_answer(out)
    if fa is not None:
        out[fa[0]]["content"] = new_answer
    return out


def patch_line(line: str, fix: dict, redacted: bool = False) -> str:
    """One split line with a fix applied: new final answer, re-derived label, ``provenance.correction``."""
    from ftkit.data.pii import redact

    record = json.loads(line)
    answer = redact(fix["answer"]) if redacted else fix["answer"]
    record["messages"] = fixed_messages(record["messages"], answer)
    if fix["label"] is not None:
        record["label"] = fix["label"]
    else:
        record.pop("label", None)
    record["provenance"] = {**(record.get("provenance") or {}), "correction": fix["correction"]}
    return json.dumps(record, ensure_ascii=False) + "\n"


def apply(result, p: Plan) -> None:
    """Make ``result`` write the corrected splits: drops leave every split, fixes are patched in as the splits are
    written (``AuditResult.fixes``). The labels of fixed records are updated for the split table."""
    for index in p.drops:
        result.splits.pop(index, None)
    for index, fix in p.fixes.items():
        result.metas[index]["label"] = fix["label"]
    result.fixes = dict(p.fixes)


def write_log(run_dir: Path, p: Plan) -> Path | None:
    """corrections.jsonl: one line per change (none written without changes)."""
    from ftkit.fsutil import atomic_write_text

    if not p.changes:
        return None
    return atomic_write_text(Path(run_dir) / CORRECTIONS_FILE,
                             "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in p.changes))
