"""The data audit: read every file, check every record, find duplicates/PII/leakage, profile and split.

``audit_files(files, options)`` streams each file in chunks of ``chunk_size`` records. A chunk is processed
by :func:`process_chunk` (parse, normalise to chat messages, record checks, PII, duplicate keys, MinHash
signatures, chat-template rendering and token/label counts); with ``workers=2`` on large files, chunks go to
two forked processes (each tokenizing single-threaded), so both cores work. The parent keeps only compact
per-record metadata and spools the normalised records to a temporary file, so memory stays bounded by a
few chunks whatever the file size. Dataset-level work (exact/near duplicates, conflicts, leakage, splits,
profiles) runs once at the end on the metadata.

The result (:class:`AuditResult`) carries the issues, duplicate groups, PII hits, stats and split
assignment; ``result.write_outputs(folder)`` writes train/validation/test.jsonl, issues.csv and stats.json.
"""
from __future__ import annotations

import gc
import itertools
import json
import os
import tempfile
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ftkit.data import duplicates as dup
from ftkit.data.checks import CHECKS, Issue, make_issue
from ftkit.data.formats import FORMATS, NormaliseContext, detect_format, guess_csv_columns, normalise
from ftkit.data.pii import find_pii_many, masked_excerpt, redact, safe_text
from ftkit.data.reader import (TABULAR_CONTAINERS, FileProblem, RawItem, decode_json_line, explain_single_object,
                               iter_items, not_a_list_problem, sniff)
from ftkit.data.record_checks import TaskContext, derive_label, final_answer, run_record_checks
from ftkit.data.dataset_checks import dataset_checks
from ftkit.data.result import AuditResult, FileSummary
from ftkit.data.splits import order_key
from ftkit.data.stats import ProfileColumns, dominant_script
from ftkit.errors import UsageError

CHARS_PER_TOKEN = 4.0  # English text with BPE vocabularies of 32k-150k: ~4 characters per token (estimate only)
TEMPLATE_TOKENS_PER_MESSAGE = 4  # role header and end-of-turn marker, ChatML-like templates (estimate only)
PARALLEL_MIN_BYTES = 4 * 1024 * 1024  # below this, forking workers costs more than it saves
DETECT_SAMPLE = 50


@dataclass
class AuditOptions:
    fmt: str = "auto"
    columns: dict = field(default_factory=dict)
    sheet: str = ""  # the Excel sheet to read from .xlsx files (data.sheet)
    system_prompt: str = ""
    task: TaskContext = field(default_factory=TaskContext)
    tokenizer: Any = None  # a fast tokenizer with a chat template; None skips the token checks
    max_seq_length: int = 1024
    near_duplicate_threshold: float = 0.85
    scan_pii: bool = True
    redact_pii: bool = False
    split: dict = field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1, "seed": 42})
    workers: int | None = None  # None: 2 on large files when 2+ cores, else 1
    chunk_size: int = 1000

    def __post_init__(self):
        if self.fmt not in ("auto", *FORMATS):
            raise UsageError(f"Unknown data format '{self.fmt}'. Valid formats: auto, {', '.join(FORMATS)}.")


@dataclass
class ChunkResult:
    metas: list[dict]
    issues: list[Issue]
    signatures: np.ndarray  # (n valid records in the chunk, NUM_PERM) uint32
    lines: bytes  # normalised JSON records, one line per valid record (UTF-8, one blob: cheap to pass back)
    redacted: bytes
    profile: ProfileColumns  # the valid records' profile inputs


# -- per chunk (runs in a worker process or inline) --------------------------------------------------------

def _issue(code: str, line: int, message: str, excerpt: str = "") -> Issue:
    return make_issue(code, line, message, excerpt)


def _decode(item: RawItem) -> tuple[Any, Issue | None]:
    if item.problem:
        return None, _issue(item.problem[0], item.line, item.problem[1])
    if isinstance(item.data, bytes):
        obj, problem = decode_json_line(item.data, item.line)
        if problem:
            text = item.data.decode("utf-8", "replace")
            col = _column(problem[1])
            return None, _issue(problem[0], item.line, problem[1], masked_excerpt(text, col))
        return obj, None
    return item.data, None


def _column(message: str) -> int:
    marker = "column "
    if marker in message:
        digits = "".join(itertools.takewhile(str.isdigit, message.split(marker, 1)[1]))
        return max(0, int(digits or 1) - 1)
    return 0


