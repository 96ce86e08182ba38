"""Secrets and privacy over a whole engagement: all six phases on the tiny model, on the demo tickets with the
demo's synthetic PII planted in every other ticket, with a secret-looking environment variable set for the runs.
Then every report, executed notebook, log, results/manifest/status file and findings is scanned for the secret's
value and for the raw PII values the audit's detectors find in the client's data.

What may hold the client's data, and what may not (the split this test enforces):

* **Data** (the client's records, needed as they are): the delivered files (``data/``), the audit's splits
  (``train/validation/test.jsonl`` and their redacted copies), the baseline's ``prompt.json`` (the exact prompt;
  evaluation reproduces the baseline from it by hash) and ``predictions.jsonl`` (outputs and references, scored
  and compared example by example). They stay in the engagement folder, under the client's data handling.
* **Reports and logs** (everything else: ``*.html``, executed ``*.ipynb``, ``results.json`` with its findings,
  ``manifest.json``, ``status.json``, ``audit.jsonl``, ``issues.csv``, ``stats.json``, the data card, training
  logs, A/B sheets, serving/monitoring files, the consolidated report): these are shown and handed over, so they
  carry PII only masked (``j***@e***.com``) and never a secret.
"""
from __future__ import annotations

import fnmatch
import html
import json
import secrets
from pathlib import Path

import pytest

from engagement_helpers import sample_records
from ftkit.data.pii import find_pii

SECRET_VAR = "OPENAI_API_KEY"
SECRET = "sk-test-" + secrets.token_hex(16)
DEMO_PII = ("+44 20 7946 0958", "jane.doe@example.com", "4111 1111 1111 1111")  # the demo's synthetic PII
PLANTED = ("Please call me back on +44 20 7946 0958 or write to jane.doe@example.com.",
           "My card 4111 1111 1111 1111 was charged twice.",
           "Reach me at bob.smith@example.org or +44 20 7946 0123.",
           "Card 5555 5555 5555 4444, email ann.lee@example.net.")
DATA_FILES = ("data/*", "phases/02_data_audit/runs/*/train*.jsonl", "phases/02_data_audit/runs/*/validation*.jsonl",
              "phases/02_data_audit/runs/*/test*.jsonl", "phases/03_baseline/runs/*/prompt.json",
              "phases/*/runs/*/predictions.jsonl")
TINY_SETTINGS = {  # as the shared tiny chain (tests/conftest.py): real phases, seconds each
    "baseline.shots": 1, "baseline.max_examples": 12, "baseline.max_new_tokens": 24,
    "training.max_steps": 6, "training.batch_size": 4, "training.max_seq_length": 256, "training.eval_steps": 3,
    "data.max_seq_length": 256, "evaluation.ab_items": 8,
}


@pytest.fixture(scope="module")
def engagement(tmp_path_factory, tiny_model_dir):
    """The six phases run with the secret in the environment (the kernels inherit it); then the report is built."""
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement
    from ftkit.reports import build_engagement_report
    from ftkit.runner import run_phases

    folder = tmp_path_factory.mktemp("privacy")
    data = folder / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _tickets_with_pii()), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SECRET_VAR, SECRET)
        engagement = create_engagement("privacy", [data], folder / "engagements", base_model=str(tiny_model_dir),
                                       settings={**DEMO_SETTINGS, **TINY_SETTINGS})
        outcomes = run_phases(engagement, None, progress=False)
        build_engagement_report(engagement)
    assert [o.status for o in outcomes] == ["succeeded"] * 6, [(o.phase, o.status, o.error) for o in outcomes]
    return engagement


def _tickets_with_pii() -> list[dict]:
    """200 demo tickets; every other one ends with contact or card details (the demo's and three more)."""
    records = sample_records(200)
    for i, record in enumerate(records[::2]):
        user = next(m for m in record["messages"] if m["role"] == "user")
        user["content"] += " " + PLANTED[i % len(PLANTED)]
    return records


def raw_pii(engagement) -> set[str]:
    """The raw values the audit's detectors find in the client's delivered data."""
    values = set()
    for path in engagement.data_dir.iterdir():
        for line in path.read_text(encoding="utf-8").splitlines():
            for message in json.loads(line)["messages"]:
                values |= {message["content"][h.start:h.end] for h in find_pii(message["content"])}
    return values


