"""One YAML library and version (1.2) for reading and writing.

Before: ``ftkit new`` wrote engagement.yaml with ruamel.yaml (YAML 1.2) and read it back with PyYAML (YAML 1.1),
so ``--base-model on`` became True and the new engagement was refused, Norway (``NO``) as data_residency became
False, and ``1:20`` became the number 80.
"""
from __future__ import annotations

import json

import pytest

from ftkit.cli import main
from ftkit.config import load_config, load_yaml
from ftkit.errors import ConfigError
from ftkit.yamlio import dump, round_trip, safe_load


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "a"},
                                             {"role": "assistant", "content": "b"}]}) + "\n")
    return path


def test_new_base_model_on_reads_back_as_written(tmp_path, data_file):
    root = tmp_path / "eng"
    assert main(["new", "acme", "--data", str(data_file), "--base-model", "on", "--root", str(root)]) == 0
    config = load_config(root / "acme" / "engagement.yaml")
    assert config.base_model.id == "on"
    import yaml  # a YAML 1.1 reader (the consultant's own tools) must read the same value
    assert yaml.safe_load((root / "acme" / "engagement.yaml").read_text())["base_model"]["id"] == "on"


@pytest.mark.parametrize("text,value", [("NO", "NO"), ("1:20", "1:20"), ("off", "off"), ("Yes", "Yes")])
def test_yaml_1_1_lookalikes_stay_text(tmp_path, text, value):
    path = tmp_path / "e.yaml"
    path.write_text(f"compliance:\n  data_residency: {text}\nclient:\n  name: {text}\n")
    config = load_config(path)
    assert config.compliance.data_residency == value and config.client.name == value


def test_written_values_read_back_as_themselves():
    data = {"a": "on", "b": "NO", "c": "1:20", "d": "yes", "e": "017", "f": [1, 2.5, True, None], "g": "plain"}
    assert safe_load(dump(data)) == data


def test_round_trip_keeps_comments_and_quotes_ambiguous_strings():
    import io

    yaml = round_trip()
    doc = yaml.load("# top\nbase_model:\n  id: x  # the model\n")
    doc["base_model"]["id"] = "on"
    out = io.StringIO()
    yaml.dump(doc, out)
    assert "# top" in out.getvalue() and "# the model" in out.getvalue()
    assert safe_load(out.getvalue())["base_model"]["id"] == "on"


def test_duplicate_keys_and_syntax_errors_name_the_line(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("client:\n  name: a\n  name: b\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_yaml(path)
    path.write_text("client: [a\n")
    with pytest.raises(ConfigError, match="line"):
        load_yaml(path)


def test_ftkit_imports_one_yaml_library():
    import ast
    from pathlib import Path

    import ftkit

    users = set()
    for file in Path(ftkit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "yaml" or n.startswith("yaml.") for n in names):
                users.add(file.name)
    assert users == set(), f"PyYAML imported by {sorted(users)}; use ftkit.yamlio"
