"""The consolidated engagement report (report/index.html): executive summary, phase sections, documentation
index, manifests, audit chain, environment, PDF export errors.

Engagements here are real (`ftkit new` semantics, real audit log and manifests) but their phase runs are
recorded directly, with results.json shaped like the real phases' (trimmed from a demo run), so every case
takes a second instead of running notebooks. tests/test_report_browser.py renders a report of really-run phases.
"""
from __future__ import annotations

import html as html_lib
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from ftkit.reports import build_engagement_report

SUITABILITY = {
    "headline": {"recommendation": "fine_tune", "method": "lora", "hosting": "self_hosted", "readiness": "adequate",
                 "timeline_weeks": "4-9"},
    "summary": "Fine-tune: consistent output format, high volume, narrow, well-defined task.",
    "results": {"recommendation": "fine_tune", "headline": "Fine-tune: consistent output format, high volume."},
    "findings": [{"severity": "info", "code": "suitability.method", "message": "Method: lora.", "next_step": ""}],
    "tell_client": "Fine-tuning fits this need.", "next_steps": ["Run the data audit phase."],
}
DATA_AUDIT = {
    "headline": {"verdict": "ready_with_warnings", "n_valid": 727, "n_train": 529, "n_test": 68},
    "summary": "727 of 729 records valid; verdict ready_with_warnings.",
    "results": {"verdict": "ready_with_warnings", "splits": {"train": 529, "validation": 66, "test": 68}},
    "findings": [{"severity": "warning", "code": "data.pii", "message": "2 records contain PII: phone (1), email (1).",
                  "next_step": "Set data.redact_pii: true and re-run."}],
    "tell_client": "The data can be used.", "next_steps": ["Review issues.csv with the client."],
}
BASELINE = {
    "headline": {"model": "smollm2-135m-instruct", "headline_metric": "field_accuracy", "headline_value": 0.412,
                 "ci_low": 0.353, "ci_high": 0.471, "n_test": 68},
    "summary": "smollm2-135m-instruct scores field_accuracy = 0.412 on 68 test examples.",
    "results": {"metrics": {"task_type": "structured_output", "n": 68, "metrics": {
        "json_validity": {"value": 0.9, "ci_low": 0.81, "ci_high": 0.96, "higher_is_better": True},
        "field_accuracy": {"value": 0.412, "ci_low": 0.353, "ci_high": 0.471, "higher_is_better": True}}}},
    "findings": [], "tell_client": "", "next_steps": [],
}
TRAINING = {"headline": {"method": "lora", "final_val_loss": 0.113, "steps": 40}, "summary": "lora trained.",
            "results": {}, "findings": [], "tell_client": "", "next_steps": []}
