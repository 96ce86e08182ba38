"""``templates/engagement.yaml``'s comments come from the settings' help texts, which live once: in the
dataclass metadata of ``ftkit.config`` (``field(metadata={"help": ...})``).

``synced(text)`` rewrites every setting's end-of-line comment to its help text and leaves everything else
(values, order, header and full-line comments) as it is; a test checks the shipped template is in sync. After
changing a help text or adding a setting to the template, run ``python -m ftkit.config_template`` to rewrite
the shipped file (``--check`` only reports). Line-based on purpose: the template is one ``key: value  # help``
per line, and a YAML round-trip library would re-flow the hand-kept layout.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

COMMENT_COLUMN = 32  # where the '#' of a setting's comment starts, when the key and value leave room
_SETTING = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_]\w*):(?P<rest>(?:\s.*)?)$")


def help_texts() -> dict[str, str]:
    """Dotted setting name (sections included) -> its help text."""
    from ftkit.config import iter_fields

    return {dotted: fld.metadata["help"] for dotted, fld in iter_fields()}


def split_comment(rest: str) -> tuple[str, str]:
    """Split what follows ``key:`` into (value, comment) at the first ``#`` outside quotes after a space.

    >>> split_comment(' "a # b"   # the help')
    (' "a # b"', 'the help')
    >>> split_comment(" []")
    (' []', '')
    """
    quote = ""
    for i, char in enumerate(rest):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].rstrip(), rest[i + 1:].strip()
    return rest.rstrip(), ""


def synced(text: str, helps: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """(``text`` with each setting's comment set to its help text, the dotted names whose line changed).

    Keys that are not settings (a typo, a removed setting) are left alone: loading the file reports them.
    """
    helps = help_texts() if helps is None else helps
    out, changed, path = [], [], []  # path: (indent, key) of the enclosing sections
    for line in text.splitlines():
        match = _SETTING.match(line)
        if not match:
            out.append(line)
            continue
        indent = len(match["indent"])
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match["key"]))
        dotted = ".".join(key for _, key in path)
        if dotted not in helps:
            out.append(line)
            continue
        value = split_comment(match["rest"])[0].strip()
        head = f"{match['indent']}{match['key']}:" + (f" {value}" if value else "")
        new = (head.ljust(COMMENT_COLUMN) if len(head) < COMMENT_COLUMN - 1 else head + "  ") + "# " + helps[dotted]
        if new != line:
            changed.append(dotted)
        out.append(new)
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), changed


def main(argv: list[str] | None = None) -> int:
    from ftkit.resources import templates_dir

    args = sys.argv[1:] if argv is None else argv
    path = Path(templates_dir()) / "engagement.yaml"
    text, changed = synced(path.read_text(encoding="utf-8"))
    if "--check" in args:
        print("\n".join(f"{path}: comment of {name} differs from its help text" for name in changed) or "in sync")
        return 1 if changed else 0
    if changed:
        from ftkit.fsutil import atomic_write_text

        atomic_write_text(path, text)
    print(f"{path}: {len(changed)} comment(s) rewritten from the help texts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
