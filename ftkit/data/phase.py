"""The data audit phase's building blocks: what ``notebooks/02_data_audit.ipynb`` calls, one function per section.

Each ``*_findings`` function returns ``(severity, code, message, next_step)`` tuples whose sentences are computed
from this client's numbers, and the ``*_section`` functions a :class:`ftkit.section.Section`; the notebook hands
either to ``run.record``. Figures are matplotlib (imported inside the functions). The verdict is decided once,
after every section (:func:`verdict`), and both the data card and ``DataAuditResults`` state it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ftkit.data.audit_files import AuditOptions, AuditResult, audit_files
from ftkit.data.checks import CHECKS
from ftkit.data.record_checks import TaskContext, control_markers
from ftkit.data.stats import suggest_max_seq_length
from ftkit.phase_results import PhaseResults, described

MIN_TEST_FOR_CI = 100  # test examples: below this a 95 % interval on accuracy is wider than +-10 points
# Findings about ftkit's own inputs, not the client's data: shown in their section, never in the data verdict
NOT_ABOUT_THE_DATA = frozenset({"data.prices_stale"})
MAX_ERROR_SHARE = 0.2  # more records with errors than this blocks: the file needs fixing, not filtering
LABEL_ERROR_BLOCK_SHARE = 0.5  # share of examples (0-1) with empty/stopless labels at which the audit blocks
IMBALANCE_WARN = 10  # largest label count / smallest label count (ratio) from which imbalance is a warning
SYSTEM_PROMPTS_WARN = 5  # more distinct system prompts than this is a warning (1 is the norm; a few may be intended)
PERSONAL_DATA_FRAMEWORKS = {"gdpr", "hipaa", "pci_dss", "ccpa"}


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "0 %"


def load_base_tokenizer(config, engagement_dir=None):
    """The base model's tokenizer with the engagement's chat template installed (``ftkit.chat_plan``), or
    (None, why) when it cannot be loaded (token checks are then skipped)."""
    from ftkit.chat_plan import prepare_tokenizer
    from ftkit.errors import ConfigError, FtkitError
    from ftkit.models.loading import load_tokenizer
    from ftkit.models.resolve import base_model_source

    try:
        tok = load_tokenizer(base_model_source(config.base_model))
    except FtkitError as err:
        return None, str(err)
    if not getattr(tok, "is_fast", False):
        return None, f"the tokenizer of {config.base_model.id} is not a fast tokenizer"
    try:
        prepare_tokenizer(tok, config, engagement_dir)
    except ConfigError:
        raise
    except FtkitError as err:
        return None, str(err)
    return tok, ""


def chat_plan_of(tokenizer) -> dict:
    """The recorded chat-template decision of a prepared tokenizer ({} when none was made)."""
    cached = getattr(tokenizer, "_ftkit_chat_plan", None)
    return cached[1].to_dict() if cached else {}


def audit_engagement(run, use_tokenizer: bool = True, workers: int = 0) -> AuditResult:
    """Audit the engagement's data files (and test files) with the settings of engagement.yaml."""
    config = run.config
    d, task = config.data, config.task
    tokenizer, why = (load_base_tokenizer(config) if use_tokenizer
                      else (None, "turned off (use_tokenizer=False)"))
    control = control_markers(tokenizer)  # its special tokens, or the common chat-format markers without one
    options = AuditOptions(
        fmt=d.format, columns={"prompt": d.columns.prompt, "completion": d.columns.completion, "system": d.columns.system},
        sheet=getattr(d, "sheet", ""),
        system_prompt=task.system_prompt,
        task=TaskContext(task.type, task.label_field, tuple(task.labels), dict(task.json_schema), control),
        tokenizer=tokenizer, max_seq_length=d.max_seq_length, near_duplicate_threshold=d.near_duplicate_threshold,
        redact_pii=d.redact_pii, split={"train": d.split.train, "validation": d.split.validation, "test": d.split.test,
                                        "seed": d.split.seed}, workers=workers or None)
    result = audit_files(run.data_files(), options, test_files=run.data_files(test=True))
    result.tokenizer_note = why
    if tokenizer is not None:
        result.stats["chat_template"] = chat_plan_of(tokenizer)  # lands in results.json with the other stats
    return result


