"""Per-run report, consolidated report, `ftkit lab` working copies, and the demo data generator."""
from __future__ import annotations

import json
import re

from ftkit.reports import build_engagement_report
from ftkit.runner import run_phases


def test_reports_are_self_contained_and_show_the_evidence(make_engagement):
    engagement = make_engagement()
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded
    html = (outcome.run_dir / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", html), "no external scripts (works offline)"
    assert "data:image/png;base64" in html  # figure embedded
    assert "Only runs made through `ftkit run` are evidence" in html
    assert "engagement.yaml" in html  # input hashes listed in the header
    index = build_engagement_report(engagement).read_text()
    assert "Executive summary" in index and "fine_tune" in index
    assert outcome.run_id in index and "intact" in index
    assert "not run yet" in index  # later phases are listed honestly
    assert not re.search(r"<script[^>]+src=", index)


def test_lab_copies_have_parameters_filled_in(make_engagement):
    from ftkit.lab import prepare_lab

    engagement = make_engagement()
    folder = prepare_lab(engagement)
    nb = json.loads((folder / "01_suitability.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    source = "".join(injected[0]["source"])
    assert str(engagement.path) in source and "interactive = True" in source
    # a consultant's edits are never overwritten
    (folder / "01_suitability.ipynb").write_text("{}")
    prepare_lab(engagement)
    assert (folder / "01_suitability.ipynb").read_text() == "{}"


def test_questionnaire_saves_answers_and_keeps_comments(make_engagement):
    import pytest
    from ftkit.config import load_config
    from ftkit.errors import ConfigError
    from ftkit.questionnaire import questionnaire, save_answers

    engagement = make_engagement()
    save_answers(engagement.config_path, {"needs_fresh_facts": True, "quality_examples": 250})
    config = load_config(engagement.config_path)
    assert config.suitability.needs_fresh_facts is True and config.suitability.quality_examples == 250
    assert "# answers depend on new/changing facts" in engagement.config_path.read_text()
    with pytest.raises(ConfigError):
        save_answers(engagement.config_path, {"quality_examples": "many"})
    assert load_config(engagement.config_path).suitability.quality_examples == 250  # file untouched
    assert len(questionnaire(engagement.config_path).children) > 10


def test_demo_data_file_is_the_generator_output(tmp_path):
    from ftkit.demo_data import write
    from ftkit.resources import sample_data_dir

    shipped = (sample_data_dir() / "support_tickets.jsonl").read_text()
    assert write(tmp_path / "t.jsonl").read_text() == shipped
    records = [json.loads(line) for line in shipped.splitlines()]
    assert len(records) >= 600
    answers = [r["messages"][-1]["content"] for r in records]
    assert sum(1 for a in answers if not a.strip()) == 1  # the deliberate empty answer