def _pii_issues(line: int, messages: list[dict], hits_of: dict[str, list]) -> tuple[list[Issue], list[str]]:
    """One issue per PII kind in the record; ``hits_of``: text -> its hits (find_pii_many over the chunk)."""
    issues, kinds = [], []
    seen: dict[str, list] = {}
    for m in messages:
        for hit in hits_of[m["content"]]:
            seen.setdefault(hit.kind, []).append((m["content"], hit))
    for kind, hits in seen.items():
        text, first = hits[0]
        more = f" (+{len(hits) - 1} more)" if len(hits) > 1 else ""
        issues.append(_issue(f"pii.{kind}", line, f"{CHECKS['pii.' + kind].title}: {first.masked}{more}",
                             masked_excerpt(text, first.start)))
        kinds.append(kind)
    return issues, kinds


@lru_cache(maxsize=256)
def _system_excerpt(system: str) -> str:
    return masked_excerpt(system, 0, 100)  # the same few system prompts recur in every record


def _meta(line: int, ex_messages: list[dict], label: str | None, ident: str | None, seed: int) -> dict:
    whole, prompt, answer = dup.conversation_keys(ex_messages)
    chars: dict[str, int] = {}
    for m in ex_messages:
        chars[m["role"]] = chars.get(m["role"], 0) + len(m["content"])
    system = next((m["content"] for m in ex_messages if m["role"] == "system"), None)
    fa = final_answer(ex_messages)
    return {"line": line, "id": ident, "label": label, "key": whole, "order": order_key(seed, whole),
            "prompt_key": prompt, "answer_key": answer,
            "n_messages": len(ex_messages), "n_turns": sum(1 for m in ex_messages if m["role"] == "assistant"),
            "chars": chars, "answer_chars": len(fa[1]["content"]) if fa else 0,
            "system_excerpt": _system_excerpt(system) if system is not None else None,
            "script": dominant_script(" ".join(m["content"][:500] for m in ex_messages)),
            "pii": [], "n_tokens": None}


def process_chunk(items: list[RawItem], fmt_name: str, opts: AuditOptions, ctx: NormaliseContext) -> ChunkResult:
    """Everything per record for one chunk; see the module docstring."""
    fmt = FORMATS[fmt_name]
    metas, issues, examples, lines, redacted = [], [], [], [], []
    seed = int(opts.split.get("seed", 42))
    rows = []  # (item, read problem or None, normalised example or None)
    for item in items:
        obj, problem = _decode(item)
        rows.append((item, problem, None if problem else normalise(fmt, obj, ctx)))
    hits_of: dict[str, list] = {}
    if opts.scan_pii:  # one batch scan over the chunk's distinct texts (the system prompt once, not per record)
        texts = list(dict.fromkeys(m["content"] for _, _, ex in rows if ex is not None and not ex.fatal
                                   for m in ex.messages))
        texts += list(dict.fromkeys(v for _, _, ex in rows if ex is not None and not ex.fatal
                                    for v in ex.fields.values() if isinstance(v, str)))
        hits_of = dict(zip(texts, find_pii_many(texts)))
    for item, problem, ex in rows:
        if problem:
            issues.append(problem)
            metas.append({"line": item.line, "valid": False})
            continue
        # messages quote client values (a label, a key name, a schema violation): masked like excerpts
        record_issues = [_issue(code, item.line, safe_text(msg)) for code, msg in ex.problems]
        if not ex.fatal:
            for code, msg, idx, offset in run_record_checks(ex.messages, opts.task):
                excerpt = masked_excerpt(ex.messages[idx]["content"], offset) if idx >= 0 else ""
                record_issues.append(_issue(code, item.line, safe_text(msg), excerpt))
        label = derive_label(ex.messages, opts.task, ex.label) if not ex.fatal else None
        meta = _meta(item.line, ex.messages, label, ex.id, seed) if not ex.fatal else {"line": item.line}
        if ex.source is not None:
            meta["source"] = ex.source  # synthetic, uat...: counted per split and label, trained on only
        if opts.scan_pii and not ex.fatal:
            pii_issues, meta["pii"] = _pii_issues(item.line, ex.messages, hits_of)
            record_issues += pii_issues
        meta["valid"] = not ex.fatal and not any(i.severity == "error" for i in record_issues)
        issues += record_issues
        metas.append(meta)
        if not ex.fatal:
            examples.append((meta, ex))
    usable = [(m, ex) for m, ex in examples if m["valid"]]
    if opts.tokenizer is not None and usable:
        issues += _token_checks(usable, opts)
        usable = [(m, ex) for m, ex in usable if m["valid"]]  # label-coverage failures invalidate records
    elif opts.max_seq_length:
        issues += _estimated_length_checks(usable, opts)
    for m, ex in usable:
        record = {"id": ex.id or f"{ctx.source}:{m['line']}", "messages": ex.messages}
        if m["label"] is not None:
            record["label"] = m["label"]
        _add_carried(record, ex, ctx.file, m["line"], hits_of)
        lines.append(_to_json(record))
        if opts.redact_pii:
            redacted.append(_to_json(_redacted(record)) if m["pii"] else lines[-1])
    sigs = dup.minhash_signatures([dup.near_dup_text(ex.messages) for _, ex in usable])
    columns = ProfileColumns()
    for m, _ in usable:
        columns.add(m)
    return ChunkResult(metas, issues, sigs, _blob(lines), _blob(redacted), columns)