# -- 1. files -------------------------------------------------------------------------------------------------

def files_table(result: AuditResult) -> list[dict]:
    return [{"file": Path(f.path).name, "role": f.role, "format": f.format or "-", "container": f.container or "-",
             "records": f.n_records, "valid": f.n_valid, "valid share": _pct(f.n_valid, f.n_records)}
            for f in result.files]


def files_findings(result: AuditResult) -> list[tuple]:
    out = []
    for f in result.files:
        if not f.readable:
            problem = next((i for i in result.issues if i.file == f.path and i.line == 0), None)
            out.append(("blocking", "data.unreadable", f"{Path(f.path).name} cannot be read: "
                        f"{problem.message if problem else 'no records'}", CHECKS[problem.code].fix if problem else ""))
    out += _no_record_passes(result)
    invalid = result.n_records - result.n_valid
    sev = "blocking" if result.n_records and invalid > MAX_ERROR_SHARE * result.n_records else \
        ("warning" if invalid else "info")
    out.append((sev, "data.valid", f"{result.n_valid:,} of {result.n_records:,} records ({_pct(result.n_valid, result.n_records)}) "
                f"pass every check; {invalid:,} have errors and are left out of the splits.",
                "Send the client issues.csv: every row names the line, the problem and the fix." if invalid else ""))
    plan = result.stats.get("chat_template") or {}
    if plan:
        out.append(("info", "data.chat_template", plan["summary"],
                    "Set base_model.chat_template in engagement.yaml to use another template." if
                    plan["template_source"].startswith("default:") else ""))
    if result.tokenizer_note:
        out.append(("warning", "data.no_tokenizer", f"Token and label-coverage checks were skipped: {result.tokenizer_note}.",
                    "Make the base model available (or fix base_model.id) and re-run the audit."))
    return out


def _no_record_passes(result: AuditResult) -> list[tuple]:
    """One blocking finding, first, when no record passes and one check rejects them all (not one per row)."""
    if not result.n_records or result.n_valid:
        return []
    errors = Counter(i.code for i in result.issues if i.severity == "error")
    if not errors:
        return []
    code, n = errors.most_common(1)[0]
    example = next(i for i in result.issues if i.code == code)
    share = "every record" if n >= result.n_records else f"{n:,} of {result.n_records:,} records"
    return [("blocking", "data.none_usable", f"No record can be used: {share} fail '{code}' (first at "
             f"{Path(example.file).name} line {example.line}: {example.message[:200]}).", CHECKS[code].fix)]


# -- 1b. the client's corrections (data.corrections) -----------------------------------------------------------

def corrections_findings(summary: dict) -> list[tuple]:
    """What the review sheets changed; a warning when any change touches the test split (the yardstick)."""
    if not summary.get("sheets"):
        return [("info", "data.no_corrections", "No review sheets applied (data.corrections is empty).", "")]
    n_sheets = len(summary["sheets"])
    out = [("info", "data.corrections", f"{summary['fixed'] + summary['dropped']:,} change(s) from {n_sheets} review "
            f"sheet(s): {summary['fixed']:,} answer(s) fixed, {summary['dropped']:,} record(s) dropped, "
            f"{summary['kept']:,} confirmed as right; the delivered files in data/ are unchanged and every change is "
            f"in corrections.jsonl.", "")]
    if summary["test_changed"]:
        out.append(("warning", "data.corrections_test", f"{summary['test_changed']:,} correction(s) touch the test "
                    f"split: the yardstick changed, so evaluations before this audit are not comparable on the same "
                    f"test set.", "Re-run the baseline on these splits before evaluating; the iteration ledger marks "
                    "which iterations share a test set."))
    return out


def corrections_table(p) -> list[dict]:
    return [{"file": c["file"], "line": c["line"], "split": c["split"], "decision": c["decision"],
             "old answer": c["old_answer"][:80], "new answer": c.get("new_answer", "")[:80],
             "reviewer": c["reviewer"], "sheet": f"{c['sheet']} row {c['row']}"} for c in p.changes]