EVALUATION = {
    "headline": {"verdict": "go", "headline_metric": "field_accuracy", "delta": 0.426, "baseline": 0.412,
                 "fine_tuned": 0.838, "p_value": 0.0, "action": "ship", "n_test": 68},
    "summary": "Verdict go: every acceptance criterion passes.",
    "results": {
        "metrics": {
            "json_validity": {"metric": "json_validity", "higher_is_better": True, "baseline": 0.9,
                              "baseline_ci": [0.81, 0.96], "fine_tuned": 1.0, "fine_tuned_ci": [1.0, 1.0], "diff": 0.1,
                              "diff_ci": [0.04, 0.19], "n": 68, "significant": True},
            "field_accuracy": {"metric": "field_accuracy", "higher_is_better": True, "baseline": 0.412,
                               "baseline_ci": [0.353, 0.471], "fine_tuned": 0.838, "fine_tuned_ci": [0.781, 0.893],
                               "diff": 0.426, "diff_ci": [0.347, 0.502], "n": 68, "significant": True}},
        "verdict": {"verdict": "go", "action": "ship",
                    "why": "Every acceptance criterion passes; field_accuracy went from 0.412 to 0.838 (p < 0.001).",
                    "criteria": [{"metric": "delta", "rule": ">= 0.05", "value": 0.426, "ci": [0.347, 0.502],
                                  "status": "pass", "margin": "clear", "evidence": "field_accuracy +0.426"}]},
        "iteration": 1},
    "findings": [], "tell_client": "Ship it.", "next_steps": ["Run the deployment plan phase."],
}
DEPLOYMENT = {
    "headline": {"serving": "A10, bf16", "monthly_cost_usd": 547.5},
    "summary": "merged export passed the equivalence check; serve on A10.",
    "results": {"cost": {
        "volume": 300000, "cheapest": "Llama 3.1 8B + LoRA (serverless)", "always_on": True, "external_allowed": True,
        "self_hosted": {"gpu": "A10", "replicas": 1, "gpu_hours": 730.0, "busy_share": 0.0006, "usd": 547.5},
        "managed": [
            {"name": "gpt-4o-mini (fine-tuned)", "provider": "OpenAI", "usd": 11.47, "break_even_requests": 14320239.8,
             "allowed": True, "as_of": "2025-06-01", "source": "https://openai.com/api/pricing/", "note": ""},
            {"name": "Llama 3.1 8B + LoRA (serverless)", "provider": "Together AI", "usd": 4.71,
             "break_even_requests": 34888700.3, "allowed": True, "as_of": "2025-06-01",
             "source": "https://www.together.ai/pricing", "note": "upload a LoRA adapter"}]},
        "sizing": {"gpu_label": "A10"}},
    "findings": [], "tell_client": "Ready to deploy.", "next_steps": ["Hand over the run folder."],
}
RESULTS = {"suitability": SUITABILITY, "data_audit": DATA_AUDIT, "baseline": BASELINE, "training": TRAINING,
           "evaluation": EVALUATION, "deployment_plan": DEPLOYMENT}

# Artefacts the real phases write (the documentation index links to them).
ARTEFACTS = {
    "data_audit": ["data_card.md", "train.jsonl", "validation.jsonl", "test.jsonl", "stats.json", "issues.csv"],
    "baseline": ["metrics.json", "predictions.jsonl"],
    "training": ["hyperparameters.json", "training_summary.json", "loss_history.json", "adapter/adapter_config.json"],
    "evaluation": ["predictions.jsonl"],
    "deployment_plan": ["export/merged/README.md", "export/merged/config.json", "export/adapter/README.md",
                        "serving/README.md", "handover.md", "monitoring/monitoring_plan.md",
                        "monitoring/reference_stats.json"],
}


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid tiny RGB PNG (white), so figures are real images."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff" * 3 * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def record_run(engagement, phase_name: str, results: dict, packages: dict | None = None) -> Path:
    """Record a succeeded run the way the runner does: files, status, manifest, audit line, then `latest`."""
    from ftkit import audit
    from ftkit.fsutil import atomic_write_json, sha256_file
    from ftkit.manifest import MANIFEST_FILE, build_manifest
    from ftkit.phases import get_phase
    from ftkit.resources import notebooks_dir

    phase = get_phase(phase_name)
    run_id = f"20260101T0{phase.number}0000Z-fake{phase.number:02d}"
    run_dir = engagement.runs_dir(phase) / run_id
    run_dir.mkdir(parents=True)
    full = {"phase": phase.name, "run_id": run_id, "inputs": {}, **results}
    files = {"results.json": json.dumps(full), phase.notebook: "{}", "report.html": "<html><body>run</body></html>"}
    files.update({rel: "{}" for rel in ARTEFACTS.get(phase.name, [])})
    for rel, text in files.items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text(text)
    (run_dir / "figures").mkdir()
    (run_dir / "figures" / f"{phase.name}_plot.png").write_bytes(png_bytes())
    atomic_write_json(run_dir / "status.json", {"status": "succeeded", "started_utc": "2026-01-01T00:00:00+00:00",
                                                "finished_utc": "2026-01-01T00:01:00+00:00", "error": ""})
    manifest = build_manifest(run_id=run_id, phase=phase.name, client=engagement.slug, status="succeeded",
                              started_utc="2026-01-01T00:00:00+00:00", finished_utc="2026-01-01T00:01:00+00:00",
                              duration_s=60.0, parameters={}, inputs={}, run_dir=run_dir,
                              notebook_source=notebooks_dir() / phase.notebook, kernel_name="python3",
                              provenance={"seeds": {"bootstrap": 0}})
    manifest["packages"].update(packages or {})
    atomic_write_json(run_dir / MANIFEST_FILE, manifest)
    audit.append_event(engagement.audit_path, "run_finished", phase=phase.name, run_id=run_id, status="succeeded",
                       manifest_sha256=sha256_file(run_dir / MANIFEST_FILE), error="")
    engagement.set_latest(phase, run_id)
    return run_dir


