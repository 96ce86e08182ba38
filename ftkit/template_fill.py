"""Render chats by filling a per-shape skeleton, for chat templates that only ever print message content.

Why: the data audit renders every record through the chat template, and jinja costs ~13 µs a conversation
even with a shared context, plus ~10 µs to find each message again in the output. Most templates (ChatML,
SmolLM2's, Zephyr-style) print ``message['content']`` verbatim and decide everything else from the roles. For
those, one render per *shape* (the sequence of roles) with placeholder contents gives a skeleton; filling in
the real contents yields the same text, and where each content starts is known instead of searched for.

When it applies (checked on the template's syntax tree, not guessed): every use of a message's ``content``
is a plain operand of ``+``/``~`` inside an output expression, so the template never tests, filters (``trim``),
splits, or stores it. Anything else (Llama 3's ``| trim``, Qwen's ``'</think>' in content``) and the caller
renders the normal way. Only messages with exactly ``role`` and ``content`` are filled; a skeleton whose
placeholders do not each appear exactly once, in order, is not used. Callers also compare a few filled
renders per batch with real ones and stop filling on any difference (see ``chat_format.render_with_spans``).

>>> from ftkit.models.tiny import ensure_tiny_model
>>> from ftkit.models.loading import load_tokenizer
>>> tok = load_tokenizer(str(ensure_tiny_model()))
>>> conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
>>> text, starts = TemplateFiller(tok).fill(conv)
>>> text == tok.apply_chat_template(conv, tokenize=False), text[starts[1]:starts[1] + 5]
(True, 'hello')
"""
from __future__ import annotations

_PLACEHOLDER = "\ue000ftkit-content-{}\ue001"  # private-use characters: never in a template's own text


def content_is_only_printed(template_source: str) -> bool:
    """True when the template can only print message content verbatim:

    - every ``<x>['content']`` / ``<x>.content`` is a plain operand of ``+``/``~`` inside ``{{ ... }}``;
    - no filters at all, and no calls but ``raise_exception`` (a filter such as ``tojson`` could print a
      message escaped; ``trim`` would rewrite it);
    - ``messages`` and loop variables appear only as ``for ... in messages`` or with a key (``m['role']``),
      never whole (``{{ message }}`` would print its repr).
    """
    from jinja2 import Environment, nodes

    try:
        tree = Environment(extensions=["jinja2.ext.loopcontrols"]).parse(template_source)
    except Exception:  # noqa: BLE001 - a template jinja cannot parse here: render it the normal way
        return False
    if any(True for _ in tree.find_all(nodes.Filter)):
        return False
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "raise_exception"):
            return False
    holders = {"messages"}  # names that hold messages: 'messages' and every loop variable
    for loop in tree.find_all(nodes.For):
        holders.update(n.name for n in [loop.target, *loop.target.find_all(nodes.Name)] if isinstance(n, nodes.Name))

    def is_content(node) -> bool:
        return (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and node.arg.value == "content") \
            or (isinstance(node, nodes.Getattr) and node.attr == "content")

    def walk(node, printed: bool) -> bool:
        """``printed``: every ancestor up to an Output is a concatenation."""
        if is_content(node):
            return printed
        for field, child in _fields(node):
            if isinstance(child, nodes.Name) and child.name in holders and not (
                    (isinstance(node, (nodes.Getitem, nodes.Getattr)) and field == "node")
                    or (isinstance(node, nodes.For) and field in ("iter", "target"))):
                return False  # a message (or all of them) used whole
            if isinstance(node, nodes.Output):
                child_printed = True
            elif isinstance(node, (nodes.Add, nodes.Concat)):
                child_printed = printed
            else:
                child_printed = False
            if not walk(child, child_printed):
                return False
        return True

    return walk(tree, False)


def _fields(node):
    """(field name, child node) for each direct child of a jinja node."""
    from jinja2 import nodes

    for field, value in node.iter_fields():
        for item in (value if isinstance(value, list) else [value]):
            if isinstance(item, nodes.Node):
                yield field, item


class TemplateFiller:
    """Skeleton renders per shape for one tokenizer's template; ``fill(conv)`` -> ``(text, content_starts)``
    or None where this conversation must be rendered the normal way."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.template = tokenizer.chat_template  # the template the skeletons belong to
        self.usable = bool(self.template) and content_is_only_printed(self.template)
        self.batches_checked = 0  # batches whose filled texts a caller compared with real renders
        self._skeletons: dict[tuple[str, ...], list[str] | None] = {}

    def fill(self, conv: list[dict]) -> tuple[str, list[int]] | None:
        if not self.usable or any(len(m) != 2 or "content" not in m or type(m["content"]) is not str for m in conv):
            return None
        shape = tuple(m["role"] for m in conv)
        if shape not in self._skeletons:
            self._skeletons[shape] = self._skeleton(shape)
        parts = self._skeletons[shape]
        if parts is None:
            return None
        out, starts, pos = [parts[0]], [], len(parts[0])
        for m, after in zip(conv, parts[1:]):
            starts.append(pos)
            out.append(m["content"])
            out.append(after)
            pos += len(m["content"]) + len(after)
        return "".join(out), starts

    def _skeleton(self, shape: tuple[str, ...]) -> list[str] | None:
        """The template's text around each message's content: len(shape) + 1 parts, or None."""
        probe = [{"role": role, "content": _PLACEHOLDER.format(i)} for i, role in enumerate(shape)]
        try:
            text = self.tokenizer.apply_chat_template(probe, tokenize=False)
        except Exception:  # noqa: BLE001 - e.g. raise_exception on a role order: the normal path reports it
            return None
        parts, rest = [], text
        for i in range(len(shape)):
            marker = _PLACEHOLDER.format(i)
            if rest.count(marker) != 1:
                return None  # content printed twice or not at all: cannot fill
            before, rest = rest.split(marker)
            parts.append(before)
        parts.append(rest)
        return None if "\ue000ftkit-content-" in "".join(parts) else parts
