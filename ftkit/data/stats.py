"""Profiles of the audited data: sizes, tokens per role, answer lengths, labels, system prompts, scripts.

Everything here works on the per-record metadata the audit collects (plain dicts), never on the texts, so
profiling 100k records costs milliseconds.

>>> percentiles([1, 2, 3, 4, 100])["p50"]
3.0
"""
from __future__ import annotations

import re
from collections import Counter

_SCRIPTS = {  # Unicode blocks -> script name; ASCII text is "Latin"
    "Latin (accented)": re.compile(r"[\u00c0-\u024f]"),
    "Greek": re.compile(r"[\u0370-\u03ff]"),
    "Cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "Hebrew": re.compile(r"[\u0590-\u05ff]"),
    "Arabic": re.compile(r"[\u0600-\u06ff]"),
    "Devanagari": re.compile(r"[\u0900-\u097f]"),
    "Thai": re.compile(r"[\u0e00-\u0e7f]"),
    "Japanese kana": re.compile(r"[\u3040-\u30ff]"),
    "CJK": re.compile(r"[\u4e00-\u9fff]"),
    "Hangul": re.compile(r"[\uac00-\ud7af]"),
    "Emoji/symbols": re.compile(r"[\U0001f300-\U0001faff\u2600-\u27bf]"),
}


def dominant_script(text: str, sample: int = 2000) -> str:
    """The script most non-ASCII letters of ``text`` belong to ('Latin' when (nearly) all ASCII).

    >>> dominant_script("hello"), dominant_script("привет мир"), dominant_script("中文文本")
    ('Latin', 'Cyrillic', 'CJK')
    >>> dominant_script("日本語のテキスト")  # 3 kanji, 5 kana
    'Japanese kana'
    """
    text = text[:sample]
    if text.isascii():
        return "Latin"
    counts = {name: len(rx.findall(text)) for name, rx in _SCRIPTS.items()}
    name = max(counts, key=lambda k: counts[k])
    letters = sum(c.isalpha() for c in text) or 1
    if counts[name] < 0.05 * letters:
        return "Latin"
    return "Latin" if name == "Latin (accented)" and counts[name] < 0.3 * letters else name


def percentiles(values: list[float]) -> dict:
    """n, mean, min, p50, p90, p99, max of ``values`` (nearest-rank on the sorted list)."""
    if not values:
        return {"n": 0, "mean": 0.0, "min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return float(ordered[min(n - 1, max(0, int(round(q * (n - 1)))))])

    return {"n": n, "mean": round(sum(ordered) / n, 2), "min": ordered[0], "p50": rank(0.5), "p90": rank(0.9),
            "p99": rank(0.99), "max": ordered[-1]}


def label_profile(labels: list[str | None]) -> dict:
    """Label counts (most common first), number of labels, imbalance (largest / smallest class)."""
    counts = Counter(lab for lab in labels if lab is not None)
    if not counts:
        return {"n_labels": 0, "counts": {}, "imbalance_ratio": None, "unlabelled": len(labels)}
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"n_labels": len(counts), "counts": ordered,
            "imbalance_ratio": round(max(counts.values()) / min(counts.values()), 2),
            "smallest": min(ordered, key=lambda k: (ordered[k], k)), "largest": next(iter(ordered)),
            "unlabelled": sum(1 for lab in labels if lab is None)}


