"""The suitability phase's findings (ftkit/suitability_phase.py), each on both sides of its rule."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ftkit import suitability
from ftkit import suitability_phase as phase


@pytest.mark.parametrize("n,severity", [(99, "warning"), (100, "warning"), (499, "warning"), (500, "info"),
                                        (5000, "info")])
def test_readiness_warns_below_the_adequate_band(n, severity):
    band, meaning = suitability.readiness_band(n)
    f = phase.readiness_finding(n, band, meaning)
    assert f.severity == severity and f.code == "suitability.data_readiness"
    assert bool(f.next_step) == (severity == "warning") and f"'{band}' band" in f.message


def criterion(code, points_to):
    return SimpleNamespace(code=code, points_to=points_to, finding=f"{code} says {points_to}", rationale="why")


def test_criteria_against_fine_tuning_warn_the_rest_are_silent():
    a = SimpleNamespace(headline="Fine-tune with LoRA.", criteria=[
        criterion("format", "fine_tune"), criterion("volume", "neutral"), criterion("fresh", "rag"),
        criterion("prompt", "prompt_engineering")])
    found = phase.criteria_findings(a)
    assert [(f.severity, f.code) for f in found] == [("warning", "suitability.fresh"), ("warning", "suitability.prompt"),
                                                      ("info", "suitability.recommendation")]
    assert found[-1].message == "Fine-tune with LoRA."


def test_method_findings_only_when_a_method_is_chosen():
    assert phase.method_findings(SimpleNamespace(method="")) == []
    a = SimpleNamespace(method="qlora", method_reason="8 GB GPU.", hosting="self_hosted", hosting_reason="GDPR.")
    assert [f.message for f in phase.method_findings(a)] == ["Method: qlora. 8 GB GPU.", "Hosting: self_hosted. GDPR."]


def risk(likelihood, impact, name="r"):
    return {"risk": name, "likelihood": likelihood, "impact": impact, "mitigation": f"mitigate {name}"}


def test_high_risks_warn_only_when_both_high():
    assert phase.risks_finding([risk("high", "medium"), risk("medium", "high")]) is None
    f = phase.risks_finding([risk("high", "medium"), risk("high", "high", "drift"), risk("high", "high", "pii")])
    assert f.severity == "warning" and f.message == "2 high-likelihood, high-impact risk(s): drift; pii."
    assert f.next_step == "mitigate drift"


def test_timeline_and_tell_client_per_recommendation():
    assert phase.timeline_finding((4, 9), "adequate", "classification").message.startswith(
        "Estimated timeline: 4-9 weeks")
    for rec in suitability.RECOMMENDATIONS:
        r = SimpleNamespace(recommendation=rec, headline="H.", method="lora", hosting="self_hosted",
                            timeline_weeks=[3, 5])
        text = phase.what_to_tell_the_client(r)
        assert "H." in text and phase.next_steps(r)
    fine = SimpleNamespace(recommendation="fine_tune", headline="H.", method="lora", hosting="self_hosted",
                           timeline_weeks=[3, 5])
    assert phase.what_to_tell_the_client(fine) == ("Fine-tuning fits this need. H. We recommend LORA (self hosted); "
                                                   "expect 3-5 weeks.")
