"""The baseline phase notebook, executed by papermill through the runner on the tiny random model,
after a real data audit of the demo tickets (the shared ``tiny_chain`` engagement)."""
from __future__ import annotations

import json

import pytest

from ftkit.fsutil import read_json
from ftkit.prompting import read_records
from ftkit.sampling import stratified_subset


@pytest.fixture(scope="module")
def baseline(tiny_chain):
    engagement = tiny_chain.through("baseline")
    return engagement.latest_run_dir("baseline"), engagement.latest_run_dir("data_audit")


def test_predictions_for_the_scored_test_examples(baseline):
    run_dir, audit_dir = baseline
    test = read_records(audit_dir / "test.jsonl")
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    limit = read_json(run_dir / "results.json")["params"]["max_examples"]
    # TINY_SETTINGS: baseline.max_examples = 12, data.split.seed = 42: a seeded sample stratified by label
    expected = stratified_subset(test, 12, 42).records if limit < 0 else test
    assert [r["id"] for r in rows] == [r["id"] for r in expected]
    subset = read_json(run_dir / "results.json")["results"]["generation"]["subset"]
    assert subset["ids"] == [r["id"] for r in rows] and (subset["n"], subset["of"]) == (12, len(test))
    assert subset["stratified_by"] == "label" and sum(subset["strata"].values()) == 12
    assert {"id", "prompt_sha256", "output", "reference", "n_input_tokens", "n_output_tokens", "latency_s",
            "hit_max_new_tokens"} <= set(rows[0])
    assert all(1 <= r["n_output_tokens"] <= 24 for r in rows)
    assert rows[0]["reference"] == expected[0]["messages"][-1]["content"]


def test_results_carry_metrics_with_cis_and_say_the_model_is_random(baseline):
    run_dir, _ = baseline
    results = read_json(run_dir / "results.json")
    headline = results["headline"]
    assert headline["headline_metric"] == "field_accuracy" and headline["n_test"] == 12
    assert headline["ci_low"] <= headline["headline_value"] <= headline["ci_high"]
    metrics = results["results"]["metrics"]["metrics"]
    assert {"json_validity", "schema_compliance", "label_accuracy", "runaway_rate", "latency_p95_s"} <= set(metrics)
    codes = {f["code"]: f for f in results["findings"]}
    assert codes["baseline.tiny_random_model"]["severity"] == "warning"
    assert codes["baseline.subset"]["severity"] == "warning"  # 12 of the test examples only
    assert "randomly initialised" in results["tell_client"]
    assert results["results"]["model"]["is_tiny_random"] is True and results["results"]["model"]["files_sha256"]
    manifest = read_json(run_dir / "manifest.json")
    assert manifest["base_model"]["is_tiny_random"] is True and manifest["seeds"]["bootstrap"] == 42


def test_exact_prompt_figures_and_per_example_scores_are_saved(baseline):
    run_dir, audit_dir = baseline
    prompt = read_json(run_dir / "prompt.json")
    assert prompt["n_shots"] == 1 and prompt["example_prompt"].startswith("<|im_start|>system\n")
    assert prompt["example_prompt"].endswith("<|im_start|>assistant\n")
    train_ids = {r["id"] for r in read_records(audit_dir / "train.jsonl")}
    assert set(prompt["shot_ids"]) <= train_ids  # shots come from train only: no test leakage
    assert (run_dir / "figures" / "confusion_matrix.png").is_file()
    assert (run_dir / "figures" / "metrics.png").is_file()
    scores = read_json(run_dir / "per_example_scores.json")
    assert len(scores["ids"]) == len(scores["field_accuracy"]) == 12
    assert "Randomly initialised" in (run_dir / "report.html").read_text() or \
        "randomly initialised" in (run_dir / "report.html").read_text()