def corrections_section(run, result: AuditResult):
    """Section 1b: the review sheets of ``data.corrections`` applied to the splits (value: the applied Plan).

    Every sheet is read, hashed as an input and checked against the audited records before anything is written;
    a bad row raises DataError naming the sheet and row."""
    from ftkit.data import corrections
    from ftkit.section import Section

    listed = list(run.config.data.corrections)
    rows, sheets = corrections.load_corrections(run.engagement.path, listed, run.record_input) if listed else ([], [])
    p = corrections.plan(result, rows, sheets, result.options.task)
    corrections.apply(result, p)
    result.corrections = p
    sec = Section(value=p)
    if p.changes:
        sec.table(corrections_table(p)[:50], caption=f"Changes from the review sheets ({len(p.changes)}; all in "
                                                     f"corrections.jsonl)")
    return sec.add(*corrections_findings(p.summary()))


# -- 2. issues --------------------------------------------------------------------------------------------------

def issues_table(result: AuditResult) -> list[dict]:
    """Issues per check, errors first: count, what it means, the fix."""
    counts = result.issue_counts()
    order = {"error": 0, "warning": 1, "info": 2}
    rows = [{"severity": CHECKS[c].severity, "check": c, "count": n, "problem": CHECKS[c].title, "fix": CHECKS[c].fix}
            for c, n in counts.items()]
    return sorted(rows, key=lambda r: (order[r["severity"]], -r["count"]))


def worst_issues(result: AuditResult, n: int = 20) -> list[dict]:
    order = {"error": 0, "warning": 1, "info": 2}
    rows = sorted(result.issues, key=lambda i: (order[i.severity], i.file, i.line))[:n]
    return [{"file": Path(i.file).name, "line": i.line, "severity": i.severity, "check": i.code, "message": i.message,
             "excerpt (masked)": i.excerpt} for i in rows]


def issues_findings(result: AuditResult) -> list[tuple]:
    errors = Counter(i.code for i in result.issues if i.severity == "error")
    if not errors:
        return [("info", "data.no_errors", "No record has an error.", "")]
    code, n = errors.most_common(1)[0]
    return [("warning", "data.errors", f"{sum(errors.values()):,} errors in {len(errors)} checks; the most frequent is "
             f"'{code}' ({n:,}): {CHECKS[code].title}.", CHECKS[code].fix)]


# -- 3. duplicates ------------------------------------------------------------------------------------------------

def duplicates_table(result: AuditResult, n: int = 10) -> list[dict]:
    rows = []
    for kind, groups in (("exact", result.duplicate_groups), ("near", result.near_duplicate_groups),
                         ("conflicting answers", result.conflict_groups)):
        for g in sorted(groups, key=len, reverse=True)[:n]:
            rows.append({"kind": kind, "records": len(g), "where": ", ".join(result.where(i) for i in g[:6]) +
                         (" …" if len(g) > 6 else "")})
    return rows


def duplicates_findings(result: AuditResult) -> list[tuple]:
    d = result.stats["duplicates"]
    n = result.n_valid or 1
    out = []
    if d["exact_extra_copies"]:
        out.append(("warning", "data.exact_duplicates", f"{d['exact_extra_copies']:,} records ({_pct(d['exact_extra_copies'], n)}) "
                    f"are exact copies of another ({d['exact_groups']:,} groups); only the first copy is kept.",
                    "Ask the client why records repeat: a broken export, or real repetition that should be weighted on purpose."))
    if d["near_groups"]:
        out.append(("info", "data.near_duplicates", f"{d['near_records']:,} records form {d['near_groups']:,} near-duplicate "
                    f"groups (Jaccard >= {result.options.near_duplicate_threshold}); "
                    f"each group stays in one split so the test set measures generalisation.", ""))
    if d["conflict_groups"]:
        out.append(("warning", "data.conflicts", f"{d['conflict_groups']:,} prompts have different answers in different "
                    f"records: the model is taught to guess between them.", "Have the client decide the right answer for each group."))
    if result.leaked:
        out.append(("warning", "data.leakage", f"{len(result.leaked):,} training records also appear (exactly or nearly) in "
                    f"the client's test file; they were dropped from training.", "Tell the client their test set overlaps the training data."))
    return out or [("info", "data.no_duplicates", "No duplicates, near-duplicates or conflicting answers found.", "")]


