"""The runner really executes notebooks with papermill and decides each run's status itself."""
from __future__ import annotations

import json

import pytest

from engagement_helpers import fork_notebook
from ftkit.errors import ConfigError, PhaseFailed, UsageError
from ftkit.fsutil import read_json, sha256_file
from ftkit.runner import run_phases

FORK = "01_suitability"


def _results_cell(headline='{"ok": 1}'):
    return ("from ftkit.phase_run import PhaseRun\n"
            "run = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
            f"run.finish(headline={headline})")


def test_suitability_run_leaves_complete_evidence(make_engagement):
    engagement = make_engagement()
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded, outcome.error
    run_dir = outcome.run_dir
    for name in ("01_suitability.ipynb", "report.html", "results.json", "manifest.json", "status.json",
                 "engagement.snapshot.yaml", "figures/criteria.png"):
        assert (run_dir / name).is_file(), name
    results = read_json(run_dir / "results.json")
    assert results["headline"]["recommendation"] == "fine_tune"
    assert results["headline"]["method"] == "lora"
    assert any(f["code"] == "suitability.data_readiness" for f in results["findings"])
    manifest = read_json(run_dir / "manifest.json")
    assert manifest["status"] == "succeeded" and manifest["phase"] == "suitability"
    assert manifest["outputs"]["results.json"] == sha256_file(run_dir / "results.json")
    assert "engagement.snapshot.yaml" in manifest["outputs"]
    assert manifest["python"]["executable"] and manifest["packages"]["papermill"]
    assert manifest["inputs"]  # the data file counted for readiness is hashed
    assert read_json(run_dir / "status.json")["status"] == "succeeded"
    assert engagement.latest_run_id("suitability") == run_dir.name
    report = (run_dir / "report.html").read_text()
    assert "Northwind Outfitters" in report and run_dir.name in report
    assert "run = PhaseRun.open" not in report  # code hidden
    audit = [json.loads(line) for line in engagement.audit_path.read_text().splitlines()]
    assert audit[-1]["event"] == "run_finished" and audit[-1]["manifest_sha256"] == sha256_file(run_dir / "manifest.json")


def test_runs_never_overwrite_and_latest_moves(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, FORK, [_results_cell()])
    first = run_phases(engagement, ["suitability"], progress=False)[0]
    second = run_phases(engagement, ["suitability"], progress=False)[0]
    assert first.run_dir != second.run_dir and first.run_dir.is_dir()
    assert engagement.latest_run_id("suitability") == second.run_id


def test_cell_error_fails_and_keeps_latest(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, FORK, [_results_cell()])
    good = run_phases(engagement, ["suitability"], progress=False)[0]
    fork_notebook(engagement, FORK, ["x = 1", "raise ValueError('client file has no answers')"])
    [bad] = run_phases(engagement, ["suitability"], progress=False)
    assert bad.status == "failed"
    assert "ValueError: client file has no answers" in bad.error
    nb = json.loads((bad.run_dir / "01_suitability.ipynb").read_text())
    assert any(o.get("ename") == "ValueError" for c in nb["cells"] for o in c.get("outputs", []))
    assert read_json(bad.run_dir / "status.json")["status"] == "failed"
    assert (bad.run_dir / "report.html").is_file() and (bad.run_dir / "manifest.json").is_file()
    assert engagement.latest_run_id("suitability") == good.run_id


def test_missing_results_json_is_a_failure(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, FORK, ["print('forgot run.finish')"])
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.status == "failed" and "results.json" in outcome.error
    assert engagement.latest_run_id("suitability") is None


def test_timeout_is_detected(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, FORK, ["import time; time.sleep(60)", _results_cell()])
    [outcome] = run_phases(engagement, ["suitability"], cell_timeout_s=3, progress=False)
    assert outcome.status == "timed_out"
    assert engagement.latest_run_id("suitability") is None
    assert (outcome.run_dir / "01_suitability.ipynb").is_file()


def test_dead_kernel_is_detected(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, FORK, ["import os, signal; os.kill(os.getpid(), signal.SIGKILL)", _results_cell()])
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.status == "kernel_died"
    assert engagement.latest_run_id("suitability") is None


