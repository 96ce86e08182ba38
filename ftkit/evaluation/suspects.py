"""Suspect labels: the client's examples whose given answer the fine-tuned model most confidently rejects.

After training, every scored example (train, validation and test, up to ``evaluation.suspect_labels.max_examples``)
is run through the fine-tuned model teacher-forced: one batched forward pass per answer, no generation.

- **Every task**: the loss of the given answer (mean negative log-likelihood of its tokens, end-of-turn included,
  in nats/token: the training loss of that one example). A high loss means the model finds the answer unlikely.
- **Classification**: the model's probability over the label set. Each label's answer text (as the data writes it)
  is scored in place of the given one, and the sums of their token log-probabilities are normalised over the
  labels (``method: full``). When every label's answer starts with a different token, the first answer token
  decides the label, so the distribution over those first tokens at the answer's first position - read from the
  given answer's own pass - is used instead (``method: first_token``: one pass per example instead of one per
  label). The examples are ranked by ``1 - p(given label)`` (cleanlab's ``self_confidence`` label quality).

**In-sample vs out-of-sample.** Validation and test examples were never trained on: their probabilities are
out-of-sample, which is what confident learning needs, so cleanlab's ``find_label_issues`` flags the likely label
errors among them (per-class thresholds from the confident joint). Train examples were fit by this very model:
it has partly *learnt* their labels, wrong ones included, so their scores are in-sample and over-confident - a
train example that still scores low is strong evidence, but a wrong train label can hide behind a good score.
``score_kind`` says which each row is; cross-validated out-of-sample scores for the train split would need k
extra trainings.

Sheet: ``suspect_labels.csv`` (columns :data:`SUSPECT_COLUMNS`, the contract with ``data.corrections``) and the
self-contained ``suspect_labels.html`` that exports the same CSV; client text in both is PII-masked, like the A/B
sheets, and every cell is formula-safe (``ftkit.safe_values.csv_cell``).
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ftkit.section import Section, finding

# The review sheet's columns, in this order: the contract with the data audit's `data.corrections` reader.
SUSPECT_COLUMNS = ("rank", "file", "line", "split", "input", "given_answer", "model_answer", "score", "score_kind",
                   "decision", "new_answer", "reviewer", "comment")
DECISIONS = ("keep", "fix", "drop")  # empty = not reviewed; fix needs new_answer
SPLITS = ("train", "validation", "test")
IN_SAMPLE_SPLITS = ("train",)  # the model was fit on these: their scores are in-sample

# Thresholds and bounds (units beside each).
LABEL_ISSUE_SHARE_WARN = 0.05  # share (0-1) of out-of-sample examples cleanlab flags above which labels look noisy
MAX_FULL_LABELS = 100  # labels scored one pass each (method full); above this only the loss ranks (passes per example)
INPUT_CHARS = 600  # characters of the input shown per sheet row (the file/line lead to the whole record)
MAX_LABEL_PASSES = 3000  # method full: examples x labels sequences scored at most (~75k tokens: ~8 min on 2 CPU cores)
SCORE_BATCH = 8  # sequences per forward pass (CPU-sized; memory ~ batch x tokens x vocab floats of logits)


@dataclass
class Entry:
    """One scored example: where it is, what was given."""

    id: str
    split: str
    file: str
    line: int | None
    input: str
    given_answer: str
    label: str | None = None

    @property
    def in_sample(self) -> bool:
        return self.split in IN_SAMPLE_SPLITS


@dataclass
class Scoring:
    """What the forward passes measured, per entry (same order)."""

    entries: list[Entry]
    loss: list[float]  # mean NLL of the given answer's tokens (nats/token)
    labels: list[str] = field(default_factory=list)  # classification: the label set (columns of probs)
    label_answers: list[str] = field(default_factory=list)  # each label's answer text, as the data writes it
    probs: list[list[float]] | None = None  # classification: p(label) per entry, rows sum to 1
    method: str = "loss"  # loss | full | first_token
    skipped: list[str] = field(default_factory=list)  # ids whose answer fell outside max_seq_length


# -- which examples -----------------------------------------------------------------------------------------------

def origin_of(record: dict) -> tuple[str, int | None]:
    """(file, line) of a split record in the delivered data: its ``origin``, else parsed from ``<stem>:<line>``.

    >>> origin_of({"id": "x", "origin": {"file": "t.csv", "line": 7}})
    ('t.csv', 7)
    >>> origin_of({"id": "tickets:12"})
    ('tickets', 12)
    >>> origin_of({"id": "abc"})
    ('', None)
    """
    origin = record.get("origin")
    if isinstance(origin, dict) and origin.get("file"):
        line = origin.get("line")
        return str(origin["file"]), int(line) if isinstance(line, int) else None
    stem, _, line = str(record.get("id", "")).rpartition(":")
    return (stem, int(line)) if stem and line.isdigit() else ("", None)


def select(splits: dict[str, list[dict]], max_examples: int, seed: int = 0) -> list[tuple[str, dict]]:
    """(split, record) pairs to score: all of them, or a seeded sample of ``max_examples`` drawn from each split in
    proportion to its size (every non-empty split keeps at least one), in split order."""
    pairs = [(name, r) for name in SPLITS for r in splits.get(name) or []]
    if max_examples <= 0 or len(pairs) <= max_examples:
        return pairs
    rng = random.Random(seed)
    sizes = {name: len(splits.get(name) or []) for name in SPLITS}
    total = sum(sizes.values())
    exact = {name: max_examples * n / total for name, n in sizes.items()}
    quota = {name: min(n, max(1, int(exact[name]))) if n else 0 for name, n in sizes.items()}
    while sum(quota.values()) > max_examples:  # the at-least-one rule overshot: take from the largest split
        quota[max(quota, key=quota.get)] -= 1
    while sum(quota.values()) < max_examples:  # largest remainder first
        quota[max((n for n in SPLITS if quota[n] < sizes[n]), key=lambda n: exact[n] - quota[n])] += 1
    out = []
    for name in SPLITS:
        records = splits.get(name) or []
        keep = sorted(rng.sample(range(len(records)), quota[name]))
        out += [(name, records[i]) for i in keep]
    return out


def entries_of(pairs: list[tuple[str, dict]]) -> list[Entry]:
    from ftkit.prompting import split_record

    out = []
    for split, record in pairs:
        before, answer = split_record(record)
        file, line = origin_of(record)
        text = "\n".join(str(m.get("content", "")) for m in before if m.get("role") != "system")
        label = record.get("label")
        out.append(Entry(str(record.get("id")), split, file, line, text, answer, None if label is None else str(label)))
    return out


def label_answers(records: list[dict], labels: list[str]) -> list[str]:
    """Each label's answer text as the data writes it (its most frequent answer), else the label itself.

    >>> recs = [{"label": "a", "messages": [{"role": "assistant", "content": "A"}]}]
    >>> label_answers(recs, ["a", "b"])
    ['A', 'b']
    """
    seen: dict[str, Counter] = {}
    for r in records:
        if r.get("label") is not None and r.get("messages"):
            seen.setdefault(str(r["label"]), Counter())[str(r["messages"][-1].get("content", ""))] += 1
    return [seen[label].most_common(1)[0][0] if label in seen else label for label in labels]


# -- the forward passes ------------------------------------------------------------------------------------------

def _conversation(record: dict, system_prompt: str, answer: str | None = None) -> list[dict]:
    from ftkit.chat_plan import with_system

    messages = [dict(m) for m in record["messages"]]
    if answer is not None:
        messages[-1] = {**messages[-1], "content": answer}
    return with_system(messages, system_prompt)


def _tokenize(tokenizer, conversations: list[list[dict]], max_seq_length: int) -> list[dict]:
    from ftkit.chat_format import tokenize_with_assistant_labels

    return tokenize_with_assistant_labels(tokenizer, conversations, max_length=max_seq_length)


def _first_label_position(labels: list[int]) -> int | None:
    from ftkit.chat_format import IGNORE_INDEX

    return next((i for i, x in enumerate(labels) if x != IGNORE_INDEX), None)


def _answer_start(labels: list[int]) -> int | None:
    """Where the last assistant turn's labels start (the given answer; earlier turns of a chat come before it).

    >>> _answer_start([-100, 5, 6, -100, -100, 7, 8, 2])
    5
    """
    from ftkit.chat_format import IGNORE_INDEX

    end = next((i for i in range(len(labels) - 1, -1, -1) if labels[i] != IGNORE_INDEX), None)
    if end is None:
        return None
    while end > 0 and labels[end - 1] != IGNORE_INDEX:
        end -= 1
    return end


def sequence_logprobs(model, rows: list[dict], pad_id: int, batch_size: int = SCORE_BATCH,
                      first_ids: list[int] | None = None, progress: bool = False) -> list[tuple[float, int, list | None]]:
    """Per row (tokenized with labels): (sum of the label tokens' log-probs, label token count, log-probs of
    ``first_ids`` at the first label position or None). Rows are batched by length, right-padded and masked.

    The prefix every row shares (a system prompt) runs once and its key/value cache is reused, as generation does
    (``ftkit.generation.local``): same numbers, fewer tokens.
    """
    import torch
    from tqdm import tqdm

    from ftkit.chat_format import IGNORE_INDEX
    from ftkit.generation.local import common_prefix_length, length_sorted_batches

    device = next(model.parameters()).device
    firsts = [_first_label_position(r["labels"]) for r in rows]
    scorable = [i for i, f in enumerate(firsts) if f is not None]
    out: list = [(float("nan"), 0, None)] * len(rows)
    if not scorable:
        return out
    prefix_len = min(common_prefix_length([rows[i]["input_ids"] for i in scorable]), min(firsts[i] for i in scorable) - 1)
    cache = _prefix(model, rows[scorable[0]]["input_ids"][:prefix_len], device) if len(scorable) > 1 else None
    if cache is None:
        prefix_len = 0
    names = _forward_names(model)
    model_was_training = model.training
    model.eval()
    batches = length_sorted_batches([len(rows[i]["input_ids"]) for i in scorable], batch_size)
    with torch.inference_mode(), tqdm(total=len(scorable), desc="scoring", unit="seq", disable=not progress,
                                      mininterval=2.0) as bar:
        for batch in batches:
            idx = [scorable[b] for b in batch]
            tails = [rows[i]["input_ids"][prefix_len:] for i in idx]
            targets = [rows[i]["labels"][prefix_len:] for i in idx]
            width = max(len(t) for t in tails)
            ids = torch.tensor([t + [pad_id] * (width - len(t)) for t in tails], device=device)  # (B, T)
            mask = torch.tensor([[1] * (prefix_len + len(t)) + [0] * (width - len(t)) for t in tails], device=device)
            extra = {}
            if cache is not None:
                import copy

                c = copy.deepcopy(cache)
                c.batch_repeat_interleave(len(idx))  # (1, heads, P, dim) -> (B, heads, P, dim)
                extra = {names["cache"]: c, "use_cache": True}
            # Logits only from the position before the batch's earliest answer token on: the vocabulary projection
            # is ~20 % of a small model's forward FLOPs, and prompt positions need none.
            lo = min(_first_label_position(t) for t in targets) - 1
            if names["keep"]:
                extra["logits_to_keep"] = torch.arange(lo, width, device=device)
            else:
                lo = 0
            logits = model(input_ids=ids, attention_mask=mask, **extra).logits.float()  # (B, width - lo, vocab)
            for k, i in enumerate(idx):
                lab = torch.tensor(targets[k], device=device)
                pos = (lab != IGNORE_INDEX).nonzero().flatten()  # label positions in the tail; predicted from pos-1
                logp = torch.log_softmax(logits[k, pos - 1 - lo], dim=-1)  # (n_labels, vocab)
                total = logp.gather(1, lab[pos].unsqueeze(1)).sum().item()
                if first_ids is not None:  # the distribution at the given answer's first token
                    at = int((pos == _answer_start(targets[k])).nonzero()[0])
                    first = logp[at, first_ids].tolist()
                else:
                    first = None
                out[i] = (total, int(pos.numel()), first)
            bar.update(len(idx))
    model.train(model_was_training)
    return out


def _forward_names(model) -> dict:
    """The installed transformers' forward keywords: the key/value cache is ``cache`` from 5.x on (``past_key_values``
    before, deprecated), and ``logits_to_keep`` (a tensor of positions) may be missing on older models."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return {"cache": "cache" if "cache" in params else "past_key_values", "keep": "logits_to_keep" in params}


