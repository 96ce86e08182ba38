"""benchmarks/compare_results.py: run ids, times and speeds are masked; a changed decision is reported."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_results.py"
spec = importlib.util.spec_from_file_location("compare_results", SCRIPT)
compare_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_results)


def engagement(root: Path, run_id: str, severity: str, minutes: float) -> Path:
    run_dir = root / "phases" / "05_evaluation" / "runs" / run_id
    run_dir.mkdir(parents=True)
    (root / "phases" / "05_evaluation" / "latest").write_text(run_id + "\n")
    payload = {"phase": "evaluation", "run_id": run_id, "started_utc": run_id, "headline": {"verdict": "go"},
               "results": {"training_run": f"{run_id}-t", "metrics": {"latency_p50_s": {"fine_tuned": minutes}},
                           "folder": str(root / "x")},
               "findings": [{"severity": severity, "code": "evaluation.runaways",
                             "message": f"trained in {minutes} min on {root}/a"}]}
    (run_dir / "results.json").write_text(json.dumps(payload))
    return root


def test_masks_ids_times_and_paths_but_reports_a_changed_severity(tmp_path):
    a = engagement(tmp_path / "a", "20260101T000000Z-aaaaaa", "info", 3.5)
    b = engagement(tmp_path / "b", "20260102T000000Z-bbbbbb", "info", 12.4)
    lines, summary = compare_results.compare(a, b)
    assert lines == [] and summary["differences"] == 0
    c = engagement(tmp_path / "c", "20260103T000000Z-cccccc", "warning", 3.5)
    lines, summary = compare_results.compare(a, c)
    assert lines == ["05_evaluation.findings[0].severity: 'info' -> 'warning'"] and summary["differences"] == 1