def is_data(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pattern) for pattern in DATA_FILES)


def leaks(folder: Path, values: set[str], include_data: bool = False) -> list[str]:
    """'file: value' for each value found in a file under ``folder`` (data files skipped unless asked), as
    written or as JSON/HTML would escape it."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or (is_data(rel) and not include_data):
            continue
        blob = path.read_bytes()
        for value in values:
            forms = {value, json.dumps(value)[1:-1], html.escape(value)}
            if any(form.encode("utf-8") in blob for form in forms):
                found.append(f"{rel}: {value}")
    return found


def test_the_planted_pii_is_what_the_audit_finds(engagement):
    assert set(DEMO_PII) <= raw_pii(engagement)  # the detectors see the demo's PII (else the scan proves nothing)


def test_the_scanner_finds_a_planted_secret_and_pii_in_control_files(engagement, tmp_path):
    """Control: the same scan over copies of real report files with the values planted, in the forms a notebook
    (JSON-escaped) and an HTML report would hold them, and a data file that is allowed to hold them."""
    notebook = next(engagement.path.glob("phases/05_evaluation/runs/*/05_evaluation.ipynb"))
    nb = json.loads(notebook.read_text())
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"key {SECRET}\n"]}]
    control = tmp_path / "phases/05_evaluation/runs/x"
    control.mkdir(parents=True)
    (control / "05_evaluation.ipynb").write_text(json.dumps(nb))
    (control / "report.html").write_text(f"<td>{html.escape('<jane.doe@example.com>')}</td>")
    (control / "predictions.jsonl").write_text(json.dumps({"input": "+44 20 7946 0958"}) + "\n")
    found = leaks(tmp_path, {SECRET, "jane.doe@example.com", "+44 20 7946 0958"})
    assert sorted(found) == sorted([f"phases/05_evaluation/runs/x/05_evaluation.ipynb: {SECRET}",
                                    "phases/05_evaluation/runs/x/report.html: jane.doe@example.com"])
    assert leaks(tmp_path, {"+44 20 7946 0958"}, include_data=True)  # data files are only exempt, not unscanned


def test_no_report_notebook_or_log_holds_the_secret(engagement):
    assert leaks(engagement.path, {SECRET}, include_data=True) == []  # not even the data: it was never there


def test_no_report_notebook_or_log_holds_raw_pii(engagement):
    assert leaks(engagement.path, raw_pii(engagement)) == []


def test_reports_show_the_pii_masked_where_they_show_examples(engagement):
    """The fix is masking, not dropping: the side-by-side examples still show the tickets, with PII masked."""
    results = json.loads(next(engagement.path.glob("phases/05_evaluation/runs/*/results.json")).read_text())
    inputs = " ".join(row["input"] for row in results["results"]["side_by_side"])
    assert "***@e***." in inputs or "+** ** **** **" in inputs or "**** **** **** " in inputs, inputs
    assert leaks(engagement.path, raw_pii(engagement), include_data=True)  # the data itself still holds it


def test_the_ab_sheet_masks_pii_and_still_reads_back(tmp_path):
    """The blind A/B sheet goes to reviewers: inputs and outputs masked. (The tiny model's two answers are often
    identical, so the chain's sheet may be empty: checked here directly.)"""
    import csv

    from ftkit.evaluation.ab_sheet import PairItem, build_sheet, read_sheet, write_sheet

    items = [PairItem("t1", PLANTED[0], "call +44 20 7946 0958", "ok"), PairItem("t2", PLANTED[1], "a", "b")]
    rows, key = build_sheet(items, 8, seed=0)
    paths = write_sheet(tmp_path / "ab", rows, key)
    assert leaks(tmp_path, set(DEMO_PII)) == []
    assert "j***@e***.com" in paths["html"].read_text() and "+** ** **** **58" in paths["csv"].read_text()
    with open(paths["csv"], encoding="utf-8-sig") as handle:  # a reviewer fills in the masked sheet
        filled = [{**row, "choice": "1"} for row in csv.DictReader(handle)]
    with open(tmp_path / "filled.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(filled[0]))
        writer.writeheader()
        writer.writerows(filled)
    assert read_sheet(tmp_path / "filled.csv", key)[1] == {row["item_id"]: 1 for row in rows}