def _prefix(model, ids: list[int], device):
    """The key/value cache of the shared prefix, or None when too short or the model's cache cannot be reused."""
    import torch

    from ftkit.generation.local import MIN_PREFIX_TOKENS

    if len(ids) < MIN_PREFIX_TOKENS:
        return None
    try:
        with torch.inference_mode():
            out = model(torch.tensor([ids], device=device), use_cache=True)
        cache = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")  # 5.x: cache
    except (TypeError, ValueError, RuntimeError):
        return None
    if cache is None or not hasattr(cache, "batch_repeat_interleave") or any(getattr(cache, "is_sliding", None) or []):
        return None
    return cache


def score(model, tokenizer, pairs: list[tuple[str, dict]], task_type: str, labels: list[str] | None = None,
          answers: list[str] | None = None, system_prompt: str = "", max_seq_length: int = 1024,
          batch_size: int = SCORE_BATCH, progress: bool = False, method: str = "auto") -> Scoring:
    """Score ``pairs`` ((split, record)) with ``model``: the given answer's loss, and for classification with a
    label set (``labels`` and their ``answers`` texts) p(label) per example. ``method``: auto (first_token when
    the labels' first answer tokens all differ, else full), or full / first_token / loss to force one."""
    import math

    requested = method
    entries = entries_of(pairs)
    records = [r for _, r in pairs]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    given_rows = _tokenize(tokenizer, [_conversation(r, system_prompt) for r in records], max_seq_length)
    classify = bool(task_type == "classification" and labels and len(labels) >= 2)
    method, first_ids = "loss", None
    if classify and requested != "loss":
        first_ids = _distinct_first_tokens(tokenizer, records[0], answers, system_prompt, max_seq_length)
        if requested == "first_token" and not first_ids:
            raise ValueError("method first_token needs labels whose answers start with different tokens")
        method = "first_token" if first_ids and requested != "full" else (
            "full" if len(labels) <= MAX_FULL_LABELS or requested == "full" else "loss")
        first_ids = first_ids if method == "first_token" else None
    given = sequence_logprobs(model, given_rows, pad_id, batch_size, first_ids, progress)
    loss = [-t / n if n else math.nan for t, n, _ in given]
    skipped = [e.id for e, (_, n, _) in zip(entries, given) if not n]
    s = Scoring(entries, loss, list(labels or []) if classify else [], list(answers or []) if classify else [], None,
                method, skipped)
    if method == "first_token":
        s.probs = [_softmax(f) if f is not None else None for _, _, f in given]
    elif method == "full":
        s.probs = _full_label_probs(model, tokenizer, records, given, answers, system_prompt, max_seq_length, pad_id,
                                    batch_size, progress)
    return s


