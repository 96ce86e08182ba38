"""notebooks/02_data_audit.ipynb through the runner: results.json, splits, issues.csv, and a blocked audit."""
from __future__ import annotations

import csv
import json

from ftkit.runner import run_phase

from data_helpers import chat


def test_data_audit_phase_on_the_demo_data(make_engagement, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTKIT_CACHE", str(tiny_model_dir.parent.parent))
    engagement = make_engagement(base_model="tiny-random", n=240)
    out = run_phase(engagement, "data_audit", progress=False)
    assert out.status == "succeeded", out.error
    results = json.loads((out.run_dir / "results.json").read_text())
    assert results["headline"]["verdict"] in ("ready", "ready_with_warnings")
    assert results["blocks_downstream"] == ""
    counts = results["results"]["splits"]
    for name in ("train", "validation", "test"):
        rows = (out.run_dir / f"{name}.jsonl").read_text().splitlines()
        assert len(rows) == counts[name] and all("messages" in json.loads(r) for r in rows)
    assert results["headline"]["n_train"] == counts["train"] > counts["test"] > 0
    assert results["results"]["stats"]["tokens_per_example"]["max"] > 0  # the tiny tokenizer was used
    with open(out.run_dir / "issues.csv", newline="") as handle:
        issues = list(csv.DictReader(handle))
    assert issues and {"line", "code", "fix"} <= set(issues[0])
    card = (out.run_dir / "data_card.md").read_text()
    assert card.startswith("# Data card")
    assert f"Audit verdict: **{results['headline']['verdict']}**" in card  # one verdict, stated in both
    assert results["schema"]["type"] == "DataAuditResults" and results["results"]["max_seq_length_suggested"] > 0
    assert any(f["code"] == "data.label_coverage" for f in results["findings"])


def test_blocked_audit_blocks_downstream(make_engagement):
    records = [chat(f"question {i}", "") for i in range(20)]  # every answer empty, and too few examples
    engagement = make_engagement(client="blocked", records=records, settings={"task.type": "chat",
                                                                             "task.label_field": "", "task.json_schema": {}})
    out = run_phase(engagement, "data_audit", overrides={"use_tokenizer": False}, progress=False)
    assert out.status == "succeeded", out.error
    results = json.loads((out.run_dir / "results.json").read_text())
    assert results["headline"]["verdict"] == "blocked"
    assert "usable training examples" in results["blocks_downstream"]
    assert results["headline"]["n_valid"] == 0
