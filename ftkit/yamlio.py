"""One YAML library and one YAML version (1.2) for everything ftkit reads and writes.

ftkit writes ``engagement.yaml`` with ruamel.yaml's round-trip mode (it keeps the template's comments). It used
to read the file back with PyYAML, which speaks YAML 1.1: there ``on``/``off``/``yes``/``NO`` are booleans,
``1:20`` is the sexagesimal number 80 and ``017`` is octal, so ``ftkit new --base-model on`` wrote ``id: on`` and
then rejected its own file, and Norway (``NO``) as ``data_residency`` became ``False``. Reading and writing with
the same library and version makes a written value read back as itself.

- :func:`safe_load` parses plain data (dicts, lists, scalars) with ruamel's pure-Python safe loader, which is
  YAML 1.2 (its C loader, like PyYAML's, is YAML 1.1, so ``pure=True`` is deliberate). Duplicate keys are an
  error, not "last one wins".
- :func:`round_trip` is the YAML object that loads and dumps with comments kept.
- :func:`dump` writes plain data as block-style YAML 1.2.
"""
from __future__ import annotations

import io
import re
from typing import Any

# Plain scalars that YAML 1.1 readers (PyYAML, many other tools) would read as booleans, sexagesimal or octal
# numbers. ftkit's own reader is YAML 1.2, but files it writes (engagement.yaml) are also read by people's tools,
# so such strings are written quoted and mean the same to both versions.
_YAML11_NON_STRINGS = re.compile(
    r"(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)"
    r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"
    r"|[-+]?0[0-7_]+")


def _quote_ambiguous(yaml) -> None:
    representer = yaml.representer

    def represent_str(dumper, value: str):
        style = "'" if _YAML11_NON_STRINGS.fullmatch(value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)
    representer.add_representer(str, represent_str)


def _safe():
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True)


def round_trip():
    """A ruamel YAML object that keeps comments and quoting (for editing ``engagement.yaml`` in place)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    _quote_ambiguous(yaml)
    return yaml


class YAMLSyntaxError(ValueError):
    """A YAML parse error with the 1-based line and column where it was found (0 when unknown)."""

    def __init__(self, problem: str, line: int = 0, column: int = 0):
        self.problem, self.line, self.column = problem, line, column
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{problem}")


def safe_load(text: str) -> Any:
    """Plain data from YAML 1.2 text; :class:`YAMLSyntaxError` (with line/column) on bad syntax.

    >>> safe_load("id: on\\nresidency: NO\\nratio: 1:20\\n")
    {'id': 'on', 'residency': 'NO', 'ratio': '1:20'}
    """
    from ruamel.yaml import YAMLError

    try:
        return _safe().load(text)
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        if mark is None:
            raise YAMLSyntaxError(problem) from None
        raise YAMLSyntaxError(problem, mark.line + 1, mark.column + 1) from None


def dump(data: Any) -> str:
    """Block-style YAML 1.2 text of plain data; ``safe_load(dump(x)) == x`` for dicts/lists/scalars.

    >>> dump({"id": "on", "n": 1})
    "id: 'on'\\nn: 1\\n"
    """
    yaml = _safe()
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    _quote_ambiguous(yaml)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