def _distinct_first_tokens(tokenizer, record: dict, answers: list[str], system_prompt: str,
                           max_seq_length: int) -> list[int] | None:
    """The first answer token of each label's answer, in context; None unless they all differ."""
    rows = _tokenize(tokenizer, [_conversation(record, system_prompt, a) for a in answers], max_seq_length)
    firsts = []
    for row in rows:
        pos = _answer_start(row["labels"])
        if pos is None:
            return None
        firsts.append(row["labels"][pos])
    return firsts if len(set(firsts)) == len(firsts) else None


def _full_label_probs(model, tokenizer, records, given, answers, system_prompt, max_seq_length, pad_id, batch_size,
                      progress) -> list:
    """p(label) per record from the summed log-probs of every label's whole answer (the given one reused)."""
    convs, where = [], []
    for i, r in enumerate(records):
        for k, answer in enumerate(answers):
            if given[i][1] and answer != str(r["messages"][-1].get("content", "")):
                convs.append(_conversation(r, system_prompt, answer))
                where.append((i, k))
    rows = _tokenize(tokenizer, convs, max_seq_length) if convs else []
    scored = sequence_logprobs(model, rows, pad_id, batch_size, None, progress) if rows else []
    totals = [[None] * len(answers) for _ in records]
    for (i, k), (t, n, _) in zip(where, scored):
        totals[i][k] = t if n else None
    out = []
    for i, r in enumerate(records):
        if not given[i][1]:
            out.append(None)
            continue
        text = str(r["messages"][-1].get("content", ""))
        row = [given[i][0] if a == text else totals[i][k] for k, a in enumerate(answers)]
        out.append(_softmax([float("-inf") if v is None else v for v in row]))
    return out


