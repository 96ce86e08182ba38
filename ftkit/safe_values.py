"""Hostile values in, safe artefacts out: one place for text checks and for quoting at every sink.

Values in ftkit's generated files come from ``engagement.yaml`` (free text a consultant typed) and from the
client's data. Two defences, both here so every writer uses the same rules:

- **At the source** (``text_problem``, called by ``config.py`` for every text setting): one-line settings (names,
  ids, paths, URLs) refuse every control character (newline, NUL, ESC, DEL, C1), Unicode line/paragraph
  separators and the invisible bidi overrides/isolates that make text display in another order than it is read
  ("Trojan source"); multi-line settings (system prompt, objective, notes) keep newline and tab, nothing else
  of that set.
- **At the sink**: shell scripts quote every interpolated value with :func:`shlex.quote` and keep ``#`` comments
  on one line (``SHELL_FILTERS``; :func:`shell_environment` refuses to render a ``{{ value }}`` that went
  through none of them); Python files get literals from :func:`repr`; Ollama Modelfile blocks are written only
  when Ollama's parser reads them back exactly (:func:`modelfile_block`); CSV cells that a spreadsheet would
  evaluate as a formula get OWASP's leading ``'`` (:func:`csv_cell`, undone on reading by
  :func:`csv_uncell`); YAML and JSON are always written by their libraries.

The quoting itself is the standard library's (``shlex.quote``, ``csv``, ``repr``, ``json``); what is
hand-written is only the choice of characters, since no library carries these rules.
"""
from __future__ import annotations

import csv
import io
import shlex
import unicodedata

# -- validation at the source -----------------------------------------------------------------------------

# Invisible characters that reorder how text is displayed (bidi embeddings, overrides and isolates). The plain
# direction marks (U+200E, U+200F, U+061C) are left alone: right-to-left text legitimately uses them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_SEPARATORS = frozenset("\u2028\u2029")  # Python's splitlines() and JavaScript break lines on them
MULTILINE_ALLOWED = frozenset("\n\t")
_NAMES = {"\n": "line break", "\r": "carriage return", "\t": "tab", "\x00": "NUL", "\x1b": "ESC",
          "\x7f": "DEL", "\x85": "next line (NEL)", "\u2028": "line separator", "\u2029": "paragraph separator",
          "\u202e": "right-to-left override", "\u202d": "left-to-right override"}
MAX_LISTED_CHARACTERS = 5


def refused_character(ch: str, multiline: bool = False) -> bool:
    """True when ``ch`` may not appear in a setting of this kind.

    >>> [refused_character(c) for c in ("a", "\\n", "\\u202e", "\\u200f")]
    [False, True, True, False]
    >>> refused_character("\\n", multiline=True), refused_character("\\r", multiline=True)
    (False, True)
    """
    if multiline and ch in MULTILINE_ALLOWED:
        return False
    return unicodedata.category(ch) == "Cc" or ch in LINE_SEPARATORS or ch in BIDI_CONTROLS


def describe_character(ch: str) -> str:
    """'U+000A (line break)'."""
    name = _NAMES.get(ch) or unicodedata.name(ch, "").lower() or "control character"
    return f"U+{ord(ch):04X} ({name})"


def text_problem(value: str, multiline: bool = False) -> str:
    """'' when ``value`` is fine for a setting of this kind, else what to fix, naming each bad character once.

    >>> text_problem("Acme Bank")
    ''
    >>> text_problem("Acme\\nrm -rf ~").split(";")[0]
    'contains U+000A (line break) at position 4'
    >>> text_problem("line 1\\nline 2", multiline=True)
    ''
    """
    found: dict[str, int] = {}
    for i, ch in enumerate(value):
        if ch not in found and refused_character(ch, multiline):
            found[ch] = i
    if not found:
        return ""
    listed = [f"{describe_character(ch)} at position {i}" for ch, i in list(found.items())[:MAX_LISTED_CHARACTERS]]
    more = f" and {len(found) - MAX_LISTED_CHARACTERS} more" if len(found) > MAX_LISTED_CHARACTERS else ""
    kind = ("multi-line text keeps line breaks and tabs but no other control characters or bidi overrides"
            if multiline else "a one-line setting cannot hold control characters, line breaks or bidi overrides")
    return f"contains {', '.join(listed)}{more}; {kind}: remove them"


# -- shell scripts ----------------------------------------------------------------------------------------

class Quoted(str):
    """Text already made safe for the file being rendered (returned by the sink filters below)."""


def shell_quote(value) -> Quoted:
    """One shell word that stands for exactly ``value`` (``shlex.quote``).

    >>> print(shell_quote("acme-ft"), shell_quote("x; rm -rf ~"), shell_quote(""))
    acme-ft 'x; rm -rf ~' ''

    A NUL cannot be part of a command-line argument at all (bash drops it silently), so it is refused.
    """
    text = str(value)
    if "\x00" in text:
        from ftkit.errors import FtkitError

        raise FtkitError(f"{_short(text)} contains a NUL character, which no shell command argument can hold; "
                         f"remove it from the setting it came from")
    return Quoted(shlex.quote(text))


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def shell_join(values) -> Quoted:
    """Several shell words, each quoted.

    >>> print(shell_join(["--quantization", "fp8"]))
    --quantization fp8
    """
    return Quoted(" ".join(shell_quote(v) for v in values))


