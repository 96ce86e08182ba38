"""Benchmark: `ftkit demo` end to end, phase by phase, with each phase's fixed overhead.

    python benchmarks/bench_demo.py [--root DIR] [--base-model ID] [--phase NAME ...]

Runs the demo engagement (the packaged SmolLM2-135M-Instruct unless --base-model says otherwise) in a fresh
folder exactly as `ftkit demo` does, then splits every phase's wall time into:

- ``work_s``: the notebook's cells after the first one (the phase's actual computation), from the executed
  notebook's per-cell durations that papermill records (``metadata.papermill.duration``);
- ``overhead_s``: everything a phase pays however small its work is: kernel start and papermill's own
  bookkeeping (``kernel_s`` = execution time - the sum of cell durations), the first cell's imports and
  parameter validation (``setup_cell_s``), rendering report.html (``report_s``), hashing and writing the
  manifest and audit entry (``hashing_s``), and the runner's remaining steps (snapshot, secrets scan:
  ``runner_other_s``).

The consolidated engagement report built after the last phase is timed separately (``engagement_report_s``).
Targets (issue 8): ``total_s`` <= 600 on 2 CPU cores, ``max_overhead_s`` <= 15. The last line printed is one
JSON object. Timings on a shared machine vary with the other load (``load_average_1min`` is recorded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"total_s": 600, "max_overhead_s": 15}


def cell_durations(notebook: Path) -> list[float]:
    """Seconds per code cell, in order, as papermill recorded them (0 for a cell without a record)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return [float((c.get("metadata", {}).get("papermill") or {}).get("duration") or 0.0)
            for c in nb["cells"] if c["cell_type"] == "code"]


def phase_breakdown(outcome) -> dict:
    """One phase's wall time split into work and fixed overhead (see the module docstring)."""
    cells = cell_durations(outcome.run_dir / next(p.name for p in outcome.run_dir.glob("*.ipynb")))
    t = outcome.timings
    kernel_s = max(0.0, t["execute_s"] - sum(cells))
    setup_cell_s = cells[0] if cells else 0.0
    runner_other_s = max(0.0, outcome.duration_s - t["execute_s"] - t["report_s"] - t["manifest_s"])
    overhead = kernel_s + setup_cell_s + t["report_s"] + t["manifest_s"] + runner_other_s
    return {"status": outcome.status, "total_s": round(outcome.duration_s, 2), "work_s": round(sum(cells[1:]), 2),
            "overhead_s": round(overhead, 2), "kernel_s": round(kernel_s, 2), "setup_cell_s": round(setup_cell_s, 2),
            "report_s": round(t["report_s"], 2), "hashing_s": round(t["manifest_s"], 2),
            "runner_other_s": round(runner_other_s, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="", help="engagements folder (default: a fresh temporary one)")
    parser.add_argument("--base-model", default=None, help="default: the packaged SmolLM2-135M-Instruct")
    parser.add_argument("--phase", action="append", default=None, help="run only these phases (repeatable)")
    args = parser.parse_args(argv)

    from ftkit.demo import run_demo
    from ftkit.reports import build_engagement_report

    with tempfile.TemporaryDirectory(prefix="ftkit-bench-demo-") as tmp:
        root = Path(args.root or tmp)
        if (root / "demo").exists():
            parser.error(f"{root / 'demo'} exists: the benchmark needs a fresh demo engagement")
        t0 = time.perf_counter()
        engagement, outcomes = run_demo(root, base_model=args.base_model, phases=args.phase)
        t1 = time.perf_counter()
        build_engagement_report(engagement)  # as `ftkit demo` does after the phases
        engagement_report_s = time.perf_counter() - t1
        total_s = time.perf_counter() - t0
        phases = {o.phase: phase_breakdown(o) for o in outcomes}
    intake_s = total_s - engagement_report_s - sum(o.duration_s for o in outcomes)  # engagement creation, preflight
    out = {"benchmark": "demo", "total_s": round(total_s, 1),
           "max_overhead_s": max((p["overhead_s"] for p in phases.values()), default=0.0),
           "all_succeeded": all(o.succeeded for o in outcomes) and bool(outcomes),
           "engagement_report_s": round(engagement_report_s, 2), "intake_and_preflight_s": round(intake_s, 2),
           "phases": phases,
           "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
           "base_model": args.base_model or "smollm2-135m-instruct", "targets": TARGETS}
    for name, p in phases.items():
        print(f"{name:18s} {p['status']:10s} total {p['total_s']:7.1f} s  work {p['work_s']:7.1f} s  "
              f"overhead {p['overhead_s']:5.1f} s (kernel {p['kernel_s']:.1f}, setup cell {p['setup_cell_s']:.1f}, "
              f"report {p['report_s']:.1f}, hashing {p['hashing_s']:.1f})", flush=True)
    print(json.dumps(out))
    sys.stdout.flush()
    return out


if __name__ == "__main__":
    result = main()
    sys.exit(0 if result["all_succeeded"] else 1)
