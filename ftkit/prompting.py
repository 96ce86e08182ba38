"""Zero- and few-shot prompts through the tokenizer's own chat template, recorded exactly.

A record is ``{"id", "messages": [system?, user, ..., assistant], "label"?}``; its last assistant message is
the reference answer. The prompt is: system prompt (the record's own, else the engagement's), then k shots
as user/assistant turns drawn deterministically from the train split, then the record's turns without the
reference, rendered with ``tokenizer.apply_chat_template(..., add_generation_prompt=True)``. The template,
the shots and a rendered example are saved as ``prompt.json`` so the report shows what the model saw.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from ftkit.chat_format import template_fix
from ftkit.errors import DataError


@dataclass
class PromptSpec:
    """Everything that decides a prompt except the record: what ``prompt.json`` records."""

    system_prompt: str = ""
    shots: list[dict] = field(default_factory=list)  # [{"id", "messages": [user..., assistant]}]
    seed: int = 0
    # Prompt-search candidates (ftkit.baseline.prompt_search) only; the defaults leave every prompt as it was.
    instruction: str = ""  # appended (after a blank line) to the system prompt in effect, the record's own included
    replace_system: bool = False  # system_prompt replaces the record's own system prompt too ("" = none at all)

    @property
    def shot_ids(self) -> list[str]:
        return [s["id"] for s in self.shots]


@dataclass
class PromptItem:
    """One rendered prompt, ready for a generation backend."""

    id: str
    messages: list[dict]  # chat messages sent (for HTTP backends)
    text: str  # rendered by the chat template (for local generation)
    reference: str
    label: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def split_record(record: dict) -> tuple[list[dict], str]:
    """(messages before the reference, reference text) of a record; the reference is the last assistant turn.

    >>> turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    >>> split_record({"id": "1", "messages": turns})
    ([{'role': 'user', 'content': 'hi'}], 'yo')
    """
    messages = record.get("messages") or []
    if not messages or messages[-1].get("role") != "assistant":
        raise DataError(f"Record {record.get('id', '?')!r} does not end with an assistant message (the reference "
                        f"answer); re-run the data audit, which writes records as system?/user/assistant.")
    return [dict(m) for m in messages[:-1]], str(messages[-1].get("content", ""))


def _rank(seed: int, record_id: str) -> str:
    return hashlib.sha256(f"{seed}:{record_id}".encode("utf-8")).hexdigest()


def select_shots(train: list[dict], k: int, seed: int = 0) -> list[dict]:
    """k train records, chosen deterministically (by a seeded hash of the id, independent of file order)
    and, when records carry labels, round-robin over labels so the shots show different classes.

    >>> rows = [{"id": str(i), "label": "ab"[i % 2]} for i in range(6)]
    >>> sorted(r["label"] for r in select_shots(rows, 2))
    ['a', 'b']
    """
    if k <= 0 or not train:
        return []
    ordered = sorted(train, key=lambda r: _rank(seed, str(r.get("id", ""))))
    by_label: dict[str, list[dict]] = {}
    for record in ordered:
        by_label.setdefault(str(record.get("label")), []).append(record)
    queues = [by_label[label] for label in sorted(by_label, key=lambda lb: _rank(seed, lb))]
    picked: list[dict] = []
    while len(picked) < min(k, len(ordered)):
        for queue in queues:
            if queue and len(picked) < k:
                picked.append(queue.pop(0))
    return picked


def make_spec(train: list[dict], shots: int, system_prompt: str = "", seed: int = 0) -> PromptSpec:
    """The prompt settings for a run: the engagement's system prompt and k shots from ``train``."""
    chosen = []
    for record in select_shots(train, shots, seed):
        context, reference = split_record(record)
        turns = [m for m in context if m.get("role") != "system"]
        chosen.append({"id": str(record.get("id")),
                       "messages": [_plain(m) for m in turns] + [{"role": "assistant", "content": reference}]})
    return PromptSpec(system_prompt=system_prompt, shots=chosen, seed=seed)


def build_messages(record: dict, spec: PromptSpec) -> list[dict]:
    """Chat messages for ``record``: system, shots, then the record's own turns without the reference."""
    from ftkit.chat_plan import with_system

    context, _ = split_record(record)
    if spec.replace_system:
        context = [m for m in context if m.get("role") != "system"]
    system = with_system(context, spec.system_prompt)  # the record's own system prompt, else the engagement's
    messages = [{"role": "system", "content": m["content"]} for m in system
                if m.get("role") == "system" and m.get("content")][:1]
    if spec.instruction:
        text = messages[0]["content"].rstrip() + "\n\n" + spec.instruction if messages else spec.instruction
        messages = [{"role": "system", "content": text}]
    for shot in spec.shots:
        messages += [_plain(m) for m in shot["messages"]]
    return messages + [_plain(m) for m in context if m.get("role") != "system"]


def _plain(message: dict) -> dict:
    # Only role and content reach the template or an HTTP endpoint: training-only keys such as "weight"
    # would be rejected by strict OpenAI-compatible servers and mean nothing to a chat template.
    return {"role": message.get("role"), "content": str(message.get("content") or "")}