def one_line(value) -> str:
    """``value`` on one line: control characters, line separators and bidi overrides written as visible escapes.

    For comments (shell ``#``, Modelfile ``#``) and other places where a line break would end the text early.

    >>> one_line("Acme\\nrm -rf ~")
    'Acme\\\\nrm -rf ~'
    """
    text = str(value)
    if not any(refused_character(ch) for ch in text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if refused_character(ch) else ch for ch in text)


def comment(value) -> Quoted:
    """Text for inside a ``#`` comment line: kept on that line (see :func:`one_line`)."""
    return Quoted(one_line(value))


SHELL_FILTERS = {"sh": shell_quote, "sh_join": shell_join, "comment": comment}


def _require_quoted(value):
    """jinja ``finalize`` hook: every ``{{ ... }}`` must come out of a quoting filter (or be a number)."""
    if isinstance(value, Quoted) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise ValueError(f"unquoted value {value!r} in a generated script: pass it through a quoting filter "
                     f"(| sh, | sh_join, | comment, | py, | py_doc)")


def shell_environment(loader):
    """A jinja Environment for files that are executed (shell, Python, Modelfile): strict undefined, the
    quoting filters, and a ``finalize`` hook that refuses any interpolation that skipped them, so a new
    template cannot forget to quote."""
    import jinja2

    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False, finalize=_require_quoted)
    env.filters.update({**SHELL_FILTERS, **PYTHON_FILTERS, **MODELFILE_FILTERS})
    return env


# -- Markdown (notebook output, rendered into report.html) -------------------------------------------------
# What makes a link, an image, raw HTML, an entity or an autolink (``http:``); CommonMark lets a backslash escape
# any ASCII punctuation. Backticks and emphasis are left alone: harmless, and ftkit's own sentences use them.
_MARKDOWN_ACTIVE = frozenset("\\[]()<>!:&")


def markdown_text(value) -> str:
    """``value`` as literal text inside a Markdown sentence shown in a notebook (and so in ``report.html``):
    client text cannot become a link or image (``[x](javascript:...)``), a tag, or a clickable URL.

    >>> print(markdown_text("[click](javascript:alert(1)) <b>"))
    \\[click\\]\\(javascript\\:alert\\(1\\)\\) \\<b\\>
    """
    return "".join("\\" + ch if ch in _MARKDOWN_ACTIVE else ch for ch in str(value))


# -- Python source ----------------------------------------------------------------------------------------

def python_literal(value) -> Quoted:
    """A Python literal (``repr``) that evaluates to exactly ``value`` (str, number, bool, None, list, dict).

    >>> print(python_literal('a\"\"\"b'))
    'a\"\"\"b'
    """
    return Quoted(repr(value))


def python_docstring_text(value) -> Quoted:
    """Text for inside a triple-double-quoted docstring: one line, backslashes and quotes escaped.

    >>> print(python_docstring_text('x\"\"\"; import os'))
    x\\"\\"\\"; import os
    """
    return Quoted(one_line(value).replace("\\", "\\\\").replace('"', '\\"'))


PYTHON_FILTERS = {"py": python_literal, "py_doc": python_docstring_text}


# -- Ollama Modelfile -------------------------------------------------------------------------------------
# Ollama's Modelfile parser (parser/parser.go) has no escape character. A value ends at a line break (CR or
# LF) once the text so far, trimmed, is a complete quoted string: for a """ block, when it ends with """. So a
# block holds ``text`` exactly unless a line of it (before the last) ends with """ (trailing spaces aside).
# It also drops every character Go's strconv.IsPrint rejects (controls, format characters, non-ASCII spaces).

def _ends_early(text: str, quote: str) -> bool:
    """Would Ollama end a value that starts with ``quote`` before the end of ``text``?"""
    kept = "".join(ch for ch in text if not _ollama_drops(ch))
    for i, ch in enumerate(kept):
        if ch in "\r\n":
            so_far = (quote + kept[:i]).rstrip(" \t\r\n")
            if len(so_far) >= 2 * len(quote) and so_far.endswith(quote):
                return True
    return False


def modelfile_block(value: str) -> Quoted | None:
    """``\"\"\"value\"\"\"`` when Ollama reads it back as exactly ``value``; None when it cannot (a line that ends
    with \"\"\" would end the block early and Ollama has no escape), so the caller must leave it out or escape
    it in its own syntax (see :func:`modelfile_template`).

    >>> print(modelfile_block('Answer in JSON like {"a": 1}.'))
    \"\"\"Answer in JSON like {"a": 1}.\"\"\"
    >>> modelfile_block('Quote it:\\n\"\"\"\\nFROM evil') is None
    True
    """
    text = str(value)
    if _ends_early(text, '"""'):
        return None
    return Quoted(f'"""{text}"""')


