"""JSON Schema checks: one maintained validator (fastjsonschema) for the data audit and the scoring metric.

Both ``ftkit.data.record_checks`` (does a training answer satisfy ``task.json_schema``?) and
``ftkit.metrics.structured`` (does a model's answer?) call :func:`make_validator`, so they can never disagree
on one schema and answer. fastjsonschema compiles a schema to Python once (milliseconds to import, a few
microseconds per check) and follows the standard for the schema's ``$schema`` draft (draft-07 when none is
given): ``true`` is not ``1`` for ``enum``/``const``, ``0`` is not ``false``, and ``1.0`` *is* an integer from
draft 6 on (draft 4 says it is not). It reports the first violation it finds, with its JSON path.

Remote ``$ref`` URLs are refused (a schema in engagement.yaml must not make ftkit fetch from the network), and
``default`` values are never written into the checked answer (``use_default=False``).
"""
from __future__ import annotations

import json
from functools import lru_cache

from ftkit.errors import ConfigError


class _NoRemoteRefs(dict):
    """fastjsonschema fetches a ``$ref`` with urllib unless ``handlers`` has its scheme: claim every scheme."""

    def __contains__(self, scheme) -> bool:
        return True

    def __getitem__(self, scheme):
        def refuse(uri):
            import fastjsonschema

            raise fastjsonschema.JsonSchemaDefinitionException(
                f"remote $ref {uri!r} is not fetched; put the definition under $defs in the schema itself")
        return refuse


def _message(err) -> str:
    """'data.a[1] must be integer' -> '$.a[1]: must be integer'."""
    text = err.message
    name = err.name or "data"
    if text.startswith(name):
        where, rest = name, text[len(name):].lstrip()
    else:
        where, rest = "data", text
    return "$" + where[len("data"):] + ": " + rest


@lru_cache(maxsize=64)
def _compiled(schema_json: str):
    import fastjsonschema

    try:
        return fastjsonschema.compile(json.loads(schema_json), handlers=_NoRemoteRefs(), use_default=False)
    except Exception as err:  # JsonSchemaDefinitionException, re.error from a bad "pattern", RecursionError
        raise ConfigError(f"task.json_schema is not a valid JSON Schema ({err}); fix it in engagement.yaml "
                          f"(see https://json-schema.org/understanding-json-schema/)") from None


def make_validator(schema: dict):
    """A function value -> list of problems ([] = valid; otherwise the first violation, naming its JSON path).

    An empty schema only asks for a JSON object (what a structured-output answer must be).

    >>> make_validator({"type": "object", "required": ["a"]})({"b": 1})
    ["$: must contain ['a'] properties"]
    >>> make_validator({"properties": {"n": {"type": "integer"}}})({"n": 1.0})
    []
    """
    if not schema:
        return lambda value: [] if isinstance(value, dict) else ["$: expected a JSON object"]
    import fastjsonschema

    check = _compiled(json.dumps(schema, sort_keys=True))

    def validate(value) -> list[str]:
        try:
            check(value)
        except fastjsonschema.JsonSchemaValueException as err:
            return [_message(err)]
        return []
    return validate


def schema_errors(value, schema: dict) -> list[str]:
    """Problems of ``value`` against ``schema``; [] = valid.

    >>> schema_errors({"a": "x"}, {"properties": {"a": {"enum": ["y"]}}})
    ["$.a: must be one of ['y']"]
    """
    return make_validator(schema)(value)