def _softmax(values: list[float]) -> list[float]:
    """
    >>> [round(p, 3) for p in _softmax([0.0, 0.0, float("-inf")])]
    [0.5, 0.5, 0.0]
    """
    import math

    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


# -- ranking ------------------------------------------------------------------------------------------------------

def label_index(entries: list[Entry], labels: list[str]) -> list[int | None]:
    """Column of each entry's given label (matched case- and punctuation-insensitively), None when unknown."""
    from ftkit.metrics.classification import normalise

    by_norm = {normalise(label): k for k, label in enumerate(labels)}
    return [None if e.label is None else by_norm.get(normalise(e.label)) for e in entries]


def cleanlab_issues(given: list[int], probs: list[list[float]]) -> tuple[list[bool] | None, str]:
    """(label-issue flag per example from cleanlab's ``find_label_issues`` on out-of-sample probabilities, note).

    None with the reason when cleanlab cannot run on them (too few examples or classes)."""
    import warnings

    import numpy as np

    if len(given) < 2 or len(set(given)) < 2:
        return None, "cleanlab needs out-of-sample examples of at least 2 labels"
    from cleanlab.filter import find_label_issues

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flags = find_label_issues(np.asarray(given), np.asarray(probs, dtype=float), filter_by="prune_by_noise_rate")
    except (ValueError, IndexError, ZeroDivisionError) as err:
        return None, f"cleanlab could not run ({str(err).splitlines()[0][:120]})"
    return [bool(x) for x in flags], ""