def modelfile_template(go_template: str) -> Quoted:
    """A TEMPLATE block for a Go template: a \"\"\" inside it is written as the Go string ``{{ "\\"\\"\\"" }}``,
    which renders the same text, so the block always parses back to an equivalent template."""
    block = modelfile_block(go_template)
    if block is not None:
        return block
    return Quoted('"""' + go_template.replace('"""', '{{ "\\"\\"\\"" }}') + '"""')


def modelfile_string(value: str) -> Quoted | None:
    """A value such as ``PARAMETER stop``: ``"value"`` for one line without quotes, else a \"\"\" block (or None,
    see :func:`modelfile_block`)."""
    text = str(value)
    if '"' not in text and "\n" not in text and "\r" not in text:
        return Quoted(f'"{text}"')
    return modelfile_block(text)


def modelfile_path(value) -> Quoted:
    """A FROM/ADAPTER value: bare when Ollama reads it back unchanged, else quoted.

    >>> print(modelfile_path("../export/merged"), modelfile_path("/models/my model "))
    ../export/merged "/models/my model "
    """
    text = str(value)
    if text and text == text.strip() and not any(ch in text for ch in '"\r\n') and not ollama_drops(text):
        return Quoted(text)
    quoted = modelfile_string(text)
    if quoted is None:
        from ftkit.errors import FtkitError

        raise FtkitError(f"the path {text!r} cannot be written in a Modelfile (a line of it ends with \"\"\"); "
                         f"move the model to a plainer path")
    return quoted


def ollama_drops(value: str) -> list[str]:
    """The characters of ``value`` that Ollama's parser silently drops (not printable for Go's strconv.IsPrint,
    which accepts letters, marks, numbers, punctuation, symbols and the ASCII space; tab and line breaks are
    kept by the parser's own rule)."""
    return sorted({ch for ch in str(value) if _ollama_drops(ch)})


def _ollama_drops(ch: str) -> bool:
    return ch not in "\t\n\r " and unicodedata.category(ch)[0] not in "LMNPS"


# modelfile_block/modelfile_string can return None (not expressible), so callers use them in Python, not as filters.
MODELFILE_FILTERS = {"modelfile_template": modelfile_template, "modelfile_path": modelfile_path}


# -- CSV (spreadsheets) -----------------------------------------------------------------------------------
# OWASP "CSV Injection": a cell that starts with one of these is evaluated as a formula by Excel, LibreOffice
# and Google Sheets (=HYPERLINK(...), DDE payloads like =cmd|' /C calc'!A0); ASVS 1.2.10 adds NUL.
# Hand-written rather than defusedcsv (PyPI): that library skips tab and CR, leaves text such as "-3.5" alone and
# rewrites every | in an escaped cell as \|, which a filled sheet's read-back could not undo exactly.
FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r", "\x00")
CSV_NOTE = ("Text cells that began with =, +, -, @, a tab, a carriage return or NUL start with an added ' so "
            "spreadsheet programs show them as text instead of running them as formulas (CSV injection); the JSON "
            "outputs keep the exact text, and ftkit removes the ' again when it reads a sheet back.")


def csv_cell(value):
    """``value`` for a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``.

    Only text is changed: numbers that ftkit writes as numbers (ints, floats) stay numbers, while text that
    looks like a negative number ("-3.5" typed by the client) is text and is prefixed like any other.

    >>> csv_cell("=HYPERLINK(\\"http://x\\")"), csv_cell("@SUM(1+1)"), csv_cell("fine"), csv_cell(-3.5)
    ('\\'=HYPERLINK("http://x")', "'@SUM(1+1)", 'fine', -3.5)
    """
    if isinstance(value, str) and value.startswith(FORMULA_LEADERS):
        return "'" + value
    return value


def csv_uncell(text: str) -> str:
    """Undo :func:`csv_cell` on a cell read back from a sheet (a reviewer's filled copy).

    >>> csv_uncell("'=1+1"), csv_uncell("'quoted"), csv_uncell("2")
    ('=1+1', "'quoted", '2')
    """
    if isinstance(text, str) and text.startswith("'") and text[1:].startswith(FORMULA_LEADERS):
        return text[1:]
    return text


def csv_text(header, rows) -> str:
    """A whole CSV document: ``header`` then ``rows`` (lists, or dicts keyed by the header), every text cell of
    the rows quoted and neutralised by :func:`csv_cell`; numbers unquoted. Quoting every text cell also keeps a
    separator inside a cell (``,`` or a ``;``-locale's ``;``) from starting a new, unescaped cell."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([csv_cell(h) for h in header])  # ftkit's own column names
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for row in rows:
        cells = [row.get(h, "") for h in header] if isinstance(row, dict) else list(row)
        writer.writerow([csv_cell("" if c is None else c) for c in cells])
    return buffer.getvalue()