def render(tokenizer, messages: list[dict]) -> str:
    """The exact prompt text the model sees (chat template + generation prompt)."""
    if not getattr(tokenizer, "chat_template", None):
        from ftkit.chat_plan import plan_chat

        plan_chat(tokenizer)  # a base model without a template: the same default every phase picks
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - templates raise anything (TemplateError from raise_exception)
        raise DataError(f"The chat template cannot render this prompt ({str(err).splitlines()[0][:160]}); "
                        f"{template_fix(str(err))}") from None


def build_prompts(records: list[dict], spec: PromptSpec, tokenizer=None) -> list[PromptItem]:
    """PromptItems for ``records``; ``text`` is rendered when a tokenizer is given (local backend)."""
    items = []
    for record in records:
        messages = build_messages(record, spec)
        text = render(tokenizer, messages) if tokenizer is not None else _plain_text(messages)
        label = record.get("label")
        items.append(PromptItem(str(record.get("id")), messages, text, split_record(record)[1],
                                None if label is None else str(label)))
    return items


def _plain_text(messages: list[dict]) -> str:
    # HTTP backends apply the server's template; hash a stable rendering of the messages instead.
    return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages)


def prompt_record(spec: PromptSpec, tokenizer=None, example: PromptItem | None = None) -> dict:
    """What ``prompt.json`` holds: settings, shots, the chat template and one fully rendered prompt."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return {
        **asdict(spec),
        "shot_ids": spec.shot_ids,
        "n_shots": len(spec.shots),
        "chat_template": template,
        "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest() if template else "",
        "example_id": example.id if example else None,
        "example_prompt": example.text if example else "",
        "example_prompt_sha256": example.sha256 if example else "",
    }


def read_records(path) -> list[dict]:
    """Records of a split file written by the data audit (JSONL), with errors that name the line."""
    from ftkit.fsutil import read_jsonl

    from pathlib import Path

    rows = []
    for number, record in read_jsonl(path, "re-run the data audit."):
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            raise DataError(f"{path} line {number}: expected an object with a 'messages' list; re-run the data audit.")
        record.setdefault("id", f"{Path(path).stem}-{number}")  # the audit writes ids; this only covers hand edits
        rows.append(record)
    return rows


def preview(config, spec: PromptSpec, record: dict, tokenizer=None) -> dict:
    """``prompt.json`` for a run: the spec, template and ``record`` rendered exactly as the model will see it.

    For the local backend pass the base model's tokenizer; HTTP endpoints apply their own template, so the
    messages are recorded instead.
    """
    plan = {}
    if tokenizer is not None:
        from ftkit.chat_plan import prepare_tokenizer

        plan = prepare_tokenizer(tokenizer, config).to_dict()  # the same template every phase renders with
    [item] = build_prompts([record], spec, tokenizer)
    out = prompt_record(spec, tokenizer, item)
    out["chat_plan"] = plan
    n_tokens = len(tokenizer(item.text, add_special_tokens=False)["input_ids"]) if tokenizer else None
    out.update({"backend": config.baseline.backend, "example_messages": item.messages, "n_prompt_tokens": n_tokens})
    return out


def shown_prompt(prompt: dict) -> str:
    """The first test prompt as the notebook (and so report.html) prints it, PII masked with the data audit's
    masker; ``prompt.json`` keeps it exact, because evaluation reproduces the baseline from it.

    >>> shown_prompt({"example_prompt": "", "example_messages": [{"role": "user", "content": "mail a@b.com"}]})
    '[user] mail a***@b***.com'
    """
    from ftkit.data.pii import mask

    if prompt.get("example_prompt"):
        return mask(prompt["example_prompt"])
    return "\n".join(f"[{m.get('role')}] {mask(str(m.get('content', '')))}" for m in prompt.get("example_messages", []))


def load_splits(run, max_examples: int = 0, phase: str = "data_audit", seed: int = 0) -> dict[str, list[dict]]:
    """The data audit's latest train/validation/test splits (recorded as inputs) and ``scored``: a seeded sample
    of ``max_examples`` test records stratified by label (``ftkit.sampling.stratified_subset``; all when 0), in
    test-file order. Validation is optional; an empty test split is an error."""
    splits = {"train": read_records(run.upstream_file(phase, "train.jsonl")),
              "validation": (read_records(run.upstream_file(phase, "validation.jsonl"))
                             if (run.upstream_dir(phase) / "validation.jsonl").is_file() else []),
              "test": read_records(run.upstream_file(phase, "test.jsonl"))}
    if not splits["test"]:
        raise DataError(f"The latest {phase} run has an empty test split; a baseline needs held-out examples. "
                        f"Raise data.split.test in engagement.yaml or add data.test_files, then re-run the data audit.")
    from ftkit.sampling import stratified_subset

    splits["scored"] = stratified_subset(splits["test"], max_examples, seed).records
    return splits
