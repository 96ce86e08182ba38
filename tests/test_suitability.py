"""Suitability rules: each recommendation path, readiness bands, method, hosting, timeline."""
from __future__ import annotations

import pytest

from ftkit.config import EngagementConfig
from ftkit.suitability import RULES, assess, choose_hosting, count_records, readiness_band, Facts


def config(**answers) -> EngagementConfig:
    cfg = EngagementConfig()
    for key, value in answers.items():
        section, _, name = key.partition("__")
        if name:
            setattr(getattr(cfg, section), name, value)
        else:
            setattr(cfg.suitability, key, value)
    return cfg


FIT = dict(prompt_engineering_tried=True, strict_output_format=True, narrow_task=True)


@pytest.mark.parametrize("n,band", [(0, "insufficient"), (99, "insufficient"), (100, "pilot"), (499, "pilot"),
                                    (500, "adequate"), (1999, "adequate"), (2000, "strong"), (50000, "strong")])
def test_readiness_bands(n, band):
    assert readiness_band(n)[0] == band


def test_fine_tune_when_format_and_narrow_task_and_enough_data():
    result = assess(config(**FIT), 800, 0.135)
    assert result.recommendation == "fine_tune"
    assert result.method == "lora" and result.hosting == "managed_or_self_hosted"
    assert 4 <= result.timeline_weeks[0] <= result.timeline_weeks[1] <= 10


def test_too_little_data_means_not_yet():
    result = assess(config(**FIT), 60, 7)
    assert result.recommendation == "not_yet"
    assert any("100-200" in c for c in result.would_change)


def test_fresh_facts_mean_rag_or_hybrid():
    assert assess(config(prompt_engineering_tried=True, needs_fresh_facts=True), 800, 7).recommendation == "rag"
    hybrid = assess(config(needs_fresh_facts=True, **FIT), 800, 7)
    assert hybrid.recommendation == "hybrid" and hybrid.method


def test_prompt_engineering_first_when_not_tried():
    result = assess(config(strict_output_format=True, narrow_task=True), 800, 7)
    assert result.recommendation == "prompt_engineering"
    assert "prompt_engineering_first" in {c.code for c in result.criteria if c.points_to == "prompt_engineering"}


def test_unstable_requirements_mean_prompt_engineering():
    assert assess(config(requirements_stable=False, **FIT), 800, 7).recommendation == "prompt_engineering"


def test_no_fit_criteria_means_prompt_engineering():
    assert assess(config(prompt_engineering_tried=True), 5000, 7).recommendation == "prompt_engineering"


def test_qlora_when_gpu_memory_is_the_constraint():
    result = assess(config(budget__gpu_memory_gb=16.0, **FIT), 800, 8)
    assert result.method == "qlora" and "16 GB" in result.method_reason


def test_full_only_with_large_data_and_budget():
    assert assess(config(budget__gpu_memory_gb=80.0, budget__total_usd=50_000.0, **FIT), 20_000, 1).method == "full"
    assert assess(config(budget__gpu_memory_gb=80.0, budget__total_usd=50_000.0, **FIT), 800, 1).method == "lora"
    assert assess(config(budget__gpu_memory_gb=80.0, **FIT), 20_000, 1).method == "lora"


@pytest.mark.parametrize("compliance,expected", [
    ({"frameworks": ["hipaa"]}, "self_hosted"),
    ({"frameworks": ["gdpr"]}, "self_hosted"),
    ({"data_residency": "EU"}, "self_hosted"),
    ({"allow_external_providers": False}, "self_hosted"),
    ({"frameworks": ["soc2"]}, "managed_or_self_hosted"),
    ({}, "managed_or_self_hosted"),
])
def test_hosting(compliance, expected):
    cfg = config(**FIT)
    for key, value in compliance.items():
        setattr(cfg.compliance, key, value)
    assert choose_hosting(Facts(cfg, 800, 7))[0] == expected


def test_every_rule_has_rationale_and_known_source():
    from ftkit.suitability import SOURCES
    cfg = config(needs_fresh_facts=True, requirements_stable=False, style_or_voice=True, high_volume=True,
                 specialised_domain=True, **FIT)
    criteria = assess(cfg, 3000, 7).criteria
    assert {c.code for c in criteria} == set(RULES)
    for c in criteria:
        assert c.rationale and c.source in SOURCES


def test_timeline_scales_with_data_readiness():
    pilot = assess(config(**FIT), 150, 1).timeline_weeks
    strong = assess(config(**FIT), 5000, 1).timeline_weeks
    assert pilot[1] > strong[1] or pilot[0] > strong[0]


def test_count_records(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"a":1}\n\n{"a":2}\n')
    (tmp_path / "b.json").write_text('[{"a":1},{"a":2},{"a":3}]')
    (tmp_path / "c.csv").write_text('text,label\n"multi\nline",x\ny,z\n')
    assert [count_records(tmp_path / n) for n in ("a.jsonl", "b.json", "c.csv", "none.jsonl")] == [2, 3, 2, 0]