# One encoder for every record: json.dumps(..., ensure_ascii=False) builds a new one per call. The records are
# fresh trees of plain values, so the circular-reference check has nothing to find.
_to_json = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def _blob(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _add_carried(record: dict, ex, file: str, line: int, hits_of: dict) -> None:
    """What a split record carries beside its content (the contract in docs/internals.md, "Split records"):
    ``origin`` {file, line} in the delivered data, ``fields`` (extra scalar values for slices; a text value
    with PII in it is not carried), ``source`` and ``provenance`` when the record has them."""
    record["origin"] = {"file": file, "line": line}
    fields = {k: v for k, v in ex.fields.items() if not (isinstance(v, str) and hits_of.get(v))}
    if fields:
        record["fields"] = fields
    if ex.source is not None:
        record["source"] = ex.source
    if ex.provenance is not None:
        record["provenance"] = ex.provenance


def _redacted(record: dict) -> dict:
    return {**record, "messages": [{**m, "content": redact(m["content"])} for m in record["messages"]]}


def _token_checks(examples: list[tuple[dict, Any]], opts: AuditOptions) -> list[Issue]:
    """Render through the chat template, count tokens per role and label tokens; flag label-coverage failures."""
    from ftkit.chat_format import label_stats, render_with_spans

    from ftkit.chat_plan import with_system

    tok = opts.tokenizer
    # Rendered as training renders them: with the engagement's system prompt where a record has none.
    rendered = render_with_spans(tok, [with_system(ex.messages, opts.system_prompt) for _, ex in examples])
    stats = label_stats(tok, rendered)
    issues = []
    for (meta, ex), r, st in zip(examples, rendered, stats):
        line = meta["line"]
        if r.error:
            code = "template.render_failed" if "cannot render" in r.error else "labels.empty"
            issues.append(_issue(code, line, r.error[:300]))
            meta["valid"] = False
            continue
        meta.update(n_tokens=st["n_tokens"], n_label_tokens=st["n_label_tokens"], tokens_per_role=st["tokens_per_role"],
                    answer_tokens=st["tokens_per_role"].get("assistant", 0))
        if st["n_label_tokens"] == 0:
            issues.append(_issue("labels.empty", line, "no token of this example would be trained on (every label "
                                 "is -100): check the assistant turns' weight and content"))
            meta["valid"] = False
        elif not st["has_end_of_turn_label"]:
            issues.append(_issue("labels.no_end_of_turn", line, "an assistant turn's end-of-turn token is not a "
                                 "trainable label, so the model would not learn to stop after it"))
            meta["valid"] = False
        if st["n_tokens"] > opts.max_seq_length:
            cut = st["last_label_token"] >= opts.max_seq_length
            issues.append(_issue("tokens.too_long", line, f"{st['n_tokens']} tokens > max_seq_length "
                                 f"{opts.max_seq_length}" + ("; truncation would cut the answer's end-of-turn token" if cut else "")))
    return issues


def estimate_tokens(messages: list[dict]) -> int:
    """Tokens of a rendered conversation, estimated from characters when there is no tokenizer.

    >>> estimate_tokens([{"role": "user", "content": "x" * 400}, {"role": "assistant", "content": "ok"}])
    109
    """
    chars = sum(len(m["content"]) for m in messages)
    return int(chars / CHARS_PER_TOKEN + 0.999) + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)


