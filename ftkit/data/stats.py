"""Profiles of the audited data: sizes, tokens per role, answer lengths, labels, system prompts, scripts.

Everything here works on the per-record metadata the audit collects (plain dicts), never on the texts, so
profiling 100k records costs milliseconds.

>>> percentiles([1, 2, 3, 4, 100])["p50"]
3.0
"""
from __future__ import annotations

import re
from collections import Counter

from ftkit.data.formats import CHAT_ROLES

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


ROLES = CHAT_ROLES  # every message is normalised to one of these
TOKEN_ROLES = ROLES + ("template",)  # tokens the chat template adds around the messages


class ProfileColumns:
    """The profile's inputs, one tuple per valid record (``add(meta)``), mergeable: the audit's workers
    collect them for their chunks and the parent only concatenates lists; columns come from one C-level
    transpose (``zip(*rows)``) at the end, not from ~15 passes over 100k dicts.

    >>> cols = ProfileColumns()
    >>> cols.add({"n_messages": 2, "n_turns": 1, "answer_chars": 5, "label": "a", "system_excerpt": None,
    ...           "script": "Latin", "chars": {"user": 3, "assistant": 5}})
    >>> profile_from(cols)["chars_per_role"]["user"]["max"]
    3
    """

    def __init__(self):
        # (n_messages, n_turns, answer_chars, label, system_excerpt, script, *chars per role in ROLES)
        self.rows: list[tuple] = []
        self.token_rows: list[tuple] = []  # (n_tokens, answer_tokens, n_label_tokens, *tokens per role in TOKEN_ROLES)
        self.roles: set[str] = set()  # roles seen at all (a column of zeros is not a role)
        self.token_roles: set[str] = set()

    @property
    def n(self) -> int:
        return len(self.rows)

    def add(self, m: dict) -> None:
        chars = m["chars"]
        self.roles.update(chars)
        self.rows.append((m["n_messages"], m["n_turns"], m["answer_chars"], m["label"], m["system_excerpt"],
                          m["script"], *[chars.get(r, 0) for r in ROLES]))
        if m.get("n_tokens") is not None:
            per_role = m["tokens_per_role"]
            self.token_roles.update(per_role)
            self.token_rows.append((m["n_tokens"], m["answer_tokens"], m["n_label_tokens"],
                                    *[per_role.get(r, 0) for r in TOKEN_ROLES]))

    def merge(self, other: "ProfileColumns") -> None:
        self.rows += other.rows
        self.token_rows += other.token_rows
        self.roles |= other.roles
        self.token_roles |= other.token_roles


def profile(metas: list[dict]) -> dict:
    """The stats.json block for a list of valid-record metadata dicts (see ftkit.data.audit_files)."""
    cols = ProfileColumns()
    for m in metas:
        cols.add(m)
    return profile_from(cols)


def profile_from(cols: ProfileColumns) -> dict:
    """The stats.json block from collected :class:`ProfileColumns`."""
    n = cols.n
    columns = list(zip(*cols.rows)) if n else [()] * (6 + len(ROLES))
    n_messages, n_turns, answer_chars, labels, system_excerpts, scripts = columns[:6]
    chars_per_role = {r: list(v) for r, v in zip(ROLES, columns[6:]) if r in cols.roles}
    token_columns = list(zip(*cols.token_rows)) if cols.token_rows else [()] * (3 + len(TOKEN_ROLES))
    n_tokens, answer_tokens, label_tokens = token_columns[:3]
    tokens_per_role = {r: list(v) for r, v in zip(TOKEN_ROLES, token_columns[3:]) if r in cols.token_roles}
    systems = Counter(x for x in system_excerpts if x is not None)
    roles = sorted(set(chars_per_role) | set(tokens_per_role))
    out = {
        "n_examples": n,
        "messages_per_example": percentiles(list(n_messages)),
        "multi_turn_share": round(sum(1 for t in n_turns if t > 1) / n, 4) if n else 0.0,
        "chars_per_role": {r: percentiles(chars_per_role.get(r) or [0] * n) for r in roles if r != "template"},
        "answer_chars": percentiles(list(answer_chars)),
        "labels": label_profile(list(labels)),
        "system_prompts": {"distinct": len(systems), "without_system": n - sum(systems.values()),
                           "top": [{"excerpt": k, "count": v} for k, v in systems.most_common(5)]},
        "scripts": dict(Counter(scripts).most_common()),
    }
    if cols.token_rows:
        out["tokens_per_example"] = percentiles(list(n_tokens))
        out["tokens_per_role"] = {r: percentiles(tokens_per_role[r]) for r in sorted(tokens_per_role)}
        out["answer_tokens"] = percentiles(list(answer_tokens))
        out["label_tokens_per_example"] = percentiles(list(label_tokens))
        out["total_tokens"] = sum(n_tokens)
    return out


CLIENT_SOURCE = "client"  # how a record without a ``source`` (the client's own) is counted


def source_counts(metas: list[dict], splits: dict[int, str]) -> dict:
    """Where the split records came from: examples per source (``client`` = no ``source``: the client's own;
    ``synthetic``, ``uat``, ... as records say), per split and, for the training split, per label.

    >>> metas = [{"label": "a"}, {"label": "a", "source": "synthetic"}, {"label": "b"}]
    >>> counts = source_counts(metas, {0: "train", 1: "train", 2: "test"})
    >>> counts["per_split"], counts["train_per_label"]["a"], counts["synthetic_share"]["train"]
    ({'test': {'client': 1}, 'train': {'client': 1, 'synthetic': 1}}, {'client': 1, 'synthetic': 1}, 0.5)
    """
    per_split: dict[str, Counter] = {}
    per_label: dict[str, Counter] = {}
    for i, name in splits.items():
        source = metas[i].get("source") or CLIENT_SOURCE
        per_split.setdefault(name, Counter())[source] += 1
        if name == "train" and metas[i].get("label") is not None:
            per_label.setdefault(str(metas[i]["label"]), Counter())[source] += 1
    shares = {name: round(1 - c[CLIENT_SOURCE] / sum(c.values()), 4) for name, c in per_split.items() if c}
    return {"per_split": {k: dict(sorted(v.items())) for k, v in sorted(per_split.items())},
            "train_per_label": {k: dict(sorted(v.items())) for k, v in sorted(per_label.items())},
            "synthetic_share": {k: round(per_split[k].get("synthetic", 0) / sum(per_split[k].values()), 4)
                                for k in sorted(per_split)},
            "non_client_share": dict(sorted(shares.items())),
            "sources": sorted({s for c in per_split.values() for s in c})}


def suggest_max_seq_length(token_counts: list[int], quantile: float = 0.99, step: int = 256) -> int:
    """The smallest multiple of ``step`` covering ``quantile`` of examples.

    >>> suggest_max_seq_length([100, 200, 300, 900])
    1024
    """
    if not token_counts:
        return step
    need = percentiles(token_counts)["p99" if quantile >= 0.99 else "p90"]
    return int(-(-need // step) * step)