def duplicates_figure(result: AuditResult):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.8))
    d = result.stats["duplicates"]
    names = ["exact copies", "near-dup records", "conflict groups", "leaked (train∩test)"]
    values = [d["exact_extra_copies"], d["near_records"], d["conflict_groups"], len(result.leaked)]
    if not any(values):  # an empty bar chart gets a meaningless -0.04..0.04 axis: say it instead
        ax.axis("off")
        ax.text(0.5, 0.5, "Duplicates and leakage: none", ha="center", va="center", fontsize=12)
        fig.tight_layout()
        return fig
    ax.barh(names, values, color=["#c0392b", "#e67e22", "#8e44ad", "#2c3e50"])
    ax.set_xlabel("records / groups")
    ax.set_title("Duplicates and leakage")
    fig.tight_layout()
    return fig


# -- 4. PII -----------------------------------------------------------------------------------------------------

def pii_table(result: AuditResult) -> list[dict]:
    counts = Counter(h["kind"] for h in result.pii_hits())
    return [{"kind": k, "records": v, "severity": CHECKS[f"pii.{k}"].severity, "what to do": CHECKS[f"pii.{k}"].fix}
            for k, v in counts.most_common()]


def pii_findings(result: AuditResult, config) -> list[tuple]:
    counts = Counter(h["kind"] for h in result.pii_hits())
    if not counts:
        return [("info", "data.no_pii", "The PII scan found no e-mail addresses, phone numbers, card numbers, IBANs, "
                 "national IDs, IP addresses or credentials (it does not detect names or postal addresses).", "")]
    records = len({(h["file"], h["line"]) for h in result.pii_hits()})
    kinds = ", ".join(f"{k} ({v})" for k, v in counts.most_common())
    frameworks = sorted(PERSONAL_DATA_FRAMEWORKS & set(config.compliance.frameworks))
    if config.data.redact_pii:
        return [("info", "data.pii_redacted", f"{records:,} records contain PII ({kinds}); redacted copies of the splits "
                 f"are in redacted/.", "Train on the redacted splits.")]
    regime = f" {', '.join(f.upper() for f in frameworks)} applies to this engagement." if frameworks else ""
    return [("warning", "data.pii", f"{records:,} records contain PII: {kinds}.{regime}",
             "Set data.redact_pii: true and re-run, or get the client's written confirmation that training on it is lawful.")]


# -- 5. tokens and label coverage ------------------------------------------------------------------------------

def _token_metas(result: AuditResult) -> list[dict]:
    return [m for m in result.metas if m.get("valid") and m.get("n_tokens") is not None]


def token_figure(result: AuditResult, max_seq_length: int):
    """Histograms of tokens per example and per role (log-scaled counts), with the max_seq_length line."""
    import matplotlib.pyplot as plt

    metas = _token_metas(result)
    roles = [r for r in ("system", "user", "assistant", "tool") if any(m["tokens_per_role"].get(r) for m in metas)]
    fig, axes = plt.subplots(1, 1 + len(roles), figsize=(3.2 * (1 + len(roles)), 2.8), squeeze=False)
    series = [("whole example", [m["n_tokens"] for m in metas])] + \
        [(r, [m["tokens_per_role"].get(r, 0) for m in metas]) for r in roles]
    for ax, (name, values) in zip(axes[0], series):
        ax.hist(values, bins=40, color="#2980b9")
        ax.set_title(f"{name} (tokens)", fontsize=9)
        ax.set_yscale("log")
        if name == "whole example":
            ax.axvline(max_seq_length, color="#c0392b", linestyle="--", label="max_seq_length")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def token_findings(result: AuditResult, max_seq_length: int) -> list[tuple]:
    metas = _token_metas(result)
    if not metas:
        return []
    counts = [m["n_tokens"] for m in metas]
    too_long = sum(1 for c in counts if c > max_seq_length)
    suggested = suggest_max_seq_length(counts)
    out = []
    if too_long:
        out.append(("warning", "data.too_long", f"{too_long:,} examples ({_pct(too_long, len(counts))}) exceed "
                    f"max_seq_length {max_seq_length:,} tokens and would be truncated.",
                    f"Raise data.max_seq_length to {suggested:,} (covers 99 % of examples) or drop them."))
    else:
        out.append(("info", "data.lengths", f"Every example fits max_seq_length {max_seq_length:,}; the longest has "
                    f"{max(counts):,} tokens, 99 % have at most {suggested:,}.", ""))
    label_errors = sum(1 for i in result.issues
                       if i.code in ("labels.empty", "labels.no_end_of_turn", "labels.nothing_trained"))
    out.append(("blocking" if label_errors and label_errors >= LABEL_ERROR_BLOCK_SHARE * (len(metas) + label_errors) else
                ("warning" if label_errors else "info"), "data.label_coverage",
                f"Label coverage: {len(metas):,} examples train on their answers including the end-of-turn token; "
                f"{label_errors:,} would train on nothing or never learn to stop.",
                "Check the chat template and the assistant turns of the flagged lines." if label_errors else ""))
    return out