def test_secret_values_are_redacted_and_fail_the_run(make_engagement, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("FTKIT_TEST_API_KEY", secret)
    engagement = make_engagement()
    fork_notebook(engagement, FORK, ["import os; print(os.environ['FTKIT_TEST_API_KEY'])", _results_cell()])
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.status == "failed" and "FTKIT_TEST_API_KEY" in outcome.error
    for path in outcome.run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert engagement.latest_run_id("suitability") is None


def test_parameters_are_validated_against_declared_types(make_engagement):
    engagement = make_engagement()
    with pytest.raises(UsageError, match="has no parameter 'shots'"):
        run_phases(engagement, ["suitability"], {"shots": "3"}, progress=False)
    with pytest.raises(UsageError, match="must be true or false"):
        run_phases(engagement, ["suitability"], {"interactive": "maybe"}, progress=False)
    with pytest.raises(UsageError, match="looks like a secret"):
        run_phases(engagement, ["suitability"], {"api_key": "x"}, progress=False)
    with pytest.raises(UsageError, match="set by ftkit run"):
        run_phases(engagement, ["suitability"], {"run_dir": "/tmp"}, progress=False)
    with pytest.raises(UsageError, match="Unknown phase 'trainig'"):
        run_phases(engagement, ["trainig"], progress=False)
    assert engagement.run_ids("suitability") == []  # nothing was started


def test_upstream_phase_must_have_succeeded(make_engagement):
    engagement = make_engagement()
    with pytest.raises(PhaseFailed, match="needs a succeeded 'data_audit' run first.*--phase data_audit"):
        run_phases(engagement, ["baseline"], progress=False)


def test_blocked_upstream_refuses_downstream(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, "02_data_audit", [
        "from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('data_audit', engagement_dir, run_dir)\n"
        "run.finish(headline={'verdict': 'blocked'}, blocks_downstream='no assistant answers in 40% of rows')"])
    [audit_run] = run_phases(engagement, ["data_audit"], progress=False)
    assert audit_run.succeeded
    with pytest.raises(PhaseFailed, match="no assistant answers in 40% of rows"):
        run_phases(engagement, ["baseline"], progress=False)


def test_blocked_audit_in_the_same_run_refuses_what_follows_with_its_own_reasons(make_engagement, tiny_model_dir):
    """The real audit notebook on data that blocks (too few examples), then `ftkit run` carries on to the
    baseline in the same invocation: refused with the audit's reason and the re-run command, not a downstream
    error, and no baseline or training run is started. Later phases (evaluation: through baseline and training)
    are refused by the same blocked audit."""
    engagement = make_engagement(n=30, base_model=str(tiny_model_dir), settings={"data.min_examples": 500})
    with pytest.raises(PhaseFailed) as info:
        run_phases(engagement, ["data_audit", "baseline", "training"], progress=False)
    message = str(info.value)
    assert "Phase 'baseline' cannot start" in message and "data.min_examples is 500" in message
    assert f"ftkit run {engagement.slug} --phase data_audit" in message
    assert "empty" not in message
    assert engagement.run_ids("baseline") == [] and engagement.run_ids("training") == []
    assert len(engagement.run_ids("data_audit")) == 1
    with pytest.raises(PhaseFailed, match="latest 'data_audit' run .* blocks it"):
        run_phases(engagement, ["evaluation"], progress=False)


def test_malformed_engagement_yaml_is_reported_before_running(make_engagement):
    engagement = make_engagement()
    engagement.config_path.write_text("task:\n  type: poetry\ntraining: {epochs: lots}\n")
    with pytest.raises(ConfigError) as info:
        run_phases(engagement, ["suitability"], progress=False)
    assert "task.type" in str(info.value) and "training.epochs" in str(info.value)
    assert engagement.run_ids("suitability") == []


def test_acceptance_metric_names_are_checked_before_any_phase_runs(make_engagement):
    # Demo task: structured_output. 'acuracy' is a typo and 'accuracy' is a classification metric; both would
    # otherwise surface only at the end of the evaluation, after data audit, baseline and training ran.
    engagement = make_engagement(settings={"evaluation.acceptance": [
        {"metric": "acuracy", "min": 0.8}, {"metric": "field_accuracy", "min": 0.6}, {"metric": "accuracy", "min": 0.5},
        {"metric": "delta_field_accuracy", "min": 0.0}, {"metric": "win_rate", "min": 0.5}]})
    with pytest.raises(ConfigError) as info:
        run_phases(engagement, progress=False)
    text = str(info.value)
    assert str(engagement.config_path) in text
    assert "evaluation.acceptance[0].metric: unknown metric 'acuracy'" in text
    assert "evaluation.acceptance[2].metric: unknown metric 'accuracy'" in text
    assert "acceptance[1]" not in text and "acceptance[3]" not in text and "acceptance[4]" not in text
    assert "valid metrics:" in text and "json_validity" in text and "delta_field_accuracy" in text
    assert all(engagement.run_ids(p) == [] for p in ("suitability", "data_audit", "baseline"))
    # Phases before the evaluation alone are not refused: the criteria can still be fixed before it runs.
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded and outcome.notebook_path == outcome.run_dir / "01_suitability.ipynb"


def test_killed_run_is_marked_abandoned_and_rerun_succeeds(make_engagement):
    from ftkit.runner import new_run_id
    from ftkit.verify import verify_engagement

    engagement = make_engagement()
    fork_notebook(engagement, FORK, [_results_cell()])
    good = run_phases(engagement, ["suitability"], progress=False)[0]
    orphan = engagement.runs_dir("suitability") / new_run_id()  # what a SIGKILLed `ftkit run` leaves
    orphan.mkdir()
    (orphan / "status.json").write_text('{"status": "running"}')
    again = run_phases(engagement, ["suitability"], progress=False)[0]
    assert again.succeeded and engagement.latest_run_id("suitability") == again.run_id
    assert read_json(orphan / "status.json")["status"] == "abandoned"
    assert good.run_dir.is_dir()
    problems, _ = verify_engagement(engagement)
    assert problems == []
