"""engagement.yaml: the template validates, documents every field, and errors name field, value and fix."""
from __future__ import annotations

import pytest
from ftkit import yamlio

from ftkit.config import EngagementConfig, iter_fields, load_config, parse_config
from ftkit.errors import ConfigError
from ftkit.resources import templates_dir


def test_template_loads_and_validates():
    config = load_config(templates_dir() / "engagement.yaml")
    assert isinstance(config, EngagementConfig)
    assert config.data.split.train == pytest.approx(0.8)
    assert config.training.method == "lora"


def test_every_setting_is_documented_in_the_template():
    text = (templates_dir() / "engagement.yaml").read_text()
    lines = {line.split(":")[0].strip(): line for line in text.splitlines() if ":" in line and not line.lstrip().startswith("#")}
    undocumented = []
    fields = list(iter_fields())
    sections = {d for d, _ in fields if any(other.startswith(d + ".") for other, _ in fields)}
    for dotted, field in fields:
        leaf = dotted.split(".")[-1]
        if leaf not in lines or ("#" not in lines[leaf] and dotted not in sections):
            undocumented.append(dotted)
        assert field.metadata.get("help"), f"{dotted} has no help text"
    assert undocumented == []


def test_template_comments_are_the_help_texts():
    # Help texts live once, in the dataclass metadata; the template's comments are generated from them.
    from ftkit.config_template import synced

    text = (templates_dir() / "engagement.yaml").read_text()
    _, changed = synced(text)
    assert changed == [], (f"templates/engagement.yaml comments differ from the help texts of {changed}: run "
                           f"`python -m ftkit.config_template` to rewrite them (edit the help in ftkit/config.py)")


def test_template_sync_rewrites_only_comments_and_catches_a_drifted_one():
    from ftkit.config_template import help_texts, synced

    text = (templates_dir() / "engagement.yaml").read_text()
    drifted = text.replace("# Fraction for training.", "# share of examples for training")
    assert drifted != text
    fixed, changed = synced(drifted)
    assert changed == ["data.split.train"] and fixed == text
    helps = {**help_texts(), "data.split.train": 'Training share; "#" is not a comment inside quotes.'}
    rewritten, changed = synced(text, helps)
    assert changed == ["data.split.train"] and yamlio.safe_load(rewritten) == yamlio.safe_load(text)
    assert '    train: 0.8                  # Training share; "#" is not a comment' in rewritten


def test_all_problems_are_reported_at_once_with_field_and_value():
    data = yamlio.safe_load((templates_dir() / "engagement.yaml").read_text())
    data["task"]["type"] = "sumarisation"
    data["training"]["epochs"] = "three"
    data["training"]["lerning_rate"] = 1e-4
    data["data"]["split"]["train"] = 0.9
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    problems = info.value.problems
    text = str(info.value)
    assert "task.type: 'sumarisation' is not one of" in text
    assert "training.epochs: expected a number, got 'three'" in text
    assert "training.lerning_rate: unknown setting; did you mean 'learning_rate'?" in text
    assert "data.split" in text and "must be 1.0" in text
    assert len(problems) == 4


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "engagement.yaml"
    path.write_text("client:\n  name: x\n task: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line 3" in str(info.value) and str(path) in str(info.value)


def test_wrong_shapes_are_reported():
    with pytest.raises(ConfigError) as info:
        parse_config({"data": {"files": "data/a.jsonl"}, "evaluation": {"acceptance": [{"metric": "accuracy"}]},
                      "compliance": {"frameworks": ["hipaa", "sox"]}, "budget": {"gpu_memory_gb": True}})
    text = str(info.value)
    assert "data.files: expected a list" in text
    assert "needs min or max" in text
    assert "compliance.frameworks[1]: 'sox' is not one of" in text
    assert "budget.gpu_memory_gb: expected a number, got True" in text


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(["not", "a", "mapping"])