def _estimated_length_checks(examples: list[tuple[dict, Any]], opts: AuditOptions) -> list[Issue]:
    issues = []
    limit = opts.max_seq_length
    for meta, ex in examples:
        n = int(sum(meta["chars"].values()) / CHARS_PER_TOKEN + 0.999) + TEMPLATE_TOKENS_PER_MESSAGE * meta["n_messages"]
        if n > limit:  # the same number as estimate_tokens(ex.messages), from the counts already made
            issues.append(_issue("tokens.estimated_too_long", meta["line"], f"about {n:,} tokens > max_seq_length "
                                 f"{limit:,} (an estimate at {CHARS_PER_TOKEN:g} characters per token: no tokenizer was "
                                 f"given; {sum(meta['chars'].values()):,} characters)"))
    return issues


# -- per file ---------------------------------------------------------------------------------------------

def _chunks(items: Iterable[RawItem], size: int) -> Iterable[list[RawItem]]:
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def _peek_format(path: Path, items: list[RawItem], opts: AuditOptions, container: str,
                 dialect: str = "") -> tuple[str, NormaliseContext]:
    ctx = NormaliseContext(columns=dict(opts.columns), system_prompt=opts.system_prompt, source=path.stem,
                           file=path.name)
    if container in TABULAR_CONTAINERS:
        header = list(next((i.data for i in items if isinstance(i.data, dict)), {}) or [])
        ctx.columns = guess_csv_columns(header, {k: v for k, v in opts.columns.items() if v})
        if not ctx.columns["prompt"] or not ctx.columns["completion"] or \
                any(c and c not in header for c in ctx.columns.values()):
            raise FileProblem("file.csv_columns", f"{path}: cannot tell which columns hold the prompt and the answer "
                              f"(header: {', '.join(header) or 'none'}"
                              f"{'; read as ' + dialect if dialect else ''}). Set "
                              f"data.columns.prompt and data.columns.completion in engagement.yaml to two of these names.")
        return "csv", ctx
    if opts.fmt != "auto":
        return opts.fmt, ctx
    samples = [_decode(i)[0] for i in items]
    name = detect_format([s for s in samples if s is not None])
    if name:
        return name, ctx
    objects = [s for s in samples if isinstance(s, dict)]
    if container == "jsonl" and len(samples) >= 3 and sum(s is None for s in samples) >= 0.9 * len(samples):
        whole = explain_single_object(path)
        raise whole or FileProblem("file.mostly_invalid", f"{path}: {sum(s is None for s in samples)} of the first "
                                   f"{len(samples)} lines are not JSON. Is it pretty-printed JSON? Write one object per "
                                   f"line (JSONL), or a JSON array.")
    if len(objects) == 1 and len(samples) == 1:  # the whole file is one object that is no record
        raise not_a_list_problem(path, objects[0])
    if not objects and container == "jsonl":
        whole = explain_single_object(path)
        if whole:
            raise whole
    keys = sorted({k for o in objects for k in o})[:10]
    found = f"records with keys {', '.join(keys)}" if keys else "no JSON objects in the first records"
    raise FileProblem("file.unknown_format", f"{path}: format not recognised ({found}). Expected one of: " +
                      "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values() if f.name != "csv") +
                      ". Rename the keys, or pass --format / set data.format.")


_WORKER: dict = {}


def _worker_run(items, fmt_name, ctx):
    return process_chunk(items, fmt_name, _WORKER["opts"], ctx)


class _Executor:
    """Inline or a fork pool with at most ``2 * workers`` chunks in flight (streaming, bounded memory)."""

    def __init__(self, opts: AuditOptions, workers: int):
        self.opts, self.workers, self.pool = opts, workers, None
        if workers > 1:
            import multiprocessing as mp

            _WORKER["opts"] = opts
            saved = os.environ.get("TOKENIZERS_PARALLELISM")
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # each worker tokenizes on one core; no rayon after fork
            try:
                self.pool = mp.get_context("fork").Pool(workers)
            finally:
                if saved is None:
                    os.environ.pop("TOKENIZERS_PARALLELISM", None)
                else:
                    os.environ["TOKENIZERS_PARALLELISM"] = saved

    def map(self, chunks: Iterable[list[RawItem]], fmt_name: str, ctx: NormaliseContext) -> Iterable[ChunkResult]:
        if self.pool is None:
            for chunk in chunks:
                yield process_chunk(chunk, fmt_name, self.opts, ctx)
            return
        pending: deque = deque()
        for chunk in chunks:
            pending.append(self.pool.apply_async(_worker_run, (chunk, fmt_name, ctx)))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            _WORKER.clear()


# -- orchestration -------------------------------------------------------------------------------------------

