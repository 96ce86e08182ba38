"""Typed results between phases: PhaseRun.finish writes a results dataclass, run.upstream reads it back typed,
and a missing field, an older schema or an untyped results.json names the phase to re-run."""
from __future__ import annotations

import json
from dataclasses import fields

import pytest

from ftkit.errors import PhaseFailed
from ftkit.phase_results import RESULT_TYPES, PhaseResults, load, load_or_none, result_type
from ftkit.phase_run import PhaseRun
from ftkit.phases import PHASES
from ftkit.suitability_phase import SuitabilityResults

ENVELOPE = ["phase", "run_id", "client", "started_utc", "finished_utc", "headline", "summary", "results", "findings",
            "tell_client", "next_steps", "blocks_downstream", "inputs", "provenance", "params", "schema"]


def sample_suitability() -> SuitabilityResults:
    return SuitabilityResults(
        recommendation="fine_tune", headline="Fine-tune.", criteria=[], method="lora", method_reason="small model",
        hosting="self_hosted", hosting_reason="gdpr", readiness="adequate", n_examples=600, params_b=0.135, risks=[],
        would_change=[], timeline_weeks=[4, 9], timeline_plan=[])


def finished_run(engagement, results, phase="suitability"):
    """A succeeded run of ``phase`` whose results.json PhaseRun.finish wrote from ``results``."""
    run_id = f"20260101T000000Z-{phase[:6].ljust(6, 'a')}"
    run_dir = engagement.runs_dir(phase) / run_id
    run = PhaseRun.open(phase, str(engagement.path), str(run_dir), show=False)
    assert run.finish(results, summary="s", tell_client="t", next_steps=["n"]) is None  # nothing to print
    (run_dir / "status.json").write_text('{"status": "succeeded"}')
    engagement.set_latest(phase, run_id)
    return run_dir


def downstream(engagement) -> PhaseRun:
    return PhaseRun.open("deployment_plan", str(engagement.path), str(engagement.path / "scratch-run"), show=False)


def test_every_phase_has_a_results_type_with_help_units_and_a_version():
    assert set(RESULT_TYPES) == set(PHASES)
    for phase in PHASES:
        cls = result_type(phase)
        assert issubclass(cls, PhaseResults) and cls.PHASE == phase and cls.SCHEMA_VERSION >= 1
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
            assert "unit" in f.metadata


def test_finish_writes_the_usual_shape_and_upstream_reads_it_typed(make_engagement):
    engagement = make_engagement()
    run_dir = finished_run(engagement, sample_suitability())
    payload = json.loads((run_dir / "results.json").read_text())
    assert list(payload) == ENVELOPE
    assert payload["schema"] == {"type": "SuitabilityResults", "version": SuitabilityResults.SCHEMA_VERSION}
    assert payload["headline"] == {"recommendation": "fine_tune", "method": "lora", "hosting": "self_hosted",
                                   "readiness": "adequate", "timeline_weeks": "4-9"}
    assert payload["results"]["timeline_weeks"] == [4, 9] and payload["tell_client"] == "t"
    run = downstream(engagement)
    typed = run.upstream("suitability")
    assert isinstance(typed, SuitabilityResults) and typed.method == "lora" and typed.n_examples == 600
    assert typed.run_id == run_dir.name
    assert any(k.endswith("results.json") for k in run.inputs)  # the upstream file is an input of this run


def rewrite(run_dir, change):
    path = run_dir / "results.json"
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize("change,expected", [
    (lambda p: p["results"].pop("n_examples"), "lack n_examples"),
    (lambda p: p.pop("schema"), "older ftkit"),
    (lambda p: p["schema"].update(version=0), "schema version 0"),
])
def test_upstream_names_the_phase_to_rerun(make_engagement, change, expected):
    engagement = make_engagement()
    rewrite(finished_run(engagement, sample_suitability()), change)
    with pytest.raises(PhaseFailed) as err:
        downstream(engagement).upstream("suitability")
    message = str(err.value)
    assert expected in message and f"ftkit run {engagement.slug} --phase suitability" in message


def test_upstream_without_a_run_says_which_phase_to_run(make_engagement):
    engagement = make_engagement()
    with pytest.raises(PhaseFailed, match="--phase training"):
        downstream(engagement).upstream("training")


def test_finish_refuses_another_phases_results(make_engagement):
    engagement = make_engagement()
    run = PhaseRun.open("data_audit", str(engagement.path), str(engagement.path / "scratch-da"), show=False)
    with pytest.raises(PhaseFailed, match="SuitabilityResults holds 'suitability' results"):
        run.finish(sample_suitability())


def test_plain_headline_finish_still_works_and_load_or_none_is_lenient(make_engagement):
    engagement = make_engagement()
    run = PhaseRun.open("suitability", str(engagement.path), str(engagement.path / "scratch-s"), show=False)
    run.finish({"ok": 1})
    payload = json.loads(run.results_path.read_text())
    assert payload["headline"] == {"ok": 1} and "schema" not in payload
    assert load_or_none("suitability", payload) is None and load_or_none("suitability", None) is None
    with pytest.raises(PhaseFailed):
        load("suitability", payload)


def test_record_shows_and_records_a_section(make_engagement, capsys):
    from ftkit.section import Section, finding

    engagement = make_engagement()
    run = PhaseRun.open("suitability", str(engagement.path), str(engagement.path / "scratch-r"), show=False)
    sec = Section(notes=["a note"]).table([{"a": 1}]).add(finding("warning", "x.y", "msg", "fix"), None)
    run.record(sec)
    run.record([("info", "x.z", "tuple finding", "")])
    assert [(f.severity, f.code) for f in run.findings] == [("warning", "x.y"), ("info", "x.z")]
    out = capsys.readouterr().out
    assert "a note" in out and "WARNING" in out


def test_the_report_summary_reads_through_the_typed_results(make_engagement):
    from ftkit.report_summary import recommendation

    engagement = make_engagement()
    run_dir = finished_run(engagement, sample_suitability())
    payload = json.loads((run_dir / "results.json").read_text())
    payload["headline"]["method"] = "stale"  # the typed fields decide, not a hand-edited headline
    got = recommendation(payload)
    assert (got["method"], got["timeline_weeks"], got["why"]) == ("lora", "4-9", "Fine-tune.")
    legacy = {"headline": {"recommendation": "rag"}, "results": {}}  # written before typed results
    assert recommendation(legacy)["recommendation"] == "rag"


def test_phase_modules_import_light():
    """Notebooks import their phase module first: no torch, transformers, peft or matplotlib at import time."""
    import subprocess
    import sys

    modules = sorted({path.split(":")[0] for path in RESULT_TYPES.values()} | {"ftkit.section", "ftkit.phase_results"})
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'matplotlib') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
