"""The engagement report's training section: per training iteration, the examples it trained on by source."""
from __future__ import annotations

import json


def test_each_training_iteration_lists_its_data_audit_and_training_split_by_source(tiny_chain):
    from ftkit.augmentation.sources import training_data_by_iteration
    from ftkit.reports import build_engagement_report

    engagement = tiny_chain.through("training")
    rows = training_data_by_iteration(engagement)
    audit = engagement.latest_run_dir("data_audit")
    n_train = len((audit / "train.jsonl").read_text().splitlines())
    first = rows[0]
    assert first["iteration"] == 1 and first["data_audit_run"] == audit.name
    assert (first["train_examples"], first["client_own"], first["synthetic"]) == (n_train, n_train, 0)
    assert first["synthetic_share"] == "0.0%"
    html = build_engagement_report(engagement).read_text()
    assert "What each iteration trained on" in html and first["training_run"] in html


def test_a_training_run_without_a_recorded_audit_says_so(tmp_path):
    from ftkit.augmentation.sources import _audit_run_of

    assert _audit_run_of({"inputs": {"phases/02_data_audit/runs/R1/train.jsonl": "x"}}) == "R1"
    assert _audit_run_of({"inputs": {"data/tickets.jsonl": "x"}}) == "" and _audit_run_of({}) == ""
    assert json.dumps(_audit_run_of({"inputs": None})) == '""'