def tokens_section(result: AuditResult, max_seq_length: int):
    """Section 5: token counts per example and role (table, figure) and the length / label-coverage findings."""
    from ftkit.section import Section

    sec = Section()
    if result.stats.get("tokens_per_example"):
        sec.table([{"": k, **v} for k, v in [("example", result.stats["tokens_per_example"])]
                   + list(result.stats["tokens_per_role"].items())])
        sec.figures.append(("tokens", token_figure(result, max_seq_length)))
    return sec.add(*token_findings(result, max_seq_length))


def consistency_section(result: AuditResult, config):
    """Section 6: the label figure (when there are labels) and the consistency findings."""
    from ftkit.section import Section

    sec = Section()
    if result.stats["labels"].get("n_labels"):
        sec.figures.append(("labels", label_figure(result)))
    return sec.add(*consistency_findings(result, config))


# -- 6. labels and consistency --------------------------------------------------------------------------------

def label_figure(result: AuditResult, top: int = 30):
    import matplotlib.pyplot as plt

    counts = result.stats["labels"].get("counts", {})
    items = list(counts.items())[:top]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * len(items) + 1)))
    ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color="#16a085")
    ax.set_xlabel("examples")
    ax.set_title("Label distribution" + (f" (top {top} of {len(counts)})" if len(counts) > top else ""))
    fig.tight_layout()
    return fig


def consistency_findings(result: AuditResult, config) -> list[tuple]:
    s = result.stats
    out = []
    labels = s["labels"]
    if labels.get("n_labels"):
        ratio = labels["imbalance_ratio"]
        sev = "warning" if ratio >= IMBALANCE_WARN else "info"
        counts = labels["counts"]
        if ratio == 1:
            text = f"{labels['n_labels']} labels, balanced: {counts[labels['largest']]:,} examples each."
        else:
            text = (f"{labels['n_labels']} labels; the largest ('{labels['largest']}', {counts[labels['largest']]:,}) is "
                    f"{ratio}x the smallest ('{labels['smallest']}', {counts[labels['smallest']]:,}).")
        out.append((sev, "data.imbalance", text,
                    "Collect more examples of the rare labels, or report per-class metrics." if sev == "warning" else ""))
    elif config.task.type == "classification" or config.task.label_field:
        out.append(("warning", "data.no_labels", "No labels could be derived, so splits are not stratified.",
                    "Check task.label_field / the answers."))
    sp = s["system_prompts"]
    if sp["distinct"] > 1:
        out.append(("warning" if sp["distinct"] > SYSTEM_PROMPTS_WARN else "info", "data.system_prompts",
                    f"{sp['distinct']} distinct system prompts; the most common is used in "
                    f"{sp['top'][0]['count']:,} examples.", "Use one system prompt (task.system_prompt) everywhere "
                    "unless the variation is intended."))
    scripts = s.get("scripts", {})
    if len(scripts) > 1:
        main = next(iter(scripts))
        out.append(("info", "data.scripts", f"Scripts: " + ", ".join(f"{k} {v}" for k, v in scripts.items()) +
                    f"; {main} dominates.", ""))
    out += settings_findings(config)
    answers = s["answer_chars"]
    out.append(("info", "data.answer_lengths", f"Answers have a median of {answers['p50']:.0f} characters "
                f"(90 % at most {answers['p90']:.0f}, longest {answers['max']:,}).", ""))
    return out


# -- 7. splits, data card, cost -----------------------------------------------------------------------------------

