"""Record formats: recognise each record's layout and normalise it to chat messages.

Every format is a registry entry with a ``detect(obj)`` test and a ``normalise(obj, ctx)`` function that
returns an :class:`Example` (``messages`` in OpenAI chat form, plus ``label``/``id`` when known) and the
problems found on the way (code, message) for the checks registry. Later phases only ever see chat
messages, whatever the client delivered.

>>> ex = normalise(FORMATS["alpaca"], {"instruction": "Add", "input": "2+2", "output": "4"}, NormaliseContext())
>>> [m["role"] for m in ex.messages], ex.messages[0]["content"]
(['user', 'assistant'], 'Add\\n\\n2+2')
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

CHAT_ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {"developer": "system", "function": "tool"}  # OpenAI's newer/older names for the same roles
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "bing": "assistant", "chatgpt": "assistant", "bard": "assistant", "observation": "tool",
                  "tool": "tool", "function_call": "assistant"}
CHAT_RECORD_KEYS = {"messages", "tools", "functions", "parallel_tool_calls", "id", "label", "metadata"}
# Provenance keys any format may carry (written by `ftkit augment` and `ftkit data from-uat`): ``source`` names
# where a record came from ("synthetic", "uat"; absent = the client's own), ``provenance`` says who made it and how.
PROVENANCE_KEYS = ("source", "provenance")
MAX_SOURCE_CHARS = 40
MAX_FIELD_CHARS = 80  # longer text in an extra key is content, not a slice value (a channel, a language, a region)
_PLAIN_ROLES = frozenset(CHAT_ROLES)
MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight", "refusal"}
PROMPT_KEYS = ("prompt", "question", "input", "query", "text")
COMPLETION_KEYS = ("completion", "answer", "output", "response", "label", "category", "intent", "target")
LABEL_KEYS = {"label", "category", "intent", "target", "class"}


@dataclass
class NormaliseContext:
    """What normalisation needs beyond the record: CSV column mapping and the system prompt to add."""

    columns: dict = field(default_factory=dict)  # {"prompt": name, "completion": name, "system": name}
    system_prompt: str = ""  # added to formats without their own system message (prompt/completion, CSV)
    source: str = ""  # file stem, for ids of records that have none ("<stem>:<line>")
    file: str = ""  # the data file's name, for each record's origin (file, line)


@dataclass
class Example:
    messages: list[dict] = field(default_factory=list)
    label: str | None = None
    id: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (check code, message)
    fatal: bool = False  # a structural error: the messages are not usable
    # Extra scalar values the record carries beside its content (CSV columns, JSON keys such as channel or
    # language, a ``metadata`` object's scalars): never trained on; the evaluation slices by them.
    fields: dict = field(default_factory=dict)
    source: str | None = None  # PROVENANCE_KEYS: "synthetic", "uat", ... (None = the client's own record)
    provenance: dict | None = None

    def problem(self, code: str, message: str, fatal: bool = False) -> None:
        self.problems.append((code, message))
        self.fatal = self.fatal or fatal


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    detect: Callable[[Any], bool]
    normalise: Callable[[dict, NormaliseContext, Example], None]


# -- content helpers ----------------------------------------------------------------------------------------

def content_text(content: Any, where: str, ex: Example) -> str | None:
    """A message's content as one string: a string, or a list of text parts joined by newlines.

    >>> content_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "m1", Example())
    'a\\nb'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content, 1):
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                text = part.get("text", part.get("value"))
                if "text" not in part and isinstance(text, str):
                    ex.problem("message.nonstandard_part", f"{where} part {i} uses 'value' instead of 'text'")
                if not isinstance(text, str):
                    ex.problem("message.missing_content", f"{where} part {i} has no text", fatal=True)
                    return None
                texts.append(text)
            elif isinstance(part, dict):
                ex.problem("message.non_text_part", f"{where} part {i} is of type {part.get('type')!r} and was dropped")
            else:
                ex.problem("message.missing_content", f"{where} part {i} is {type(part).__name__}, not a text part", fatal=True)
                return None
        return "\n".join(texts)
    return None


def _check_tool_calls(calls: Any, where: str, ex: Example) -> list | None:
    if not isinstance(calls, list) or not calls:
        ex.problem("tool.bad_call", f"{where}: tool_calls must be a non-empty list", fatal=True)
        return None
    for i, call in enumerate(calls, 1):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            ex.problem("tool.bad_call", f"{where}: tool call {i} has no function name", fatal=True)
            return None
        args = fn.get("arguments", "")
        if isinstance(args, str):
            try:
                json.loads(args or "{}")
            except ValueError:
                ex.problem("tool.bad_call", f"{where}: tool call {i} ({fn['name']}) arguments are not valid JSON", fatal=True)
                return None
        elif not isinstance(args, dict):
            ex.problem("tool.bad_call", f"{where}: tool call {i} ({fn['name']}) arguments must be JSON text", fatal=True)
            return None
    return calls


