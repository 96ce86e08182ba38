"""One JSON-Schema validator for the data audit and the structured-output metric, following the standard.

Before fastjsonschema, each module hand-wrote a subset: they disagreed on one schema and answer, both accepted
``true`` for ``enum: [1]`` and ``0`` for ``const: false``, and both rejected ``1.0`` as an integer. jsonschema
(the reference implementation) is the oracle here.
"""
from __future__ import annotations

import pytest

from ftkit.data.record_checks import TaskContext, run_record_checks, schema_error
from ftkit.errors import ConfigError
from ftkit.metrics.schema import make_validator

jsonschema = pytest.importorskip("jsonschema")

CASES = [
    ({"enum": [1]}, True),
    ({"enum": [1]}, 1),
    ({"const": False}, 0),
    ({"const": False}, False),
    ({"type": "integer"}, 1.0),
    ({"type": "integer"}, 1.5),
    ({"type": "integer"}, True),
    ({"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}, 1.0),
    ({"enum": [[1]]}, [True]),
    ({"const": {"a": 1}}, {"a": True}),
    ({"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}, "required": ["a"]}, {"a": "x"}),
    ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "null"}]}}}, {"a": 3}),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 2}, [1, 2, 3]),
    ({"properties": {"s": {"pattern": "^a+$"}}}, {"s": "ab"}),
    ({"anyOf": [{"required": ["x"]}, {"required": ["y"]}]}, {"z": 1}),
]


@pytest.mark.parametrize("schema,value", CASES)
def test_validity_matches_the_reference_implementation(schema, value):
    expected = jsonschema.validators.validator_for(schema)(schema).is_valid(value)
    assert (make_validator(schema)(value) == []) is expected
    assert (schema_error(value, schema) == "") is expected


def test_the_cases_the_hand_validators_got_wrong():
    assert make_validator({"enum": [1]})(True)  # true is not 1
    assert make_validator({"const": False})(0)  # 0 is not false
    assert make_validator({"type": "integer"})(1.0) == []  # draft 6+: 1.0 is an integer


def test_audit_and_metric_agree_on_one_schema_and_answer():
    schema = {"type": "object", "required": ["category"],
              "properties": {"category": {"enum": ["billing"]}, "n": {"type": "integer"}},
              "additionalProperties": False}
    for answer in ({"category": "billing", "n": 2.0}, {"category": "x", "extra": 1}, {"n": True}):
        metric = make_validator(schema)(answer)
        audit = schema_error(answer, schema)
        assert (metric == []) == (audit == "")
        assert metric[:1] == ([audit] if audit else [])


def test_the_audit_reports_a_violation_with_its_path():
    import json

    task = TaskContext("structured_output", "category", (), {"properties": {"category": {"enum": ["billing"]}}})
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": json.dumps({"category": "refund"})}]
    found = [f for f in run_record_checks(msgs, task) if f[0] == "answer.schema"]
    assert found and "$.category" in found[0][1]


def test_defaults_are_not_written_into_the_answer():
    answer = {"a": 1}
    make_validator({"properties": {"b": {"default": 5}}})(answer)
    assert answer == {"a": 1}


def test_an_invalid_schema_is_a_config_error_naming_the_setting():
    with pytest.raises(ConfigError, match="task.json_schema"):
        make_validator({"type": "no-such-type"})
    with pytest.raises(ConfigError, match="task.json_schema"):
        make_validator({"properties": {"s": {"pattern": "("}}})


def test_remote_refs_are_not_fetched():
    with pytest.raises(ConfigError, match="remote"):
        make_validator({"$ref": "https://example.invalid/schema.json"})({})