def _workers(opts: AuditOptions, size: int) -> int:
    if opts.workers is not None:
        return max(1, opts.workers)
    return 2 if size >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) >= 2 else 1


def _audit_file(path: Path, role: str, index: int, opts: AuditOptions, state: dict) -> FileSummary:
    summary = FileSummary(str(path), role)
    try:
        info = sniff(path, opts.fmt, opts.sheet)
        summary.container, summary.dialect = info.container, info.dialect
        items = iter_items(path, info)
        head, damage = [], None
        try:  # a file damaged early (truncated array) still has its first records audited
            head += itertools.islice(items, DETECT_SAMPLE)
        except FileProblem as problem:
            damage = problem
            if not head:  # nothing read at all: the file's own problem is the message (not "format not recognised")
                raise
        fmt_name, ctx = _peek_format(path, head, opts, info.container, info.dialect)
        summary.format = fmt_name
        executor = _Executor(opts, _workers(opts, path.stat().st_size))
        try:
            stream = head if damage else itertools.chain(head, items)
            for res in executor.map(_chunks(stream, opts.chunk_size), fmt_name, ctx):
                _merge(res, index, state, summary)
        finally:
            executor.close()
        if damage:
            raise damage
    except FileProblem as problem:  # records read before the damage are kept; none read = unreadable
        summary.readable = summary.n_records > 0
        state["issues"].append(Issue(str(path), 0, CHECKS[problem.code].severity, problem.code, str(problem)))
        return summary
    _file_level_checks(path, summary, state)
    return summary


def _merge(res: ChunkResult, file_index: int, state: dict, summary: FileSummary) -> None:
    for m in res.metas:
        m["file"] = file_index
    state["metas"] += res.metas
    state["issues"] += [Issue(summary.path, i.line, i.severity, i.code, i.message, i.excerpt) for i in res.issues]
    state["sigs"].append(res.signatures)
    state["profile"].merge(res.profile)
    state["spool"].write(res.lines)
    if state.get("redacted") is not None:
        state["redacted"].write(res.redacted)
    summary.n_records += len(res.metas)
    summary.n_valid += sum(1 for m in res.metas if m.get("valid"))


def _file_level_checks(path: Path, summary: FileSummary, state: dict) -> None:
    file_issues = [i for i in state["issues"] if i.file == summary.path]
    invalid_json = sum(1 for i in file_issues if i.code == "json.invalid")
    if summary.container == "jsonl" and summary.n_records >= 3 and invalid_json >= 0.9 * summary.n_records:
        whole = explain_single_object(path)
        problem = whole or FileProblem("file.mostly_invalid", f"{path}: {invalid_json} of {summary.n_records} lines "
                                       f"are not JSON. Is it pretty-printed JSON? Write one object per line (JSONL).")
        state["issues"].append(Issue(str(path), 0, CHECKS[problem.code].severity, problem.code, str(problem)))
    if summary.n_records == 0:
        state["issues"].append(Issue(str(path), 0, "error", "file.no_records", f"{path}: no records were found."))
        summary.readable = False


def audit_files(files: list[str | Path], options: AuditOptions | None = None,
                test_files: list[str | Path] = ()) -> AuditResult:
    """Audit the client's training ``files`` (and optional ``test_files``); see the module docstring.

    Never raises for bad data: unreadable files and bad records become issues (``file.*`` at line 0).
    """
    opts = options or AuditOptions()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # ~100k small dicts accumulate: full collections would re-scan them over and over
    try:
        return _audit_all(files, test_files, opts)
    finally:
        if gc_was_enabled:
            gc.enable()


def _audit_all(files, test_files, opts: AuditOptions) -> AuditResult:
    state = {"metas": [], "issues": [], "sigs": [], "profile": ProfileColumns(), "spool": tempfile.TemporaryFile(),
             "redacted": tempfile.TemporaryFile() if opts.redact_pii else None}
    summaries = []
    for role, group in (("train", files), ("test", test_files)):
        for path in group:
            summaries.append(_audit_file(Path(path), role, len(summaries), opts, state))
    for spool in (state["spool"], state["redacted"]):
        if spool is not None:
            spool.flush()
    sigs = np.concatenate(state["sigs"]) if state["sigs"] else np.zeros((0, dup.NUM_PERM), np.uint32)
    result = AuditResult(summaries, state["metas"], state["issues"], sigs, spool=state["spool"],
                         redacted_spool=state["redacted"], options=opts, profile_columns=state["profile"])
    dataset_checks(result, opts)
    return result
