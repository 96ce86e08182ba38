"""Reports for people: one ``report.html`` per run (nbconvert) and the consolidated engagement report.

The per-run report is the executed notebook rendered with code hidden and figures embedded (matplotlib
outputs are already base64 PNGs in the notebook), under a header with the evidence that matters: client,
phase, run id, status, times, ftkit version and input hashes. The consolidated report is a jinja2 page
built from every phase's latest ``results.json`` and manifest, and the audit chain.
"""
from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path

import ftkit
from ftkit.engagement import Engagement
from ftkit.fsutil import atomic_write_text, read_json
from ftkit.resources import templates_dir

EVIDENCE_NOTE = ("Only runs made through `ftkit run` are evidence: they are executed headless from the "
                 "versioned notebook, hashed and recorded in the engagement's audit log. Copies opened with "
                 "`ftkit lab` are for exploration.")


def render_run_report(notebook_path: Path, out_path: Path, header: dict) -> Path:
    """Render the executed notebook to ``out_path`` with code hidden and the evidence header on top."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="ftkit_run", extra_template_basedirs=[str(templates_dir() / "report")])
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebook = nbformat.read(str(notebook_path), as_version=4)
    _drop_parameter_cells(notebook)
    resources = {"ftkit": {"evidence_note": EVIDENCE_NOTE, "git_commit": "", "error": "", "inputs": {}, **header}}
    body, _ = exporter.from_notebook_node(notebook, resources=resources)
    return atomic_write_text(out_path, body)


def _drop_parameter_cells(notebook) -> None:
    # The parameters are in the header/manifest; the raw injected-parameters cell output is noise for people.
    notebook.cells = [c for c in notebook.cells
                      if not {"parameters", "injected-parameters"} & set(c.get("metadata", {}).get("tags", []))]


def build_engagement_report(engagement: Engagement) -> Path:
    """Write ``report/index.html`` from the phases' latest results, manifests and the audit log."""
    import jinja2

    from ftkit.audit import check_chain, read_entries
    from ftkit.config import load_config
    from ftkit.phases import ordered

    config = load_config(engagement.config_path)
    sections = []
    for phase in ordered():
        sections.append(_phase_section(engagement, phase))
    entries = read_entries(engagement.audit_path)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    page = env.get_template("engagement.html.j2").render(
        config=config, client=engagement.slug, sections=sections, audit=entries, chain_problems=check_chain(entries),
        generated_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        ftkit_version=ftkit.__version__, evidence_note=EVIDENCE_NOTE,
        findings=[(s["phase"].title, f) for s in sections for f in s.get("findings", [])])
    return atomic_write_text(engagement.report_dir / "index.html", page)


def _phase_section(engagement: Engagement, phase) -> dict:
    section = {"phase": phase, "run_dir": None, "history": _history(engagement, phase)}
    run_dir = engagement.latest_run_dir(phase)
    if run_dir is None:
        return section
    results = _read_optional(run_dir / "results.json") or {}
    manifest = _read_optional(run_dir / "manifest.json") or {}
    report_rel = os.path.relpath(run_dir / "report.html", engagement.report_dir).replace(os.sep, "/")
    notebook_rel = os.path.relpath(run_dir / f"{phase.folder}.ipynb", engagement.report_dir).replace(os.sep, "/")
    section.update(run_dir=run_dir, run_id=run_dir.name, results=results, manifest=manifest,
                   headline=results.get("headline", {}), summary=results.get("summary", ""),
                   findings=results.get("findings", []), tell_client=results.get("tell_client", ""),
                   next_steps=results.get("next_steps", []), report_href=report_rel, notebook_href=notebook_rel,
                   figures=_figures(run_dir))
    return section


def _history(engagement: Engagement, phase) -> list[dict]:
    rows = []
    for run_id in engagement.run_ids(phase):
        status = _read_optional(engagement.runs_dir(phase) / run_id / "status.json") or {}
        rows.append({"run_id": run_id, "status": status.get("status", "unknown"),
                     "finished_utc": status.get("finished_utc", ""), "error": status.get("error", "")})
    return rows


def _figures(run_dir: Path) -> list[dict]:
    """Figures embedded as base64 so the report stays one self-contained file."""
    import base64

    figures = []
    for path in sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []:
        figures.append({"name": path.stem.replace("_", " "),
                        "data": base64.b64encode(path.read_bytes()).decode("ascii")})
    return figures


def _read_optional(path: Path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def escape(text) -> str:
    return html.escape(str(text))