# -- chat (OpenAI messages) ------------------------------------------------------------------------------------

def _normalise_chat(obj: dict, ctx: NormaliseContext, ex: Example) -> None:
    messages = obj.get("messages")
    if "messages" not in obj:
        ex.problem("record.missing_key", "no 'messages' key (chat format)", fatal=True)
        return
    if not isinstance(messages, list) or not messages:
        ex.problem("record.bad_type", "'messages' must be a non-empty list of messages", fatal=True)
        return
    for key in obj:
        if key not in CHAT_RECORD_KEYS and key not in PROVENANCE_KEYS:
            ex.problem("record.unknown_key", f"unknown key '{key}' (not trained on)")
    for i, msg in enumerate(messages, 1):
        out = _normalise_message(msg, i, ex)
        if out is not None:
            ex.messages.append(out)
    if isinstance(obj.get("label"), (str, int)):
        ex.label = str(obj["label"])


def _normalise_message(msg: Any, i: int, ex: Example) -> dict | None:
    if type(msg) is dict and len(msg) == 2 and type(msg.get("content")) is str and msg.get("role") in _PLAIN_ROLES:
        return msg  # the common case, {"role", "content": str}: already normal (a fresh object from the parser)
    where = f"message {i}"
    if not isinstance(msg, dict):
        ex.problem("message.not_object", f"{where} is {type(msg).__name__}, not an object", fatal=True)
        return None
    if "role" not in msg:
        ex.problem("message.missing_key", f"{where} has no 'role'", fatal=True)
        return None
    role = ROLE_ALIASES.get(msg["role"], msg["role"]) if isinstance(msg["role"], str) else msg["role"]
    if role not in CHAT_ROLES:
        ex.problem("message.unknown_role", f"{where} has role {msg['role']!r}; expected one of {', '.join(CHAT_ROLES)}", fatal=True)
        return None
    for key in msg:
        if key not in MESSAGE_KEYS:
            ex.problem("message.unknown_key", f"{where} ({role}) has unknown key '{key}' (not trained on)")
    out: dict = {"role": role}
    calls = msg.get("tool_calls") or None
    if calls is not None and role == "assistant":
        calls = _check_tool_calls(calls, where, ex)
        if calls is None:
            return None
        out["tool_calls"] = calls
    content = msg.get("content")
    if content is None and (calls or msg.get("function_call")):
        text = ""
    else:
        text = content_text(content, where, ex) if "content" in msg else None
        if text is None:
            if not ex.fatal:
                what = "no 'content'" if "content" not in msg else f"content of type {type(content).__name__}"
                ex.problem("message.missing_content", f"{where} ({role}) has {what}; expected text", fatal=True)
            return None
    out["content"] = text
    for key in ("name", "tool_call_id"):
        if isinstance(msg.get(key), str):
            out[key] = msg[key]
    if "weight" in msg:
        if role != "assistant" or msg["weight"] not in (0, 1) or isinstance(msg["weight"], bool):
            ex.problem("message.bad_weight", f"{where} ({role}) has weight {msg['weight']!r}; use 0 or 1 on assistant messages", fatal=True)
        elif msg["weight"] == 0:
            out["weight"] = 0
    return out


# -- ShareGPT ------------------------------------------------------------------------------------------------

def _normalise_sharegpt(obj: dict, ctx: NormaliseContext, ex: Example) -> None:
    turns = obj.get("conversations")
    if not isinstance(turns, list) or not turns:
        ex.problem("record.bad_type" if "conversations" in obj else "record.missing_key",
                   "'conversations' must be a non-empty list of {from, value} turns", fatal=True)
        return
    for key in obj:
        if key not in ("conversations", "id", "system", "tools", "label", *PROVENANCE_KEYS):
            ex.problem("record.unknown_key", f"unknown key '{key}' (not trained on)")
    if isinstance(obj.get("system"), str) and obj["system"]:
        ex.messages.append({"role": "system", "content": obj["system"]})
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            ex.problem("message.not_object", f"turn {i} is {type(turn).__name__}, not an object", fatal=True)
            return
        who = turn.get("from")
        role = SHAREGPT_ROLES.get(who) if isinstance(who, str) else None
        if role is None:
            ex.problem("message.unknown_role", f"turn {i} has from={who!r}; expected one of {', '.join(SHAREGPT_ROLES)}", fatal=True)
            return
        value = turn.get("value")
        if not isinstance(value, str):
            ex.problem("message.missing_content", f"turn {i} ({who}) has no text 'value'", fatal=True)
            return
        ex.messages.append({"role": role, "content": value})
    if isinstance(obj.get("id"), (str, int)):
        ex.id = str(obj["id"])