def quality_scores(given: list[int], probs: list[list[float]]) -> list[float]:
    """cleanlab's ``get_label_quality_scores`` (self_confidence: p(given label)); 0 = the model rejects it."""
    import numpy as np
    from cleanlab.rank import get_label_quality_scores

    return [float(x) for x in get_label_quality_scores(np.asarray(given), np.asarray(probs, dtype=float),
                                                       method="self_confidence")]


def rank(s: Scoring) -> dict:
    """Every scored entry ranked, most suspect first: ``rows`` (dicts with rank, suspicion, score, score_kind,
    model_answer, cleanlab_issue), ``by`` ("p_given" or "loss") and notes."""
    notes = []
    if s.probs is not None:
        return _rank_classification(s, notes)
    if s.method == "loss" and s.labels:
        notes.append(f"{len(s.labels)} labels: more than {MAX_FULL_LABELS}, so only the loss ranks.")
    rows = [_row(e, s.loss[i], s.loss[i], f"loss per token, {_sample(e)}", "", None, s.loss[i])
            for i, e in enumerate(s.entries) if s.loss[i] == s.loss[i]]
    return _ranked(rows, "loss", notes)


def _rank_classification(s: Scoring, notes: list) -> dict:
    cols = label_index(s.entries, s.labels)
    usable = [i for i, e in enumerate(s.entries) if cols[i] is not None and s.probs[i] is not None]
    unknown = [s.entries[i].id for i, c in enumerate(cols) if c is None]
    if unknown:
        notes.append(f"{len(unknown)} example(s) carry a label outside the label set and are not ranked: "
                     f"{', '.join(unknown[:5])}")
    given = [cols[i] for i in usable]
    probs = [s.probs[i] for i in usable]
    quality = quality_scores(given, probs) if usable else []
    oos = [k for k, i in enumerate(usable) if not s.entries[i].in_sample]
    flags, why = cleanlab_issues([given[k] for k in oos], [probs[k] for k in oos])
    if why:
        notes.append(why)
    flag_of = {oos[j]: f for j, f in enumerate(flags)} if flags else {}
    rows = []
    for k, i in enumerate(usable):
        e = s.entries[i]
        best = max(range(len(s.labels)), key=lambda c: probs[k][c])
        issue = flag_of.get(k)
        kind = f"p(given label), {_sample(e)}" + ("; cleanlab: label issue" if issue else "")
        rows.append(_row(e, 1.0 - quality[k], quality[k], kind, s.label_answers[best], issue, s.loss[i]))
    return _ranked(rows, "p_given", notes, n_out_of_sample=len(oos),
                   n_flagged=sum(1 for f in (flags or []) if f), cleanlab_ran=flags is not None)


def _sample(e: Entry) -> str:
    return "in-sample (trained on)" if e.in_sample else "out-of-sample"


def _row(e: Entry, suspicion: float, score_value: float, kind: str, model_answer: str, issue, loss=None) -> dict:
    return {"id": e.id, "split": e.split, "file": e.file, "line": e.line, "input": e.input,
            "given_answer": e.given_answer, "model_answer": model_answer, "score": round(float(score_value), 4),
            "score_kind": kind, "suspicion": float(suspicion), "in_sample": e.in_sample, "cleanlab_issue": issue,
            "loss": None if loss is None else round(float(loss), 4)}


def _ranked(rows: list[dict], by: str, notes: list, **counts) -> dict:
    rows.sort(key=lambda r: (-r["suspicion"], r["split"], r["id"]))
    for k, r in enumerate(rows, start=1):
        r["rank"] = k
    return {"rows": rows, "by": by, "notes": notes, **counts}


# -- the sheet ----------------------------------------------------------------------------------------------------

