"""Per-example checks on normalised chat messages: role order, empty texts, content quality, task answers.

Each check is a small function registered in ``RECORD_CHECKS``; it yields ``(code, message, message_index,
char_offset)`` so the caller can attach a masked excerpt of the offending text. The codes, severities and
fix hints live in :mod:`ftkit.data.checks`.

>>> msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]
>>> [c for c, *_ in run_record_checks(msgs, TaskContext())]
['content.empty_assistant']
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterator

_PLACEHOLDER = re.compile(r"\{\{\s*[\w.]+\s*\}\}")
_HTML = re.compile(r"</?(?:div|span|p|br|table|tr|td|a|img|ul|li|ol|h[1-6]|b|i|strong|em|pre|code)\b[^>]{0,200}>"
                   r"|&(?:nbsp|amp|lt|gt|quot|#\d{2,5});", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class TaskContext:
    """What the task settings say answers must look like."""

    type: str = "chat"
    label_field: str = ""
    labels: tuple[str, ...] = ()
    json_schema: dict = field(default_factory=dict)
    control_tokens: tuple[str, ...] = ()  # the tokenizer's special tokens, e.g. ("<|im_start|>", "<|im_end|>")


Finding = tuple[str, str, int, int]  # code, message, message index (0-based, -1 = whole record), char offset
RecordCheck = Callable[[list[dict], TaskContext], Iterator[Finding]]


def _check_roles(msgs: list[dict], task: TaskContext) -> Iterator[Finding]:
    roles = [m["role"] for m in msgs]
    if "assistant" not in roles:
        yield "conversation.no_assistant", "no assistant message: nothing to learn from", -1, 0
        return
    if roles[-1] != "assistant":
        yield ("conversation.assistant_not_last", f"the last message is a {roles[-1]} message; the turns after the "
               f"last answer are never trained", len(roles) - 1, 0)
    if "system" in roles[1:]:
        i = roles.index("system", 1)
        yield "roles.system_not_first", f"message {i + 1} is a system message but not the first", i, 0
    body = [r for r in roles if r != "system"]
    if body and body[0] != "user":
        yield "roles.first_not_user", f"the conversation opens with {_article(body[0])} {body[0]} message", roles.index(body[0]), 0
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1] and roles[i] in ("user", "assistant", "system"):
            yield "roles.repeated", f"messages {i} and {i + 1} are both {roles[i]} messages", i, 0
            break


def _check_empty(msgs: list[dict], task: TaskContext) -> Iterator[Finding]:
    for i, m in enumerate(msgs):
        if m["content"].strip() or m.get("tool_calls"):
            continue
        if m["role"] == "assistant":
            if m.get("weight", 1):
                yield "content.empty_assistant", f"message {i + 1} (assistant) is empty: the target answer is missing", i, 0
        else:
            yield "content.empty", f"message {i + 1} ({m['role']}) is empty or whitespace only", i, 0


def _check_trained(msgs: list[dict], task: TaskContext) -> Iterator[Finding]:
    """Structural label coverage: at least one assistant message with weight 1 (and content, which
    content.empty_assistant checks). Needs no tokenizer, so ``ftkit data check`` catches an example whose only
    answers carry ``weight: 0`` and would train on nothing."""
    answers = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    if answers and not any(msgs[i].get("weight", 1) for i in answers):
        n = len(answers)
        yield ("labels.nothing_trained", f"nothing in this example is trained on: {'its only assistant message has' if n == 1 else f'all {n} assistant messages have'} weight 0",
               answers[-1], 0)


def _first_match(msgs: list[dict], test: Callable[[str], object]) -> tuple[int, object] | None:
    for i, m in enumerate(msgs):
        hit = test(m["content"])
        if hit:
            return i, hit
    return None


def _check_content(msgs: list[dict], task: TaskContext) -> Iterator[Finding]:
    # Prefilters ('{{' in text) keep the regexes off the ~99 % of texts that cannot match; they run once on all
    # messages joined ("\n" is neither a control character here nor part of any pattern), and only a record
    # that may match is searched message by message for the first hit.
    joined = "\n".join(m["content"] for m in msgs)
    hit = "{{" in joined and _first_match(msgs, lambda t: "{{" in t and _PLACEHOLDER.search(t))
    if hit:
        i, m = hit
        yield "content.placeholder", f"message {i + 1} contains the unfilled placeholder {m.group()}", i, m.start()
    hit = ("<" in joined or "&" in joined) and _first_match(msgs, lambda t: ("<" in t or "&" in t) and _HTML.search(t))
    if hit:
        i, m = hit
        yield "content.html", f"message {i + 1} contains HTML ({m.group()[:20]})", i, m.start()
    hit = "\ufffd" in joined and _first_match(msgs, lambda t: "\ufffd" in t)
    if hit:
        i = hit[0]
        yield "content.mojibake", f"message {i + 1} contains U+FFFD replacement characters", i, msgs[i]["content"].index("\ufffd")
    hit = _CONTROL.search(joined) and _first_match(msgs, lambda t: _CONTROL.search(t))
    if hit:
        i, m = hit
        yield "content.control_chars", f"message {i + 1} contains control character {m.group()!r}", i, m.start()
    for i, m in enumerate(msgs):
        t = m["content"]
        if t and (t[0].isspace() or t[-1].isspace()) and t.strip():
            yield "content.whitespace", f"message {i + 1} ({m['role']}) starts or ends with whitespace", i, 0
            break
    markers = task.control_tokens or COMMON_CHAT_MARKERS
    rx = _marker_regex(markers)
    if rx is not None and ("<" in joined or "[" in joined or _needs_full_scan(markers)) and rx.search(joined):
        for i, m in enumerate(msgs):
            hit = rx.search(m["content"])
            if hit:
                n = len(rx.findall(m["content"]))
                what = "the chat-format marker" if markers == COMMON_CHAT_MARKERS else "the tokenizer's control token"
                more = f" ({n} markers in this message)" if n > 1 else ""
                yield ("content.control_token", f"message {i + 1} ({m['role']}) contains {what} {hit.group()}{more}: "
                       f"tokenised as a real control token it ends the turn early or fakes a turn boundary", i, hit.start())
                break


# Turn markers of the common chat formats, for checks without the engagement's tokenizer: ChatML (Qwen, SmolLM2),
# Llama 3 headers, Llama 2 / Mistral [INST], Gemma turns, Phi-3, and the usual begin/end-of-text tokens.
COMMON_CHAT_MARKERS = ("<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                       "<|begin_of_text|>", "<|end_of_text|>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>",
                       "<start_of_turn>", "<end_of_turn>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>",
                       "<|endoftext|>", "<|eom_id|>", "<|python_tag|>")


def control_markers(tokenizer) -> tuple[str, ...]:
    """The texts a tokenizer turns into special tokens (its special and added special tokens of 3+ characters),
    or the common chat-format markers when there is no tokenizer.

    >>> control_markers(None)[:2]
    ('<|im_start|>', '<|im_end|>')
    """
    if tokenizer is None:
        return COMMON_CHAT_MARKERS
    from ftkit.content_tokens import special_texts  # the same set training encodes as plain text

    return tuple(sorted((t for t in special_texts(tokenizer) if len(t.strip()) >= 3), key=lambda t: (-len(t), t)))


@lru_cache(maxsize=8)
def _marker_regex(markers: tuple[str, ...]):
    """One alternation (longest first) over the markers: a single C-level scan, however many markers (Llama 3
    tokenizers declare ~256 special tokens)."""
    texts = sorted({t for t in markers if t}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, texts))) if texts else None


@lru_cache(maxsize=8)
def _needs_full_scan(markers: tuple[str, ...]) -> bool:
    # the '<'/'[' prefilter is exact only when every marker contains one of them
    return any("<" not in t and "[" not in t for t in markers)


def schema_error(value, schema: dict) -> str:
    """The first violation of ``schema`` (the same validator the structured-output metric uses), or ''.

    >>> schema_error({"category": "x"}, {"type": "object", "required": ["priority"]})
    "$: must contain ['priority'] properties"
    >>> schema_error({"p": "urgent"}, {"properties": {"p": {"enum": ["low", "high"]}}})
    "$.p: must be one of ['low', 'high']"
    """
    from ftkit.metrics.schema import make_validator

    errors = make_validator(schema)(value)
    return errors[0] if errors else ""


def final_answer(msgs: list[dict]) -> tuple[int, dict] | None:
    """(index, message) of the last assistant message, or None."""
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i]["role"] == "assistant":
            return i, msgs[i]
    return None


def _check_task(msgs: list[dict], task: TaskContext) -> Iterator[Finding]:
    answer = final_answer(msgs)
    if answer is None or not answer[1]["content"].strip():
        return
    i, msg = answer
    if task.type == "structured_output":
        obj, err = parse_answer(msg["content"])
        if err is not None:
            yield "answer.invalid_json", f"the answer (message {i + 1}) is not valid JSON: {err}", i, 0
            return
        if not isinstance(obj, dict):
            yield "answer.invalid_json", f"the answer (message {i + 1}) is JSON {type(obj).__name__}, not an object", i, 0
            return
        if task.label_field and task.label_field not in obj:
            yield "answer.missing_field", f"the answer has no '{task.label_field}' (task.label_field)", i, 0
        if task.json_schema:
            error = schema_error(obj, task.json_schema)
            if error:
                yield "answer.schema", f"the answer violates task.json_schema: {error}", i, 0
    if task.labels:
        label = derive_label(msgs, task)
        if label is not None and label not in task.labels:
            yield "label.unknown", f"label {label!r} is not one of task.labels ({', '.join(task.labels[:8])})", i, 0


@lru_cache(maxsize=4096)
def parse_answer(text: str) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, the parse error). Cached: structured answers repeat heavily (a triage set
    has a few dozen distinct answers), and both the task check and the label read them. Callers must not
    mutate the returned object (it is shared)."""
    try:
        return json.loads(text), None
    except ValueError as err:
        return None, str(err)


def derive_label(msgs: list[dict], task: TaskContext, explicit: str | None = None) -> str | None:
    """The class label of an example: explicit, the JSON answer's ``label_field``, or (classification) the answer.

    >>> derive_label([{"role": "assistant", "content": '{"category": "billing"}'}], TaskContext("structured_output", "category"))
    'billing'
    """
    if explicit is not None:
        return explicit
    answer = final_answer(msgs)
    if answer is None:
        return None
    text = answer[1]["content"].strip()
    if task.label_field:
        obj, err = parse_answer(text)
        if err is not None:
            return None
        value = obj.get(task.label_field) if isinstance(obj, dict) else None
        return str(value) if isinstance(value, (str, int, bool)) else None
    if task.type == "classification":
        return text or None
    return None


RECORD_CHECKS: dict[str, RecordCheck] = {
    "roles": _check_roles,
    "empty": _check_empty,
    "trained": _check_trained,
    "content": _check_content,
    "task": _check_task,
}


def run_record_checks(msgs: list[dict], task: TaskContext) -> Iterator[Finding]:
    for check in RECORD_CHECKS.values():
        yield from check(msgs, task)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