# -- Alpaca --------------------------------------------------------------------------------------------------

def _normalise_alpaca(obj: dict, ctx: NormaliseContext, ex: Example) -> None:
    for key in ("instruction", "output"):
        if key not in obj:
            ex.problem("record.missing_key", f"no '{key}' key (alpaca format)", fatal=True)
        elif not isinstance(obj[key], str):
            ex.problem("record.bad_type", f"'{key}' must be text, not {type(obj[key]).__name__}", fatal=True)
    if ex.fatal:
        return
    for key in obj:
        if key not in ("instruction", "input", "output", "system", "history", "id", "label", *PROVENANCE_KEYS):
            ex.problem("record.unknown_key", f"unknown key '{key}' (not trained on)")
    if isinstance(obj.get("system"), str) and obj["system"]:
        ex.messages.append({"role": "system", "content": obj["system"]})
    elif ctx.system_prompt:
        ex.messages.append({"role": "system", "content": ctx.system_prompt})
    for pair in obj.get("history") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, str) for x in pair):
            ex.messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        else:
            ex.problem("record.bad_type", "'history' must be a list of [question, answer] pairs", fatal=True)
            return
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        ex.problem("record.bad_type", f"'input' must be text, not {type(extra).__name__}", fatal=True)
        return
    user = obj["instruction"] + ("\n\n" + extra if extra.strip() else "")
    ex.messages += [{"role": "user", "content": user}, {"role": "assistant", "content": obj["output"]}]


# -- prompt / completion (and question/answer, text/label aliases) ------------------------------------------------

def _pick(obj: dict, keys: tuple[str, ...], exclude: str = "") -> str | None:
    return next((k for k in keys if k in obj and k != exclude), None)


def _normalise_prompt_completion(obj: dict, ctx: NormaliseContext, ex: Example) -> None:
    pkey = _pick(obj, PROMPT_KEYS)
    ckey = _pick(obj, COMPLETION_KEYS, exclude=pkey or "")
    if pkey is None or ckey is None:
        missing = "a prompt key (" + "/".join(PROMPT_KEYS) + ")" if pkey is None else \
            "a completion key (" + "/".join(COMPLETION_KEYS) + ")"
        ex.problem("record.missing_key", f"no {missing}", fatal=True)
        return
    prompt, completion = obj[pkey], obj[ckey]
    for key in obj:
        if key not in (pkey, ckey, "id", "system", "metadata", *PROVENANCE_KEYS):
            ex.problem("record.unknown_key", f"unknown key '{key}' (not trained on)")
    system = obj.get("system") if isinstance(obj.get("system"), str) else ctx.system_prompt
    if isinstance(prompt, list) and isinstance(completion, list):  # TRL's conversational prompt/completion
        for i, msg in enumerate(prompt + completion, 1):
            out = _normalise_message(msg, i, ex)
            if out is not None:
                ex.messages.append(out)
        return
    if isinstance(completion, (int, float)) and not isinstance(completion, bool) and ckey in LABEL_KEYS:
        completion = str(completion)
    for key, value in ((pkey, prompt), (ckey, completion)):
        if not isinstance(value, str):
            ex.problem("record.bad_type", f"'{key}' must be text, not {type(value).__name__}", fatal=True)
    if ex.fatal:
        return
    if system:
        ex.messages.append({"role": "system", "content": system})
    ex.messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    if ckey in LABEL_KEYS:
        ex.label = completion.strip()


# -- CSV rows ----------------------------------------------------------------------------------------------

def _normalise_csv(row: dict, ctx: NormaliseContext, ex: Example) -> None:
    cols = ctx.columns
    prompt, completion = row.get(cols.get("prompt", "")), row.get(cols.get("completion", ""))
    if prompt is None or completion is None:
        ex.problem("record.missing_key", f"row has no column '{cols.get('prompt')}' or '{cols.get('completion')}'", fatal=True)
        return
    system = row.get(cols.get("system") or "") or ctx.system_prompt
    if system:
        ex.messages.append({"role": "system", "content": system})
    ex.messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    if cols.get("completion", "").lower() in LABEL_KEYS:
        ex.label = completion.strip()


def guess_csv_columns(header: list[str], configured: dict) -> dict:
    """Column mapping: the configured names, else the first header matching the usual names.

    >>> guess_csv_columns(["text", "category"], {})
    {'prompt': 'text', 'completion': 'category', 'system': ''}
    """
    lower = {h.lower(): h for h in header}
    prompt = configured.get("prompt") or next((lower[k] for k in PROMPT_KEYS + ("instruction", "message") if k in lower), "")
    completion = configured.get("completion") or next(
        (lower[k] for k in COMPLETION_KEYS if k in lower and lower[k] != prompt), "")
    return {"prompt": prompt, "completion": completion, "system": configured.get("system", "")}