def sheet_rows(ranked_rows: list[dict]) -> list[dict]:
    """The review sheet's rows (SUSPECT_COLUMNS): client text PII-masked and shortened, decision columns empty."""
    from ftkit.data.pii import mask

    def short(text: str) -> str:
        text = mask(str(text))
        return text if len(text) <= INPUT_CHARS else text[:INPUT_CHARS - 3] + "..."

    return [{"rank": r["rank"], "file": r["file"], "line": "" if r["line"] is None else r["line"], "split": r["split"],
             "input": short(r["input"]), "given_answer": mask(r["given_answer"]),
             "model_answer": mask(r["model_answer"]), "score": r["score"], "score_kind": r["score_kind"],
             "decision": "", "new_answer": "", "reviewer": "", "comment": ""} for r in ranked_rows]


def write_sheet(folder: str | Path, rows: list[dict], title: str = "Suspect labels") -> dict[str, Path]:
    """``suspect_labels.csv`` (UTF-8 with BOM for Excel, every text cell formula-safe) and ``suspect_labels.html``."""
    from ftkit.fsutil import atomic_write_text
    from ftkit.safe_values import csv_text

    folder = Path(folder)
    return {"csv": atomic_write_text(folder / "suspect_labels.csv", "\ufeff" + csv_text(SUSPECT_COLUMNS, rows)),
            "html": atomic_write_text(folder / "suspect_labels.html", render_html(rows, title))}