def write_outputs(run, result: AuditResult, verdict: str) -> dict:
    """train/validation/test.jsonl, issues.csv, stats.json and data_card.md into the run folder."""
    from ftkit.data.datacard import render_data_card
    from ftkit.fsutil import atomic_write_text

    from ftkit.data.corrections import write_log

    paths = result.write_outputs(run.run_dir)
    if result.corrections is not None and write_log(run.run_dir, result.corrections):
        paths["corrections.jsonl"] = run.run_dir / "corrections.jsonl"
    c = run.config
    card = render_data_card(result.stats, {
        "client": c.client.name or run.engagement.slug, "objective": c.objective, "task_type": c.task.type,
        "files": [Path(f.path).name for f in result.files], "frameworks": c.compliance.frameworks,
        "redact_pii": c.data.redact_pii, "verdict": verdict,
        "corrections": result.corrections.summary() if result.corrections is not None else {}})
    paths["data_card.md"] = atomic_write_text(run.run_dir / "data_card.md", card)
    return paths


def splits_table(result: AuditResult) -> list[dict]:
    by = Counter((result.splits[i], result.metas[i].get("label")) for i in result.splits)
    labels = sorted({lab for _, lab in by}, key=str)
    rows = []
    for lab in labels[:40]:
        rows.append({"label": "(none)" if lab is None else lab,
                     **{name: by.get((name, lab), 0) for name in ("train", "validation", "test")}})
    rows.append({"label": "total", **{name: sum(v for (n, _), v in by.items() if n == name)
                                     for name in ("train", "validation", "test")}})
    return rows


def splits_findings(result: AuditResult) -> list[tuple]:
    c = result.split_counts()
    train, val, test = c.get("train", 0), c.get("validation", 0), c.get("test", 0)
    out = [("info", "data.splits", f"Splits: {train:,} train, {val:,} validation, {test:,} test (seeded, stratified by "
            f"label where there is one, near-duplicate groups kept together).", "")]
    if 0 < test < MIN_TEST_FOR_CI:
        half = 98 / (2 * test ** 0.5)  # 95 % Wald half-width at 50 % accuracy, in points: 1.96 * sqrt(.25 / n)
        out.append(("warning", "data.small_test", f"The test split has {test:,} examples: a 95 % confidence interval on "
                    f"accuracy is about +-{half:.0f} points, too wide to tell a fine-tune from the baseline.",
                    f"Raise data.split.test or ask the client for at least {MIN_TEST_FOR_CI} test examples."))
    return out


NON_CLIENT_SHARE_WARN = 0.5  # share (0-1) of the training split from other sources (synthetic, uat) above which
#                             the model would learn more from the teacher or testers than from the client's data


def sources_table(result: AuditResult) -> list[dict]:
    """Examples per source (``client`` = the client's own) per split."""
    per_split = (result.stats.get("sources") or {}).get("per_split") or {}
    names = sorted({s for c in per_split.values() for s in c})
    return [{"source": name, **{split: per_split.get(split, {}).get(name, 0) for split in ("train", "validation", "test")}}
            for name in names]


def sources_finding(per_split: dict) -> tuple:
    """The training split's share from other sources; a warning above NON_CLIENT_SHARE_WARN."""
    train = per_split.get("train") or {}
    total = sum(train.values())
    other = total - train.get("client", 0)
    held_out = sum(n for split in ("validation", "test") for s, n in (per_split.get(split) or {}).items() if s != "client")
    if not other and not held_out:
        return ("info", "data.sources", "Every example is the client's own (no synthetic or UAT records).", "")
    what = ", ".join(f"{n:,} {s}" for s, n in sorted(train.items()) if s != "client")
    share = other / total if total else 0.0
    tail = (f" {held_out:,} such record(s) are in a client test file: the evaluation leaves them out."
            if held_out else " Validation and test are the client's own.")
    message = f"{other:,} of {total:,} training examples ({share:.1%}) are not the client's own ({what}).{tail}"
    if share > NON_CLIENT_SHARE_WARN:
        return ("warning", "data.mostly_synthetic", message, "Collect more of the client's own examples, or accept "
                "fewer synthetic ones: the model would learn the teacher's style more than the client's.")
    return ("info", "data.sources", message, "")