@pytest.fixture
def engagement_with(make_engagement):
    """engagement_with("suitability", "data_audit", ...) -> an engagement whose named phases have succeeded."""
    def make(*phases: str, packages: dict | None = None):
        engagement = make_engagement(n=40)
        for name in phases:
            record_run(engagement, name, RESULTS[name], packages=(packages or {}).get(name))
        return engagement
    return make


def section(html: str, anchor: str, until: str = "<h2") -> str:
    """The HTML from the element with id=anchor to the next ``until`` (a heading of the same level)."""
    start = html.index(f'id="{anchor}"')
    end = html.find(until, start + 1)
    return html[start:end if end > 0 else None]


def card(html: str, anchor: str) -> str:
    """One card of the executive summary."""
    return section(html, anchor, until='<div class="card"' if anchor != "summary-data" else "<h3")


def text(fragment: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_executive_summary_shows_recommendation_verdict_metrics_and_cost_from_results(engagement_with):
    engagement = engagement_with(*RESULTS)
    html = build_engagement_report(engagement).read_text()
    summary = text(section(html, "summary"))
    assert "fine_tune" in summary and "lora" in summary and "self_hosted" in summary
    verdict = text(card(html, "summary-verdict"))
    assert "GO" in verdict and "ship" in verdict and "0.412 to 0.838" in verdict
    metrics = section(html, "summary-metrics", until="<h3")
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", metrics, re.S)
    headline = text(rows[1])  # the headline metric comes first, whatever its position in results.json
    assert headline.startswith("field_accuracy (headline)")
    assert "0.412 [0.353, 0.471] 0.838 [0.781, 0.893] 0.426 [0.347, 0.502] yes" in headline
    assert "json_validity 0.900 [0.810, 0.960] 1.000 [1.000, 1.000]" in text(rows[2])
    cost = text(card(html, "summary-cost"))
    assert "$547.50" in cost and "A10" in cost and "300,000" in cost
    assert "Together AI Llama 3.1 8B + LoRA (serverless), $4.71" in cost  # the cheapest allowed managed option
    assert "above 34,888,700 requests/month" in cost and "below it" in cost
    assert "Ship it." in html and "Hand over the run folder." in html  # what to tell the client, next steps


def test_partly_run_engagement_says_not_run_yet_instead_of_failing(engagement_with):
    engagement = engagement_with("suitability", "data_audit", "baseline")
    html = build_engagement_report(engagement).read_text()
    assert "not run yet" in text(card(html, "summary-verdict"))
    assert "not run yet" in text(card(html, "summary-cost"))
    assert "fine_tune" in text(card(html, "summary-recommendation"))
    # baseline metrics without a fine-tuned side yet
    metrics = text(section(html, "summary-metrics", until="<h3"))
    assert "field_accuracy (headline) 0.412 [0.353, 0.471] not run yet" in metrics
    for phase in ("04_training", "05_evaluation", "06_deployment_plan"):
        assert "Not run yet" in text(section(html, phase))
        assert "Not run yet." in text(section(html, f"manifest-{phase}"))
    index = text(section(html, "documentation-index"))
    assert 'data-status="missing"' in html and "phase not run yet: deployment_plan" in index
    assert "06_deployment_plan/handover.md (not run yet)" in index
    assert "02_data_audit/data_card.md" in index  # what has run is still linked


def test_a_bare_engagement_renders(make_engagement):
    html = build_engagement_report(make_engagement(n=20)).read_text()
    assert text(card(html, "summary-recommendation")).count("not run yet") == 1
    assert "No run has recorded its environment yet." in html
    assert "engagement_created" in section(html, "audit")


def test_phase_sections_link_the_latest_notebook_report_and_embed_figures(engagement_with):
    engagement = engagement_with("suitability", "data_audit")
    html = build_engagement_report(engagement).read_text()
    audit = text(section(html, "02_data_audit"))
    assert "2 records contain PII" in audit and "Set data.redact_pii: true" in audit  # findings, with next steps
    assert "The data can be used." in audit  # what to tell the client
    run_dir = engagement.latest_run_dir("data_audit")
    hrefs = re.findall(r'href="([^"#]+)"', section(html, "02_data_audit"))
    figures = sorted((run_dir / "figures").glob("*.png"))
    assert figures
    # Each figure also links to its PNG file, so a reader can open it at full size (no script, no data: URL).
    assert {(engagement.report_dir / h).resolve() for h in hrefs} == {run_dir / "report.html",
                                                                      run_dir / "02_data_audit.ipynb", *figures}
    assert 'src="data:image/png;base64,' in section(html, "02_data_audit")


def test_documentation_index_links_existing_files_and_marks_client_rows(engagement_with):
    engagement = engagement_with(*RESULTS)
    html = build_engagement_report(engagement).read_text()
    index = section(html, "documentation-index")
    rows = re.findall(r'<tr data-status="(\w+)">(.*?)</tr>', index, re.S)
    assert len(rows) >= 30
    statuses = {s for s, _ in rows}
    assert statuses == {"present", "out_of_scope"}, "every phase ran: nothing may be missing"
    for _, row in rows:
        for href in re.findall(r'href="([^"]+)"', row):
            if href.startswith("#"):
                assert f'id="{href[1:]}"' in html, href
            else:
                assert (engagement.report_dir / href).is_file(), href
    by_ref = {text(r).split(" ")[0] + " " + text(r).split(" ")[1]: s for s, r in rows}
    for point in ("IV(5)", "IV(7)", "IV(8)"):
        assert by_ref[f"Annex {point}"] == "out_of_scope"
    assert "out of scope: client's responsibility" in text(index)
    # the model card is linked where the export put it (merged before the adapter's placeholder README)
    assert "06_deployment_plan/runs/" in index and "export/merged/README.md" in index
    for title in ("Model card (Hugging Face)", "Datasheet for the training data", "EU AI Act", "NIST AI Risk"):
        assert title in index


def test_documentation_index_template_covers_the_frameworks():
    from ftkit.doc_index import load_index

    frameworks = {fw["key"]: fw for fw in load_index()}
    assert set(frameworks) == {"model_card", "datasheet", "eu_ai_act", "nist_ai_rmf"}
    assert [r["ref"] for r in frameworks["eu_ai_act"]["rows"]] == [f"Annex IV({i})" for i in range(1, 10)]
    assert [r["ref"] for r in frameworks["nist_ai_rmf"]["rows"]] == ["GOVERN", "MAP", "MEASURE", "MANAGE"]
    groups = " ".join(r["ref"].lower() for r in frameworks["datasheet"]["rows"])
    for group in ("motivation", "composition", "collection", "preprocessing", "uses", "distribution", "maintenance"):
        assert group in groups
    headings = " ".join(r["ref"] for r in frameworks["model_card"]["rows"])
    for heading in ("Model Details", "Uses", "Bias, Risks, and Limitations", "Training Details", "Evaluation",
                    "Environmental Impact", "Technical Specifications"):
        assert heading in headings
    assert all(fw["source"] for fw in frameworks.values())


def test_documentation_index_errors_name_every_problem(tmp_path):
    from ftkit.doc_index import load_index
    from ftkit.errors import ConfigError

    bad = tmp_path / "index.yaml"
    bad.write_text("frameworks:\n"
                   "  - {key: a, title: A, source: S, rows: [\n"
                   "      {ref: r1, requirement: q, scope: sometimes, evidence: [{at: training, file: x}]},\n"
                   "      {ref: r2, requirement: q, scope: ftkit, evidence: [{at: nowhere, file: x}]},\n"
                   "      {ref: r3, requirement: q, scope: ftkit, evidence: [{at: engagement, file: ../secret}]},\n"
                   "      {ref: r4, requirement: q, scope: client, evidence: []}]}\n")
    with pytest.raises(ConfigError) as err:
        load_index(bad)
    problems = "\n".join(err.value.problems)
    assert "rows[0].scope is 'sometimes'" in problems
    assert "rows[1].evidence[0].at is 'nowhere'" in problems
    assert "'../secret': must be relative" in problems
    assert "rows[3].client_part must say what the client provides" in problems


def test_audit_chain_table_verifies_and_flags_tampering(engagement_with):
    engagement = engagement_with("suitability", "data_audit")
    html = build_engagement_report(engagement).read_text()
    chain = section(html, "audit")
    assert "The chain verifies" in chain and 'data-ok="no"' not in chain
    entries = [json.loads(line) for line in engagement.audit_path.read_text().splitlines()]
    assert all(e["hash"] in chain for e in entries) and chain.count(">matches<") == 2

    # edit the suitability line's status after the fact, and change the data audit's manifest
    lines = engagement.audit_path.read_text().splitlines()
    lines[1] = lines[1].replace('"status": "succeeded"', '"status": "failed"')
    engagement.audit_path.write_text("\n".join(lines) + "\n")
    manifest = engagement.latest_run_dir("data_audit") / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"status": "succeeded"', '"status": "edited"'))

    html = build_engagement_report(engagement).read_text()
    chain = section(html, "audit")
    assert "The chain does NOT verify" in chain and "BROKEN" in html
    bad_rows = [text(r) for r in re.findall(r'<tr data-ok="no">(.*?)</tr>', chain, re.S)]
    assert len(bad_rows) == 2
    assert "suitability" in bad_rows[0] and "edited after it was written" in bad_rows[0]
    assert "data_audit" in bad_rows[1] and "manifest changed since recorded" in bad_rows[1]
    assert "audit.jsonl line 2 (run_finished) was edited after it was written" in chain  # ftkit verify's words


def test_manifest_and_environment_tables(engagement_with):
    engagement = engagement_with("suitability", "data_audit",
                                 packages={"suitability": {"torch": "2.13.0+cpu"}, "data_audit": {"torch": "2.12.1"}})
    run_dir = engagement.latest_run_dir("data_audit")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    html = build_engagement_report(engagement).read_text()
    manifests = section(html, "manifest-02_data_audit")
    for rel, digest in manifest["outputs"].items():
        assert rel in manifests and digest in manifests
    (run_dir / "issues.csv").unlink()
    manifests = section(build_engagement_report(engagement).read_text(), "manifest-02_data_audit")
    assert "MISSING" in manifests
    env = section(html, "environment")
    assert manifest["python"]["version"] in env and manifest["hardware"]["platform"] in env
    torch_row = next(r for r in re.findall(r"<tr>(.*?)</tr>", env, re.S) if "<td>torch</td>" in r)
    assert "2.12.1, 2.13.0+cpu" in text(torch_row) and "differs between runs" in torch_row


def test_report_is_one_self_contained_file(engagement_with):
    engagement = engagement_with(*RESULTS)
    html = build_engagement_report(engagement).read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""url\(\s*['"]?(https?:)?//""", html)
    # no attribute points outside the page or the engagement folder (URLs appear only as plain text)
    for value in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert not re.match(r"(https?:)?//", value), value
        assert value.startswith(("#", "data:image/png;base64,", "../")), value


def test_pdf_export_without_a_browser_names_what_to_install(engagement_with, monkeypatch, tmp_path):
    from ftkit.cli import main
    from ftkit.errors import MissingDependency
    from ftkit.reports import export_pdf

    engagement = engagement_with("suitability")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, chrome ... on PATH
    monkeypatch.delenv("FTKIT_CHROMIUM", raising=False)
    with pytest.raises(MissingDependency, match="apt-get install chromium"):
        export_pdf(engagement)
    assert not (engagement.report_dir / "engagement.pdf").exists()
    assert main(["report", engagement.slug, "--root", str(engagement.root), "--pdf"]) == 1
    assert (engagement.report_dir / "index.html").is_file()  # the HTML report is still rebuilt


def test_phase_table_shows_labelled_rounded_values_not_raw_keys(engagement_with):
    engagement = engagement_with(*RESULTS)
    html = build_engagement_report(engagement).read_text()
    table = section(html, "summary-phases", "<h2")
    rows = {text(r).split(" ", 1)[0]: text(re.search(r'<td class="headline">(.*?)</td>', r, re.S).group(1))
            for r in re.findall(r"<tr>(.*?)</tr>", table, re.S) if 'class="headline"' in r}
    assert "verdict: ready with warnings" in rows["2."] and "test examples: 68" in rows["2."]
    assert "95 % CI: [0.353, 0.471]" in rows["3."] and "headline value: 0.412" in rows["3."]
    assert "validation loss after: 0.113" in rows["4."]
    assert "monthly cost: $547.50" in rows["6."]
    shown = " ".join(rows.values())
    for raw in ("ci_low", "ci_high", "final_val_loss", "monthly_cost_usd", "n_test", "ready_with_warnings"):
        assert raw not in shown, raw


def test_headline_items_round_label_and_merge_the_ci():
    from ftkit.reports import headline_items

    items = headline_items({"headline_value": 0.41234, "ci_low": 0.3, "ci_high": 0.5, "resumed_from_step": None,
                            "overfitting": True, "monthly_cost_usd": 1234.5, "some_new_key": 2.0})
    assert [(i["label"], i["value"]) for i in items] == [
        ("headline value", "0.412"), ("95 % CI", "[0.300, 0.500]"), ("overfitting", "yes"),
        ("monthly cost", "$1,234.50"), ("some new key", "2.000")]


def _with_hosting(make_engagement, client: str, suitability_results: dict, managed_allowed: bool = True,
                  managed_usd=None):
    engagement = make_engagement(client, n=40)
    suitability = {**SUITABILITY, "results": {**SUITABILITY["results"], **suitability_results}}
    cost = json.loads(json.dumps(DEPLOYMENT["results"]["cost"]))
    for row in cost["managed"]:
        row["allowed"] = managed_allowed
        row["usd"] = managed_usd or row["usd"]
    record_run(engagement, "suitability", suitability)
    record_run(engagement, "deployment_plan", {**DEPLOYMENT, "results": {**DEPLOYMENT["results"], "cost": cost}})
    return text(card(build_engagement_report(engagement).read_text(), "summary-cost"))


def test_cost_card_says_why_self_hosting_when_a_managed_option_is_cheaper(make_engagement):
    reason = "Compliance (gdpr) makes sending data to a provider a legal question."
    shown = _with_hosting(make_engagement, "gdpr", {"hosting": "self_hosted", "hosting_reason": reason})
    assert ("Why self-hosted: Together AI Llama 3.1 8B + LoRA (serverless) costs $4.71/month against $547.50 "
            f"self-hosted, but self-hosting was chosen: {reason}") in shown
    forbidden = _with_hosting(make_engagement, "closed", {"hosting": "self_hosted"}, managed_allowed=False)
    assert "Why self-hosted:" in forbidden and "compliance.allow_external_providers is false" in forbidden
    free = _with_hosting(make_engagement, "free", {"hosting": "managed_or_self_hosted"})
    assert "Cheaper option:" in free and "no compliance setting rules it out" in free
    dear = _with_hosting(make_engagement, "dear", {"hosting": "self_hosted"}, managed_usd=900.0)
    assert "Why self-hosted" not in dear and "Cheaper option" not in dear
