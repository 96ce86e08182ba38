"""JSON Schema checks: the ``jsonschema`` package when installed, else a small built-in subset.

The subset covers what answer schemas use: type (incl. lists of types), properties, required,
additionalProperties (bool or schema), enum, const, items, minItems/maxItems, minLength/maxLength, pattern,
minimum/maximum. Unknown keywords are ignored, as JSON Schema itself does.
"""
from __future__ import annotations

import re

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(value, schema: dict, path: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (subset), each naming the JSON path; [] = valid.

    >>> schema_errors({"a": 1}, {"type": "object", "required": ["a", "b"]})
    ["$: missing required property 'b'"]
    >>> schema_errors({"a": "x"}, {"properties": {"a": {"enum": ["y"]}}})
    ["$.a: 'x' is not one of ['y']"]
    """
    if not isinstance(schema, dict):
        return []
    errors = _type_errors(value, schema, path)
    if errors:
        return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, path)
    elif isinstance(value, list):
        errors += _array_errors(value, schema, path)
    elif isinstance(value, str):
        errors += _string_errors(value, schema, path)
    elif _TYPES["number"](value):
        errors += _number_errors(value, schema, path)
    return errors


def _type_errors(value, schema: dict, path: str) -> list[str]:
    wanted = schema.get("type")
    if wanted is None:
        return []
    names = wanted if isinstance(wanted, list) else [wanted]
    if any(_TYPES.get(n, lambda v: True)(value) for n in names):
        return []
    return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]


def _object_errors(value: dict, schema: dict, path: str) -> list[str]:
    errors = [f"{path}: missing required property {k!r}" for k in schema.get("required", []) if k not in value]
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            errors += schema_errors(item, props[key], f"{path}.{key}")
        elif extra is False:
            errors.append(f"{path}: unexpected property {key!r}")
        elif isinstance(extra, dict):
            errors += schema_errors(item, extra, f"{path}.{key}")
    return errors


def _array_errors(value: list, schema: dict, path: str) -> list[str]:
    errors = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: more than {schema['maxItems']} items")
    if isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def _string_errors(value: str, schema: dict, path: str) -> list[str]:
    errors = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match pattern {schema['pattern']!r}")
    return errors


def _number_errors(value, schema: dict, path: str) -> list[str]:
    errors = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: below minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: above maximum {schema['maximum']}")
    return errors


SUBSET_KEYWORDS = {"type", "properties", "required", "additionalProperties", "enum", "const", "items", "minItems",
                   "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
                   # annotations: no effect on validity
                   "$schema", "$id", "title", "description", "default", "examples", "$comment"}


_DATA_KEYWORDS = {"enum", "const", "default", "examples", "required"}


def keywords(schema, found: set | None = None) -> set[str]:
    """Every keyword used anywhere in ``schema`` (property names are not keywords).

    >>> sorted(keywords({"type": "object", "properties": {"a": {"oneOf": []}}}))
    ['oneOf', 'properties', 'type']
    """
    found = set() if found is None else found
    if isinstance(schema, dict):
        found.update(schema)
        for key, sub in schema.items():
            if key in _DATA_KEYWORDS:
                continue  # their values are data, not schemas
            children = sub.values() if key in ("properties", "patternProperties", "$defs", "definitions") \
                and isinstance(sub, dict) else [sub]
            for child in children:
                keywords(child, found)
    elif isinstance(schema, list):
        for item in schema:
            keywords(item, found)
    return found


def make_validator(schema: dict):
    """A function value -> list of problems. The built-in subset when the schema only uses its keywords
    (fast, no dependency); else ``jsonschema`` (full standard; its import takes seconds) when installed."""
    if not schema:
        return lambda value: [] if isinstance(value, dict) else ["$: expected a JSON object"]
    if keywords(schema) <= SUBSET_KEYWORDS:
        return lambda value: schema_errors(value, schema)
    try:
        import jsonschema
    except ImportError:
        from ftkit.errors import MissingDependency
        unsupported = ", ".join(sorted(keywords(schema) - SUBSET_KEYWORDS))
        raise MissingDependency("jsonschema", f"task.json_schema uses {unsupported}, which") from None
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    return lambda value: [f"{_json_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]


def _json_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