def sources_section(result: AuditResult):
    """Where the examples came from: the client's own, synthetic (`ftkit augment`), UAT; per split."""
    from ftkit.section import Section

    per_split = (result.stats.get("sources") or {}).get("per_split") or {}
    return Section().table(sources_table(result)).add(sources_finding(per_split))


def augmentation(run, result: AuditResult, enabled: bool = False):
    """Optional, off by default: `ftkit augment`'s first step on this run's splits (teacher candidates for thin
    labels, filtered, a review sheet under this run's augmentation/ folder). value: its summary (or None)."""
    from ftkit.findings import Finding
    from ftkit.section import Section

    if not enabled:
        return Section(notes=["Not run (notebook parameter augment is off): run `ftkit augment "
                              f"{run.engagement.slug}` after the audit for teacher-drafted candidates."])
    from ftkit.augmentation.command import describe, generate_in_run

    summary = generate_in_run(run, result)
    return Section(value=summary, notes=describe(summary, run.engagement)).add(
        *[Finding(**f) for f in summary.get("findings", [])])


def settings_findings(config) -> list[tuple]:
    """Empty settings a reader would notice: no objective, no system prompt."""
    out = []
    if not (config.objective or "").strip():
        out.append(("warning", "data.no_objective", "engagement.yaml has no objective, so the data card and the "
                    "report cannot say what the data is for.", "Write one sentence in objective: what the model must do."))
    if not (config.task.system_prompt or "").strip():
        out.append(("info", "data.no_system_prompt", "task.system_prompt is empty: baseline, training and serving "
                    "use no system prompt (records' own system messages still apply).",
                    "Set task.system_prompt if the model should be told its task."))
    return out


def cost_estimate(result: AuditResult, config) -> dict:
    """Managed fine-tuning and self-hosted estimates for the training split."""
    from ftkit.data.cost import cost_summary, load_prices

    train_tokens = [result.metas[i]["n_tokens"] for i, s in result.splits.items()
                    if s == "train" and result.metas[i].get("n_tokens") is not None]
    params = config.suitability.base_model_params_b * 1e9 or _params_of(config)
    return cost_summary(train_tokens, params, config.training.epochs, load_prices())


def _params_of(config) -> float:
    try:
        from ftkit.data.cost import params_from_config
        from ftkit.fsutil import read_json
        from ftkit.models.resolve import resolve_model

        source = resolve_model(config.base_model.id, config.base_model.revision)
        return params_from_config(read_json(Path(source.path) / "config.json"))
    except Exception:  # noqa: BLE001 - the estimate is optional; the table then shows managed prices only
        return 0.0


def cost_table(cost: dict) -> list[dict]:
    rows = [{"option": f"{r['provider']}: {r['model']}", "epochs": r["epochs"], "billed tokens": r["billed_tokens"],
             "USD": r["usd"], "price date": r["as_of"]} for r in cost["managed"]]
    rows += [{"option": f"self-hosted {r['gpu']}", "epochs": "", "billed tokens": "", "USD": r["usd"],
              "price date": r["as_of"]} for r in cost["self_hosted"]]
    return rows


def cost_findings(cost: dict) -> list[tuple]:
    if not cost["managed"]:
        return []
    cheap, dear = cost["managed"][0], cost["managed"][-1]
    out = [("info", "data.cost", f"Managed fine-tuning of {cost['training_tokens_per_epoch']:,} tokens per epoch: "
            f"${cheap['usd']:,} ({cheap['provider']} {cheap['model']}, {cheap['epochs']} epochs) to ${dear['usd']:,} "
            f"({dear['provider']} {dear['model']}); prices as of {cost['prices_as_of']}.", "")]
    if cost["prices_stale"]:
        out.append(("warning", "data.prices_stale", f"The price table is {cost['prices_age_days']} days old.",
                    "Update templates/prices.yaml from the sources listed in it before quoting costs."))
    return out


# -- verdict ----------------------------------------------------------------------------------------------------

def verdict(result: AuditResult, config, findings) -> dict:
    """ready / ready_with_warnings / blocked, with the blocking reasons (from the blocking findings and counts)."""
    reasons = [f.message for f in findings if f.severity == "blocking"]
    c = result.split_counts()
    n_train = c.get("train", 0)
    if n_train + c.get("validation", 0) < config.data.min_examples:
        reasons.append(f"only {n_train + c.get('validation', 0):,} usable training examples; data.min_examples is "
                       f"{config.data.min_examples:,}")
    if not c.get("test"):
        reasons.append("the test split is empty, so nothing can be evaluated")
    warned = any(f.severity == "warning" and f.code not in NOT_ABOUT_THE_DATA for f in findings)
    name = "blocked" if reasons else ("ready_with_warnings" if warned else "ready")
    return {"verdict": name, "blocking_reasons": reasons}


