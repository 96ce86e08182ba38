"""`ftkit reproduce`: a recorded run re-performed through the CLI gives the same results, and says what differs.

On a copy of the tiny-random engagement chain (suitability, data audit, baseline, training), each run is
re-performed once (module fixture); the tests read the reperformance.json each one wrote.
"""
from __future__ import annotations

import json

import pytest

from ftkit import environment
from ftkit.cli import main
from ftkit.reperformance import LOSS_RTOL, REPORT_FILE
from ftkit.verify import verify_engagement

PHASES = ("suitability", "data_audit", "baseline", "training")


@pytest.fixture(scope="module")
def reperformed(tiny_chain, tmp_path_factory):
    """{phase: (exit code, reperformance.json, original run id)} for each phase of a copy of the chain."""
    for phase in PHASES:
        tiny_chain.through(phase)
    engagement = tiny_chain.copy(tmp_path_factory.mktemp("reperform"))
    out = {}
    for phase in PHASES:
        run_id = engagement.latest_run_id(phase)
        before = set(engagement.run_ids(phase))
        code = main(["reproduce", engagement.slug, run_id, "--root", str(engagement.root)])
        [new_id] = set(engagement.run_ids(phase)) - before
        report = json.loads((engagement.runs_dir(phase) / new_id / REPORT_FILE).read_text())
        out[phase] = (code, report, run_id)
    return engagement, out


def _verdicts(report) -> dict[str, str]:
    return {row["file"]: row["verdict"] for row in report["outputs"]}


@pytest.mark.parametrize("phase", ["suitability", "data_audit"])
def test_deterministic_phases_reproduce_every_output(reperformed, phase):
    _, runs = reperformed
    code, report, run_id = runs[phase]
    assert code == 0 and report["verdict"] == "reproduced" and report["reperformance_of"] == run_id
    verdicts = _verdicts(report)
    assert set(verdicts.values()) <= {"identical", "equal_except_measured", "expected_to_differ", "new"}
    assert verdicts["engagement.snapshot.yaml"] == "identical"
    assert all(r["verdict"] == "equal" for r in report["findings"])
    if phase == "data_audit":  # the artefacts downstream phases read are bit-for-bit the same
        for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
            assert verdicts[name] == "identical"


def test_baseline_reproduces_predictions_exactly(reperformed):
    engagement, runs = reperformed
    code, report, run_id = runs["baseline"]
    assert code == 0 and report["verdict"] == "reproduced"
    assert _verdicts(report)["predictions.jsonl"] in ("identical", "equal_except_measured")
    old = [json.loads(line) for line in (engagement.runs_dir("baseline") / run_id / "predictions.jsonl").open()]
    new = [json.loads(line) for line in (engagement.runs_dir("baseline") / report["run_id"] / "predictions.jsonl").open()]
    assert [p["output"] for p in old] == [p["output"] for p in new] and len(old) > 0
    assert report["upstream_runs"] == {"data_audit": engagement.latest_run_id("data_audit")}


def test_training_reports_the_loss_curve_and_its_tolerance(reperformed):
    _, runs = reperformed
    code, report, _ = runs["training"]
    curve = report["loss_curve"]
    assert code == 0 and report["verdict"] in ("reproduced", "reproduced_within_tolerance")
    assert curve["points"] > 0 and curve["tolerance"] == LOSS_RTOL
    assert curve["verdict"] in ("identical", "within_tolerance") and curve["max_relative_difference"] <= LOSS_RTOL
    assert _verdicts(report)["adapter/adapter_model.safetensors"] in ("identical", "different")
    headline = {row["key"]: row["verdict"] for row in report["headline"]}
    assert headline["train_minutes"] == "measured" and headline["final_val_loss"] in ("equal", "within_tolerance")


def test_reperformance_is_evidence_and_does_not_move_latest(reperformed):
    engagement, runs = reperformed
    for phase in PHASES:
        _, report, run_id = runs[phase]
        assert engagement.latest_run_id(phase) == run_id  # a check, not new work
        run_dir = engagement.runs_dir(phase) / report["run_id"]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert REPORT_FILE in manifest["outputs"] and "reperformance_of.json" in manifest["outputs"]
        assert f"Re-performance of run {run_id}" in (run_dir / "report.html").read_text()
    assert verify_engagement(engagement)[0] == []
    index = (engagement.report_dir / "index.html").read_text()
    for phase in PHASES:  # the consolidated report lists each re-performance beside the run it re-performed
        _, report, run_id = runs[phase]
        assert f"re-performed by {report['run_id']}: {report['verdict']}" in index
        assert f"re-performs {run_id}: {report['verdict']}" in index
    events = [json.loads(line) for line in engagement.audit_path.read_text().splitlines()]
    assert sum(e["event"] == "run_reperformed" for e in events) == len(PHASES)


def test_a_changed_input_file_is_named_and_nothing_runs(tiny_chain, tmp_path, capsys):
    tiny_chain.through("data_audit")
    engagement = tiny_chain.copy(tmp_path)
    data = sorted((engagement.path / "data").iterdir())[0]
    data.write_text(data.read_text() + "\n")
    runs = engagement.run_ids("data_audit")
    code = main(["reproduce", engagement.slug, engagement.latest_run_id("data_audit"), "--root", str(engagement.root)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"data/{data.name}: recorded input has changed" in err
    assert engagement.run_ids("data_audit") == runs


def test_a_changed_package_version_is_named_and_strict_refuses(tiny_chain, tmp_path, capsys, monkeypatch):
    tiny_chain.through("suitability")
    engagement = tiny_chain.copy(tmp_path)
    real = environment.collect

    def changed(gpus=None):
        env = real(gpus)
        env["distributions"] = {**env["distributions"], "numpy": "0.0.1"}
        return env
    monkeypatch.setattr(environment, "collect", changed)
    run_id = engagement.latest_run_id("suitability")
    args = ["reproduce", engagement.slug, run_id, "--root", str(engagement.root)]
    assert main(args + ["--strict"]) == 1
    assert "package numpy:" in capsys.readouterr().err and len(engagement.run_ids("suitability")) == 1
    assert main(args) == 0  # without --strict: re-performed, the difference listed
    out = capsys.readouterr().out
    assert "environment: package numpy:" in out and "0.0.1 now" in out


def test_unknown_run_is_a_usage_error(tiny_chain, tmp_path, capsys):
    tiny_chain.through("suitability")
    engagement = tiny_chain.copy(tmp_path)
    assert main(["reproduce", engagement.slug, "20990101T000000Z-000000", "--root", str(engagement.root)]) == 2
    assert "no run" in capsys.readouterr().err


def test_env_from_run_prints_the_recorded_requirements(tiny_chain, tmp_path, capsys):
    tiny_chain.through("suitability")
    run_dir = tiny_chain.engagement.latest_run_dir("suitability")
    assert main(["env", "--from-run", str(run_dir)]) == 0
    pins = environment.parse_requirements(capsys.readouterr().out)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert pins == {k: v for k, v in manifest["environment"]["distributions"].items() if k != "ftkit"}
    copy = tmp_path / "run"
    import shutil
    shutil.copytree(run_dir, copy)
    (copy / "environment.txt").write_text("numpy==0.0.1\n")
    assert main(["env", "--from-run", str(copy)]) == 1
    assert "changed since the run recorded it" in capsys.readouterr().err
