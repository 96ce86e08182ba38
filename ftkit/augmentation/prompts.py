"""The request a teacher gets and the reading of its answer.

The request shows few-shot examples from the training split as a JSON list of ``{"input", "answer"}`` objects and
asks for ``n`` new, different ones as a JSON list, for one target (a label, a slice value, or the whole task).
:func:`parse_candidates` accepts a JSON list, ``{"examples": [...]}``, JSON lines or a fenced code block; anything
else is a problem code: ``teacher.empty``, ``teacher.refusal`` or ``teacher.not_json``.
"""
from __future__ import annotations

import hashlib
import json
import re

from ftkit.augmentation.targets import Target

TEACHER_SYSTEM = ("You write new, realistic training examples for a fine-tuning dataset. Reply with JSON only: "
                  "a list of objects with the keys \"input\" and \"answer\". No explanations.")
# Openings of an answer that declines the request (English; checked only when no JSON was found).
REFUSAL = re.compile(r"^\W*(?:i\s*(?:'m|am)\s+(?:sorry|unable|not able)|i\s+(?:can(?:no|')t|won't|will not)|"
                     r"sorry\b|as an ai\b|i must decline|unfortunately,? i)", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def as_pair(record: dict) -> dict:
    """A split record as the teacher sees it: its last user turn and the answer after it."""
    msgs = record["messages"]
    answer = next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), "")
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=len(msgs))
    user = next((m["content"] for m in reversed(msgs[:last]) if m["role"] == "user"), "")
    return {"input": user, "answer": answer}


def build_request(target: Target, shots: list[dict], n: int, task_type: str, system_prompt: str,
                  labels: tuple[str, ...], label_field: str = "") -> list[dict]:
    """The chat messages of one teacher request."""
    want = {"label": f"Every answer must be for the label {target.label!r}"
                     + (f" (the answer's \"{label_field}\" is {target.label!r})." if label_field else "."),
            "slice": f"Every example must be a case where {target.field} is {target.value!r}.",
            "all": "Cover the whole range of cases the examples show."}[target.kind]
    lines = [f"Task: {system_prompt or 'answer the input as the examples do'}",
             f"Task type: {task_type}." + (f" Allowed labels: {', '.join(labels)}." if labels else ""),
             "Examples:", json.dumps([as_pair(r) for r in shots], ensure_ascii=False, indent=1),
             f"Write {n} new examples in the same style and format: inputs a real user would send, each different "
             f"from the examples and from each other, answers exactly as the task requires. {want} Do not include "
             f"names, e-mail addresses, phone numbers or other personal data.",
             f"Reply with a JSON list of {n} objects with the keys \"input\" and \"answer\"."]
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def request_sha256(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def parse_candidates(text: str) -> tuple[list, str]:
    """(items, problem code or ""). Items are whatever the JSON held; the filters judge their shape.

    >>> parse_candidates('```json\\n[{"input": "a", "answer": "b"}]\\n```')
    ([{'input': 'a', 'answer': 'b'}], '')
    >>> parse_candidates("I'm sorry, I can't help with that.")[1], parse_candidates("  ")[1], parse_candidates("x{")[1]
    ('teacher.refusal', 'teacher.empty', 'teacher.not_json')
    """
    stripped = (text or "").strip()
    if not stripped:
        return [], "teacher.empty"
    for chunk in [m.group(1) for m in _FENCE.finditer(stripped)] + [stripped]:
        items = _json_items(chunk.strip())
        if items is not None:
            return items, ""
    return [], "teacher.refusal" if REFUSAL.search(stripped) else "teacher.not_json"


def _json_items(text: str) -> list | None:
    for candidate in (text, text[text.find("["):text.rfind("]") + 1] if "[" in text else ""):
        if not candidate:
            continue
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, list)), [value])
        if isinstance(value, list):
            return value
    lines = [line.strip().rstrip(",") for line in text.splitlines() if line.strip().startswith("{")]
    items = []
    for line in lines:
        try:
            items.append(json.loads(line))
        except ValueError:
            return None
    return items or None