# -- sections 7 and the verdict as the contract of ftkit.section --------------------------------------------------

def splits_and_cost(result: AuditResult, config):
    """Section 7: split sizes per label and the cost estimate. value: the cost estimate (dict)."""
    from ftkit.section import Section

    cost = cost_estimate(result, config)
    sec = Section(value=cost).table(splits_table(result)).add(*splits_findings(result))
    return sec.table(cost_table(cost)).add(*cost_findings(cost))


@dataclass
class DataAuditResults(PhaseResults):
    """What the data audit hands to baseline, training and the report (results.json ``results``)."""

    PHASE = "data_audit"
    SCHEMA_VERSION = 1

    verdict: str = described("ready | ready_with_warnings | blocked (the data card states the same)")
    blocking_reasons: list = described("why the audit is blocked (empty unless blocked)")
    stats: dict = described("profile of the valid records: counts, token and character distributions, labels, "
                            "duplicates, personal data", "tokens of the base model's tokenizer")
    issue_counts: dict = described("issues per check code and level")
    splits: dict = described("examples per split (train, validation, test)", "examples")
    cost: dict = described("managed and self-hosted fine-tuning estimates", "USD")
    files: dict = described("artefacts of this run (splits, issues.csv, data_card.md), relative to the run folder")
    max_seq_length_suggested: int = described("the smallest round length covering the valid examples' token "
                                              "counts; training uses it when training.max_seq_length is 0", "tokens")
    corrections: dict = described("the review sheets applied (data.corrections): sheets with sha256, fixed, "
                                  "dropped, kept, test_changed and the test changes; empty when none",
                                  "records", default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.verdict == "blocked"

    def headline_row(self) -> dict:
        return {"verdict": self.verdict, "n_valid": self.stats["n_valid"], "n_train": self.splits.get("train", 0),
                "n_test": self.splits.get("test", 0)}


def results(run, result: AuditResult, decision: dict, cost: dict, paths: dict) -> DataAuditResults:
    """The typed results; ``decision`` is :func:`verdict`'s, the same one the data card was written with."""
    lengths = [m["n_tokens"] for m in result.metas if m.get("valid") and m.get("n_tokens")] or [0]
    return DataAuditResults(
        verdict=decision["verdict"], blocking_reasons=decision["blocking_reasons"], stats=result.stats,
        issue_counts=result.issue_counts(), splits=result.split_counts(), cost=cost,
        files={name: str(p.relative_to(run.run_dir)) for name, p in paths.items()},
        max_seq_length_suggested=suggest_max_seq_length(lengths),
        corrections=result.corrections.summary() if result.corrections is not None else {})


TELL_CLIENT = {"ready": "The data is ready for fine-tuning.",
               "ready_with_warnings": "The data can be used, with the issues listed in issues.csv worth fixing for "
                                      "the next round.",
               "blocked": "The data cannot be used yet: {reasons}."}


def summary(r: DataAuditResults) -> str:
    return f"{r.stats['n_valid']:,} of {r.stats['n_records']:,} records valid; verdict {r.verdict}."


def what_to_tell_the_client(r: DataAuditResults) -> str:
    tell = TELL_CLIENT[r.verdict].format(reasons="; ".join(r.blocking_reasons))
    return tell + (f" {r.stats['n_errors']:,} errors and {r.stats['n_warnings']:,} warnings are listed line by line "
                   f"in issues.csv.")


def next_steps(r: DataAuditResults) -> list[str]:
    if r.blocked:
        return ["Send issues.csv to the client and re-run the audit on the corrected file."]
    return ["Review the warnings in issues.csv with the client.", "Run the baseline phase on the test split."]


def blocks_downstream(r: DataAuditResults) -> str:
    """The reason later phases are refused (empty unless blocked)."""
    return "; ".join(r.blocking_reasons) if r.blocked else ""
