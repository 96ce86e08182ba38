"""A data card: the Datasheets for Datasets questions (Gebru et al., 2021, https://arxiv.org/abs/1803.09010)
answered from the audit's numbers and ``engagement.yaml``; what only the client can answer is marked as such.

>>> "## Composition" in render_data_card({"n_records": 3, "n_valid": 3, "labels": {}, "splits": {}}, {})
True
"""
from __future__ import annotations

ASK_CLIENT = "_To be answered by the client._"


def _labels_line(stats: dict) -> str:
    labels = stats.get("labels") or {}
    if not labels.get("n_labels"):
        return "No class labels (free-text answers)."
    top = ", ".join(f"{k} ({v})" for k, v in list(labels["counts"].items())[:8])
    return (f"{labels['n_labels']} labels; largest/smallest class ratio {labels['imbalance_ratio']}. "
            f"Most frequent: {top}.")


def _sources_line(stats: dict) -> str:
    """The share of each source per split and per label (the client's own records have no ``source``)."""
    sources = stats.get("sources") or {}
    per_split = sources.get("per_split") or {}
    if not per_split or sources.get("sources", ["client"]) == ["client"]:
        return "No: every record is the client's own (no record carries a `source`)."
    def share(counts: dict) -> str:
        total = sum(counts.values()) or 1
        return ", ".join(f"{k} {v:,} ({100 * v / total:.1f} %)" for k, v in counts.items())
    parts = [f"{name}: {share(c)}" for name, c in per_split.items()]
    labels = [f"{lab}: {share(c)}" for lab, c in (sources.get("train_per_label") or {}).items()
              if set(c) != {"client"}]
    return ("Per split: " + "; ".join(parts) + "." + (" Training split per label: " + "; ".join(labels) + "."
            if labels else "") + " Synthetic (`ftkit augment`, teacher-drafted and reviewed by people) and UAT "
            "records are training data only; validation and test are the client's own, and the evaluation scores "
            "the client's own test examples only.")


def _corrections_line(c: dict) -> str:
    if not c.get("sheets"):
        return "No review sheets were applied."
    sheets = ", ".join(f"`{s['path']}` (sha256 {s['sha256'][:12]})" for s in c["sheets"])
    return (f"{c['fixed']:,} answers corrected and {c['dropped']:,} records dropped by the client's review "
            f"({sheets}); {c['kept']:,} reviewed and kept; {c['test_changed']:,} of the changes are in the test split. "
            f"Every change is listed in corrections.jsonl; the delivered files are unchanged.")


def render_data_card(stats: dict, context: dict) -> str:
    """Markdown data card. ``context``: client, objective, task_type, files, frameworks, redact_pii, verdict."""
    dups = stats.get("duplicates", {})
    pii = stats.get("pii", {})
    tokens = stats.get("tokens_per_example", {})
    splits = stats.get("splits", {})
    files = ", ".join(f"`{f}`" for f in context.get("files", [])) or "(none)"
    sections = {
        "Motivation": [
            ("For what purpose was the dataset created?", context.get("objective") or ASK_CLIENT),
            ("Who created it, and on behalf of whom?", f"{context.get('client') or 'The client'}; " + ASK_CLIENT),
        ],
        "Composition": [
            ("What do the instances represent?", f"Conversations for a `{context.get('task_type', 'chat')}` task, "
             f"normalised to chat messages (system/user/assistant)."),
            ("How many instances are there?", f"{stats.get('n_records', 0):,} records delivered in {files}; "
             f"{stats.get('n_valid', 0):,} passed the checks."),
            ("Is there a label or target for each instance?", _labels_line(stats)),
            ("Is any of the data synthetic or from sources other than the client?", _sources_line(stats)),
            ("Are there recommended data splits?", "Train/validation/test written by the audit: " +
             (", ".join(f"{k} {v:,}" for k, v in splits.items()) or "none") + " (seeded, stratified, near-duplicate "
             "groups kept together)."),
            ("Are there errors, sources of noise, or redundancies?",
             f"{stats.get('n_errors', 0):,} errors and {stats.get('n_warnings', 0):,} warnings (see issues.csv); "
             f"{dups.get('exact_extra_copies', 0):,} exact duplicate copies, {dups.get('near_groups', 0):,} "
             f"near-duplicate groups, {dups.get('conflict_groups', 0):,} prompts with conflicting answers."),
            ("Does the dataset contain data that might be considered confidential (e.g. personal data)?",
             ("PII found: " + ", ".join(f"{k} in {v} record(s)" for k, v in sorted(pii.items())) + "."
              if pii else "No PII detected by the automatic scan (which does not find names or addresses).")
             + (" A redacted copy of the splits was written." if context.get("redact_pii") else "")),
            ("How long are the instances?", f"Median {tokens.get('p50', '?')} tokens, 99th percentile "
             f"{tokens.get('p99', '?')}, longest {tokens.get('max', '?')} (base model tokenizer)." if tokens
             else "Token counts not computed (no tokenizer)."),
            ("Languages / scripts", ", ".join(f"{k} {v}" for k, v in (stats.get("scripts") or {}).items()) or "n/a"),
        ],
        "Collection process": [
            ("How was the data collected, over what timeframe, and with whose consent?", ASK_CLIENT),
        ],
        "Preprocessing / cleaning / labelling": [
            ("What preprocessing was done?", "Normalised to chat messages; records with errors excluded; exact "
             "duplicates reduced to one copy; training records also in the client's test set dropped from training."),
            ("Who labelled the data and how was quality controlled?", ASK_CLIENT),
            ("Were labels corrected after review?", _corrections_line(context.get("corrections") or {})),
        ],
        "Uses": [
            ("What tasks should the dataset be used for?", f"Fine-tuning for: {context.get('objective') or ASK_CLIENT}"),
            ("Are there uses it should not be used for?", ASK_CLIENT),
        ],
        "Distribution and maintenance": [
            ("Regulatory constraints", ", ".join(context.get("frameworks") or []) or "none stated"),
            ("Who maintains the data, and how will it be updated?", ASK_CLIENT),
        ],
    }
    lines = [f"# Data card: {context.get('client') or 'client data'}", "",
             f"Audit verdict: **{context.get('verdict', 'n/a')}**. Answers are computed from the data audit and "
             f"engagement.yaml; questions only the client can answer are marked.", ""]
    for title, qas in sections.items():
        lines += [f"## {title}", ""]
        for q, a in qas:
            lines += [f"**{q}**", "", a, ""]
    return "\n".join(lines)