def render_html(rows: list[dict], title: str) -> str:
    """The review form: every value escaped (jinja autoescape; the JSON island has ``<`` escaped), no external
    resources; decisions kept in the browser and downloaded as a CSV with exactly SUSPECT_COLUMNS."""
    from ftkit.review_form import render

    data = json.dumps(rows, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    key = "ftkit-suspects-" + _digest(data)  # localStorage slot of this sheet's decisions
    return render(_HTML, rows=rows, title=title, columns=SUSPECT_COLUMNS, decisions=DECISIONS, data=data, store=key,
                  name_field="reviewer", download_label="Download CSV")


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# -- the rule -----------------------------------------------------------------------------------------------------

def suspects_finding(ranked: dict, n_scored: int, n_listed: int, sheet: str):
    """info with the counts and where to review; a warning when cleanlab flags more than LABEL_ISSUE_SHARE_WARN of
    the out-of-sample examples (the labels look noisy enough to cost accuracy)."""
    rows = ranked["rows"]
    n_in = sum(1 for r in rows if r["in_sample"])
    where = f"Review {sheet} (or its .csv): decide keep / fix (with the new answer) / drop per row."
    if ranked["by"] == "loss":
        return finding("info", "evaluation.suspect_labels",
                       f"{n_scored} examples scored by the loss of their given answer (not a classification task, "
                       f"so loss-only: a high loss can also mean a hard or unusual example); the {n_listed} "
                       f"highest-loss are listed ({n_in} of the {len(rows)} scores are in-sample).", where)
    n_oos, flagged = ranked.get("n_out_of_sample", 0), ranked.get("n_flagged", 0)
    share = flagged / n_oos if n_oos else 0.0
    noisy = ranked.get("cleanlab_ran") and share > LABEL_ISSUE_SHARE_WARN
    cl = (f"cleanlab flags {flagged} of {n_oos} out-of-sample (validation/test) examples ({share:.1%}) as likely "
          f"label errors" if ranked.get("cleanlab_ran") else "cleanlab did not run (" + "; ".join(ranked["notes"]) + ")")
    return finding("warning" if noisy else "info", "evaluation.suspect_labels",
                   f"{n_scored} examples scored by the fine-tuned model's probability of their given label; {cl}. "
                   f"The {n_listed} the model most confidently rejects are listed; the {n_in} train scores are "
                   f"in-sample (the model was fit on them, so a wrong train label can look fine).",
                   where + (" Labels this noisy cost accuracy: have the client review before the next iteration."
                            if noisy else ""))


# -- the section --------------------------------------------------------------------------------------------------

def section(run, c, new_preds: list, progress: bool = True) -> Section:
    """Score, rank, write the sheet (value: the summary written to suspect_labels.json)."""
    import time

    settings = run.config.evaluation.suspect_labels
    if not settings.enabled:
        return Section(notes=["Suspect labels skipped (evaluation.suspect_labels.enabled = false)."])
    from ftkit.fsutil import atomic_write_json
    from ftkit.prompting import load_splits

    started = time.perf_counter()
    config = run.config
    splits = load_splits(run)
    all_records = [r for name in SPLITS for r in splits.get(name) or []]
    labels = list(config.task.labels) or sorted({str(r["label"]) for r in all_records if r.get("label") is not None})
    answers = label_answers(all_records, labels)
    max_len = int(c.training.settings.get("max_seq_length") or config.data.max_seq_length)
    limit, capped = label_pass_limit(settings.max_examples, len(all_records), config.task.type, labels,
                                     lambda: _distinct_first_tokens(c.ft.tokenizer, all_records[0], answers,
                                                                    config.task.system_prompt, max_len))
    pairs = select(splits, limit, config.evaluation.seed)
    s = score(c.ft.model, c.ft.tokenizer, pairs, config.task.type, labels, answers, config.task.system_prompt,
              max_len, progress=progress)
    ranked = rank(s)
    if capped:
        ranked["notes"].append(capped)
    listed = ranked["rows"][:settings.listed]
    if ranked["by"] == "loss":
        _fill_model_answers(run, c, listed, pairs, new_preds, progress)
    rows = sheet_rows(listed)
    files = write_sheet(run.artefact("suspects"), rows,
                        title=f"{config.client.name or run.engagement.slug}: suspect labels to review")
    seconds = round(time.perf_counter() - started, 1)
    summary = {"method": s.method, "ranked_by": ranked["by"], "n_scored": len(s.entries),
               "n_scored_by_split": dict(Counter(e.split for e in s.entries)), "n_listed": len(rows),
               "in_sample_splits": list(IN_SAMPLE_SPLITS), "n_out_of_sample": ranked.get("n_out_of_sample"),
               "n_cleanlab_issues": ranked.get("n_flagged"), "skipped": s.skipped, "notes": ranked["notes"],
               "seconds": seconds, "files": {k: f"suspects/{p.name}" for k, p in files.items()},
               "rows": [{k: r[k] for k in ("rank", "id", "split", "file", "line", "score", "score_kind",
                                           "cleanlab_issue", "loss")} for r in ranked["rows"]]}
    atomic_write_json(run.artefact("suspects/suspect_labels.json"), summary)
    sec = Section(value=summary, notes=[f"{len(s.entries)} examples scored in {seconds} s ({s.method}); "
                                        f"{len(rows)} listed in suspects/suspect_labels.html and .csv"] + ranked["notes"])
    sec.table([{k: r[k] for k in ("rank", "file", "line", "split", "given_answer", "model_answer", "score",
                                  "score_kind")} for r in rows[:10]], caption="Most suspect labels (top 10)")
    return sec.add(suspects_finding(ranked, len(s.entries), len(rows), "suspects/suspect_labels.html"))


def label_pass_limit(max_examples: int, n_records: int, task_type: str, labels: list[str],
                     first_tokens) -> tuple[int, str]:
    """(examples to score, note): method full scores every label's answer for every example, so it is held to
    MAX_LABEL_PASSES sequences in all; ``first_tokens()`` (called only for classification) is None unless the
    labels' first answer tokens all differ (then one pass per example, no cap).

    >>> label_pass_limit(300, 1000, "classification", [str(i) for i in range(77)], lambda: None)
    (38, 'Scoring every one of the 77 labels for each example: 38 examples scored (MAX_LABEL_PASSES = 3000 sequences), not 300.')
    >>> label_pass_limit(300, 1000, "classification", ["a", "b"], lambda: [1, 2])
    (300, '')
    """
    wanted = n_records if max_examples <= 0 else min(max_examples, n_records)
    if task_type != "classification" or len(labels) < 2 or len(labels) > MAX_FULL_LABELS or first_tokens():
        return max_examples, ""
    cap = max(2, MAX_LABEL_PASSES // len(labels))
    if wanted <= cap:
        return max_examples, ""
    return cap, (f"Scoring every one of the {len(labels)} labels for each example: {cap} examples scored "
                 f"(MAX_LABEL_PASSES = {MAX_LABEL_PASSES} sequences), not {wanted}.")


def _fill_model_answers(run, c, listed: list[dict], pairs, new_preds: list, progress: bool) -> None:
    """Loss-only ranking has no label set: the model's answer is its test prediction, or generated for the listed
    train/validation rows (greedy, the baseline's max_new_tokens; bounded by the sheet's length)."""
    from ftkit.generation import generate_local
    from ftkit.prompting import PromptSpec, build_prompts

    by_id = {p.id: p.output for p in new_preds}
    records = {str(r.get("id")): r for _, r in pairs}
    todo = [r for r in listed if r["id"] not in by_id]
    if todo:
        prompts = build_prompts([records[r["id"]] for r in todo], PromptSpec(system_prompt=run.config.task.system_prompt),
                                c.ft.tokenizer)
        for p in generate_local(c.ft.model, c.ft.tokenizer, prompts, c.baseline.max_new_tokens, c.baseline.batch_size,
                                progress=progress):
            by_id[p.id] = p.output
    for r in listed:
        r["model_answer"] = by_id.get(r["id"], "")


_HTML = """{% extends "review_form.html" %}
{% block title %}{{ title }}{% endblock %}
{% block layout %}body{font-family:system-ui,sans-serif;margin:2em;color:#222}
{% endblock %}
{% block css %}table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.35em;vertical-align:top;text-align:left}
th{background:#f0f0f0;position:sticky;top:3em}td pre{white-space:pre-wrap;word-break:break-word;margin:0;font-family:inherit}
input.new,textarea{width:100%;box-sizing:border-box}.given{background:#fff3f3}.model{background:#f3fff3}
{% endblock %}
{% block intro %}<h1>{{ title }}</h1>
<p>{{ rows|length }} examples whose given answer the fine-tuned model most confidently rejects, most suspect first.
For each row decide: <strong>keep</strong> (the given answer is right), <strong>fix</strong> (write the correct answer
in <em>new answer</em>; for a classification, the correct label's full answer text as the data writes it) or
<strong>drop</strong> (remove the example). Leave a row undecided when unsure. <em>file</em> and <em>line</em> say where
the example is in the data you delivered. Scores marked <em>in-sample</em> are train examples the model learnt from:
their score is weaker evidence. Your decisions are kept in this browser; press <strong>Download CSV</strong> when done
and send the file back (or fill the <code>decision</code>, <code>new_answer</code>, <code>reviewer</code> and
<code>comment</code> columns of suspect_labels.csv in a spreadsheet instead).</p>{% endblock %}
{% block items %}<table><thead><tr>{% for col in columns %}<th>{{ col }}</th>{% endfor %}</tr></thead><tbody>
{% for r in rows %}<tr data-k="{{ loop.index0 }}">
<td>{{ r.rank }}</td><td>{{ r.file }}</td><td>{{ r.line }}</td><td>{{ r.split }}</td><td><pre>{{ r.input }}</pre></td>
<td class="given"><pre>{{ r.given_answer }}</pre></td><td class="model"><pre>{{ r.model_answer }}</pre></td>
<td>{{ r.score }}</td><td>{{ r.score_kind }}</td>
<td><select class="decision"><option value=""></option>{% for d in decisions %}<option value="{{ d }}">{{ d }}</option>{% endfor %}</select></td>
<td><input class="new" placeholder="for fix"></td><td class="who"></td><td><textarea class="comment"></textarea></td>
</tr>{% endfor %}
</tbody></table>
<script type="application/json" id="rows">{{ data|safe }}</script>{% endblock %}
{% block script %}
  var rows = JSON.parse(document.getElementById("rows").textContent);
  var trs = Array.prototype.slice.call(document.querySelectorAll("tr[data-k]"));
  var columns = {{ columns|list|tojson }};
  reviewForm({store: "{{ store }}", who: "reviewer", total: trs.length, word: "decided", bom: true,
    read: function(s){
      s.rows = {};
      trs.forEach(function(tr){ s.rows[tr.dataset.k] = {decision: tr.querySelector(".decision").value,
        new_answer: tr.querySelector(".new").value, comment: tr.querySelector(".comment").value}; });
    },
    restore: function(saved){
      trs.forEach(function(tr){ var p = (saved.rows || {})[tr.dataset.k] || {};
        tr.querySelector(".decision").value = p.decision || ""; tr.querySelector(".new").value = p.new_answer || "";
        tr.querySelector(".comment").value = p.comment || ""; });
    },
    done: function(s){ return trs.filter(function(tr){ return s.rows[tr.dataset.k].decision; }).length; },
    show: function(s){
      trs.forEach(function(tr){ var d = s.rows[tr.dataset.k];
        tr.querySelector(".who").textContent = d.decision ? s.reviewer : "";
        tr.querySelector(".new").style.outline = (d.decision === "fix" && !d.new_answer) ? "2px solid #c00" : ""; });
    },
    header: columns.join(","),
    rows: function(s){
      return rows.map(function(r, k){
        var d = s.rows[k] || {}, filled = Object.assign({}, r, {decision: d.decision || "", new_answer: d.new_answer || "",
          reviewer: d.decision ? s.reviewer : "", comment: d.comment || ""});
        return columns.map(function(c){ return filled[c]; });
      });
    },
    file: function(){ return "suspect_labels_reviewed.csv"; }});
{% endblock %}"""
