"""Notebook parameters: read what a phase notebook declares, and check values before running it.

Papermill's ``-p`` guesses types (``007`` becomes 7) and silently accepts unknown names; ftkit validates
against the declared ``name: type = default  # help`` lines of the ``parameters`` cell first.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from ftkit.errors import UsageError
from ftkit.fsutil import sha256_file
from ftkit.secrets_scan import is_secret_name

RUNNER_PARAMETERS = ("engagement_dir", "run_dir")  # always filled in by the runner


@functools.lru_cache(maxsize=32)
def _declared(path: str, digest: str) -> dict[str, dict]:
    import papermill

    return {name: dict(info) for name, info in papermill.inspect_notebook(path).items()}


def declared_parameters(notebook: Path) -> dict[str, dict]:
    """name -> {inferred_type_name, default, help} of the notebook's parameters cell (cached by file hash)."""
    return _declared(str(notebook), sha256_file(notebook))


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce(name: str, raw, type_name: str):
    """Convert a -p value to the declared type, or raise UsageError naming the parameter.

    >>> coerce("shots", "3", "int"), coerce("label", "007", "str"), coerce("interactive", "yes", "bool")
    (3, '007', True)
    """
    if not isinstance(raw, str):
        return _check_python_value(name, raw, type_name)
    text = raw.strip()
    try:
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if type_name in ("list", "dict"):
            value = json.loads(text)
            if type(value).__name__ != type_name:
                raise ValueError
            return value
    except ValueError:
        examples = {"int": "a whole number like 3", "float": "a number like 0.5", "bool": "true or false",
                    "list": 'a JSON list like ["a","b"]', "dict": 'a JSON object like {"a": 1}'}
        raise UsageError(f"Parameter '{name}' must be {examples.get(type_name, type_name)}, got {raw!r}.") from None
    return raw  # str and anything undeclared-typed stay text


def _check_python_value(name: str, value, type_name: str):
    expected = {"int": int, "float": (int, float), "bool": bool, "str": str, "list": list, "dict": dict}.get(type_name)
    if expected and (not isinstance(value, expected) or (type_name in ("int", "float") and isinstance(value, bool))):
        raise UsageError(f"Parameter '{name}' must be of type {type_name}, got {value!r}.")
    return float(value) if type_name == "float" else value


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """['shots=3', 'model=x'] -> {'shots': '3', 'model': 'x'}; raises UsageError on malformed items."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p expects KEY=VALUE, got {pair!r}.")
        out[key.strip()] = value
    return out


def validate(notebook: Path, overrides: dict, phase_name: str) -> dict:
    """Checked, typed parameters for one notebook; unknown, secret-like or runner-owned names are refused."""
    declared = declared_parameters(notebook)
    values = {}
    for name, raw in overrides.items():
        if is_secret_name(name):
            raise UsageError(f"Parameter '{name}' looks like a secret. Secrets are never parameters (papermill "
                             f"stores parameters in the notebook): put the value in an environment variable and "
                             f"pass its name instead, e.g. -p {name}_env=MY_VAR.")
        if name in RUNNER_PARAMETERS:
            raise UsageError(f"Parameter '{name}' is set by ftkit run itself; remove it from -p.")
        if name not in declared:
            valid = ", ".join(n for n in declared if n not in RUNNER_PARAMETERS) or "none"
            raise UsageError(f"Phase '{phase_name}' has no parameter '{name}'. Its parameters: {valid}.")
        values[name] = coerce(name, raw, declared[name].get("inferred_type_name", "None"))
    return values