def _is_prompt_completion(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    pkey = _pick(obj, PROMPT_KEYS)
    return pkey is not None and _pick(obj, COMPLETION_KEYS, exclude=pkey) is not None


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("chat", "OpenAI chat: {\"messages\": [{\"role\", \"content\"}, ...]}",
           lambda o: isinstance(o, dict) and "messages" in o, _normalise_chat),
    Format("sharegpt", "ShareGPT: {\"conversations\": [{\"from\", \"value\"}, ...]}",
           lambda o: isinstance(o, dict) and "conversations" in o, _normalise_sharegpt),
    Format("alpaca", "Alpaca: {\"instruction\", \"input\", \"output\"}",
           lambda o: isinstance(o, dict) and "instruction" in o and "output" in o, _normalise_alpaca),
    Format("prompt_completion", "{\"prompt\", \"completion\"} (also question/answer, text/label)",
           _is_prompt_completion, _normalise_prompt_completion),
    Format("csv", "CSV/TSV with a header row; columns from data.columns or guessed",
           lambda o: False, _normalise_csv),
)}


def detect_format(samples: list[Any]) -> str | None:
    """The format most of the first records match (None if none matches).

    >>> detect_format([{"question": "q", "answer": "a"}])
    'prompt_completion'
    """
    votes = {name: sum(1 for s in samples if fmt.detect(s)) for name, fmt in FORMATS.items()}
    best = max(votes, key=lambda k: votes[k])
    return best if votes[best] else None


def normalise(fmt: Format, obj: Any, ctx: NormaliseContext) -> Example:
    """Normalise one decoded record with ``fmt``; structural problems land in ``Example.problems``."""
    ex = Example()
    if not isinstance(obj, dict):
        ex.problem("record.not_object", f"record is {type(obj).__name__}, not a JSON object", fatal=True)
        return ex
    fmt.normalise(obj, ctx, ex)
    if ex.id is None and isinstance(obj.get("id"), (str, int)):
        ex.id = str(obj["id"])
    if not ex.fatal:
        _carry_extras(fmt, obj, ctx, ex)
    return ex


# Keys each format reads as content (everything else scalar is an extra field). prompt_completion's depend on
# the record: the prompt and completion keys it picked.
_CONTENT_KEYS = {
    "chat": set(CHAT_RECORD_KEYS),
    "sharegpt": {"conversations", "id", "system", "tools", "label"},
    "alpaca": {"instruction", "input", "output", "system", "history", "id", "label"},
}


def _content_keys(fmt: Format, obj: dict, ctx: NormaliseContext) -> set:
    if fmt.name == "csv":
        return {c for c in ctx.columns.values() if c} | {"id"}
    if fmt.name == "prompt_completion":
        pkey = _pick(obj, PROMPT_KEYS)
        return {pkey, _pick(obj, COMPLETION_KEYS, exclude=pkey or ""), "id", "system", "metadata"}
    return _CONTENT_KEYS.get(fmt.name, set())


def _scalar(value: Any) -> Any:
    """A slice value: a short string (stripped), a number or a bool; None for anything else."""
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value == value):
        return value
    if isinstance(value, str) and value.strip() and len(value) <= MAX_FIELD_CHARS and "\n" not in value:
        return value.strip()
    return None


def extra_fields(obj: dict, content_keys: set) -> dict:
    """The record's extra scalar values: its ``metadata`` object's scalars, then its other keys (which win).

    >>> extra_fields({"prompt": "p", "completion": "c", "channel": "email", "metadata": {"lang": "de"}},
    ...              {"prompt", "completion", "metadata"})
    {'lang': 'de', 'channel': 'email'}
    """
    out: dict = {}
    meta = obj.get("metadata")
    for source in ((meta if isinstance(meta, dict) else {}), obj):
        for key, value in source.items():
            if source is obj and (key in content_keys or key in PROVENANCE_KEYS):
                continue
            if isinstance(key, str) and key and (v := _scalar(value)) is not None:
                out[key] = v
    return out


def _carry_extras(fmt: Format, obj: dict, ctx: NormaliseContext, ex: Example) -> None:
    ex.fields = extra_fields(obj, _content_keys(fmt, obj, ctx))
    source, provenance = obj.get("source"), obj.get("provenance")
    if source is not None:
        if isinstance(source, str) and source.strip() and len(source) <= MAX_SOURCE_CHARS:
            ex.source = source.strip()
        else:
            ex.problem("record.bad_type", f"'source' must be a short name such as \"synthetic\" or \"uat\" "
                       f"(at most {MAX_SOURCE_CHARS} characters), not {type(source).__name__}")
    if provenance is not None:
        if isinstance(provenance, dict):
            ex.provenance = provenance
        else:
            ex.problem("record.bad_type", f"'provenance' must be an object, not {type(provenance).__name__}")