class ProfileColumns:
    """The profile's inputs as columns, filled one valid record at a time (``add(meta)``) and mergeable, so
    the audit's workers collect them for their chunks in parallel and the parent only concatenates lists.

    >>> cols = ProfileColumns()
    >>> cols.add({"n_messages": 2, "n_turns": 1, "answer_chars": 5, "label": "a", "system_excerpt": None,
    ...           "script": "Latin", "chars": {"user": 3, "assistant": 5}})
    >>> profile_from(cols)["chars_per_role"]["user"]["max"]
    3
    """

    def __init__(self):
        self.n = 0
        self.n_messages: list[int] = []
        self.n_turns: list[int] = []
        self.answer_chars: list[int] = []
        self.labels: list[str | None] = []
        self.systems: Counter = Counter()
        self.without_system = 0
        self.scripts: Counter = Counter()
        self.chars: dict[str, list[int]] = {}  # role -> chars per record (0 where the role is absent)
        self.n_tokens: list[int] = []  # only records with token counts, in this and the lists below
        self.answer_tokens: list[int] = []
        self.label_tokens: list[int] = []
        self.tokens_per_role: dict[str, list[int]] = {}

    def add(self, m: dict) -> None:
        self.n_messages.append(m["n_messages"])
        self.n_turns.append(m["n_turns"])
        self.answer_chars.append(m["answer_chars"])
        self.labels.append(m["label"])
        if m["system_excerpt"] is None:
            self.without_system += 1
        else:
            self.systems[m["system_excerpt"]] += 1
        self.scripts[m["script"]] += 1
        _add_row(self.chars, m["chars"], self.n)
        self.n += 1
        if m.get("n_tokens") is not None:
            _add_row(self.tokens_per_role, m["tokens_per_role"], len(self.n_tokens))
            self.n_tokens.append(m["n_tokens"])
            self.answer_tokens.append(m["answer_tokens"])
            self.label_tokens.append(m["n_label_tokens"])

    def merge(self, other: "ProfileColumns") -> None:
        for name in ("n_messages", "n_turns", "answer_chars", "labels"):
            getattr(self, name).extend(getattr(other, name))
        self.systems.update(other.systems)
        self.scripts.update(other.scripts)
        self.without_system += other.without_system
        _merge_rows(self.chars, other.chars, self.n, other.n)
        _merge_rows(self.tokens_per_role, other.tokens_per_role, len(self.n_tokens), len(other.n_tokens))
        self.n += other.n
        for name in ("n_tokens", "answer_tokens", "label_tokens"):
            getattr(self, name).extend(getattr(other, name))


def _add_row(columns: dict[str, list[int]], row: dict[str, int], n_before: int) -> None:
    for role in row:
        if role not in columns:
            columns[role] = [0] * n_before  # a role first seen now: earlier records had none of it
    for role, values in columns.items():
        values.append(row.get(role, 0))


def _merge_rows(columns: dict[str, list[int]], other: dict[str, list[int]], n_self: int, n_other: int) -> None:
    for role in set(columns) | set(other):
        columns.setdefault(role, [0] * n_self).extend(other.get(role) or [0] * n_other)


def profile(metas: list[dict]) -> dict:
    """The stats.json block for a list of valid-record metadata dicts (see ftkit.data.audit)."""
    cols = ProfileColumns()
    for m in metas:
        cols.add(m)
    return profile_from(cols)


def profile_from(cols: ProfileColumns) -> dict:
    """The stats.json block from collected :class:`ProfileColumns`."""
    token_roles = sorted(cols.tokens_per_role)
    roles = sorted(set(cols.chars) | set(token_roles))
    out = {
        "n_examples": cols.n,
        "messages_per_example": percentiles(cols.n_messages),
        "multi_turn_share": round(sum(1 for t in cols.n_turns if t > 1) / cols.n, 4) if cols.n else 0.0,
        "chars_per_role": {r: percentiles(cols.chars.get(r) or [0] * cols.n) for r in roles if r != "template"},
        "answer_chars": percentiles(cols.answer_chars),
        "labels": label_profile(cols.labels),
        "system_prompts": {"distinct": len(cols.systems), "without_system": cols.without_system,
                           "top": [{"excerpt": k, "count": v} for k, v in cols.systems.most_common(5)]},
        "scripts": dict(cols.scripts.most_common()),
    }
    if cols.n_tokens:
        out["tokens_per_example"] = percentiles(cols.n_tokens)
        out["tokens_per_role"] = {r: percentiles(cols.tokens_per_role[r]) for r in token_roles}
        out["answer_tokens"] = percentiles(cols.answer_tokens)
        out["label_tokens_per_example"] = percentiles(cols.label_tokens)
        out["total_tokens"] = sum(cols.n_tokens)
    return out


def suggest_max_seq_length(token_counts: list[int], quantile: float = 0.99, step: int = 256) -> int:
    """The smallest multiple of ``step`` covering ``quantile`` of examples.

    >>> suggest_max_seq_length([100, 200, 300, 900])
    1024
    """
    if not token_counts:
        return step
    need = percentiles(token_counts)["p99" if quantile >= 0.99 else "p90"]
    return int(-(-need // step) * step)
