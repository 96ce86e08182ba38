"""Reports for people: one ``report.html`` per run (nbconvert) and the consolidated engagement report.

The per-run report is the executed notebook rendered with code hidden and figures embedded (matplotlib
outputs are already base64 PNGs in the notebook), under a header with the evidence that matters: client,
phase, run id, status, times, ftkit version and input hashes.

The consolidated report (``report/index.html``) is one self-contained jinja2 page (figures as data URIs, no
scripts, fonts or stylesheets fetched) built from every phase's latest ``results.json`` and manifest and the audit
log: executive summary (``ftkit.report_summary``), one section per phase, the documentation index for auditors
(``ftkit.doc_index``), manifests, audit chain and environment (``ftkit.report_evidence``). ``--pdf`` prints it
with headless Chromium (``ftkit.report_pdf``). Heavy libraries are never imported here.
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


def build_engagement_report(engagement: Engagement, pdf: bool = False) -> Path:
    """Write ``report/index.html`` (and, with ``pdf``, ``report/engagement.pdf``); returns the HTML's path.

    Built from the phases' latest results and manifests and the audit log only, so it can be rebuilt at any
    time and shows a phase that has not run yet as "not run yet".
    """
    context = _report_context(engagement)
    index = atomic_write_text(engagement.report_dir / "index.html", _render(context, expand=False))
    if pdf:
        export_pdf(engagement, context)
    return index


def export_pdf(engagement: Engagement, context: dict | None = None) -> Path:
    """``report/engagement.pdf`` via headless Chromium, from a print variant with every section expanded."""
    import tempfile

    from ftkit.errors import MissingDependency
    from ftkit.report_pdf import INSTALL_HINT, find_chromium, print_to_pdf

    browser = find_chromium()
    if not browser:  # before rendering: the message is the useful output
        raise MissingDependency("chromium", "PDF export of the engagement report (ftkit report --pdf)", INSTALL_HINT)
    context = context or _report_context(engagement)
    engagement.report_dir.mkdir(parents=True, exist_ok=True)
    # Same folder as index.html, so the relative links in the page resolve the same way while printing.
    fd, tmp = tempfile.mkstemp(prefix=".print.", suffix=".html", dir=engagement.report_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_render(context, expand=True))
        return print_to_pdf(Path(tmp), engagement.report_dir / "engagement.pdf", browser)
    finally:
        os.unlink(tmp)


def _report_context(engagement: Engagement) -> dict:
    from ftkit.audit import read_entries
    from ftkit.config import load_config
    from ftkit.doc_index import documentation_index
    from ftkit.phases import ordered
    from ftkit.report_evidence import audit_chain, environment
    from ftkit.report_summary import executive_summary

    config = load_config(engagement.config_path)
    sections = [_phase_section(engagement, phase) for phase in ordered()]
    chain = audit_chain(engagement, read_entries(engagement.audit_path))
    return dict(
        config=config, client=engagement.slug, sections=sections, chain=chain,
        summary=executive_summary({s["phase"].name: s.get("results") for s in sections}),
        doc_index=documentation_index(engagement, engagement.report_dir), environment=environment(sections),
        generated_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        ftkit_version=ftkit.__version__, evidence_note=EVIDENCE_NOTE,
        findings=[(s["phase"].title, f) for s in sections for f in s.get("findings", [])])


def _render(context: dict, expand: bool) -> str:
    """The page; ``expand`` opens every <details> (a printed page cannot be clicked open)."""
    import jinja2

    # Lenient undefined on purpose: results.json files written by older ftkit versions may lack a key, and an
    # audit report that refuses to render is worse than one with an empty cell.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters.update(num=_num, ci=_ci, usd=_usd, kv=_kv)
    return env.get_template("engagement.html.j2").render(**context, expand=expand)


def _phase_section(engagement: Engagement, phase) -> dict:
    from ftkit.report_evidence import manifest_files

    section = {"phase": phase, "run_dir": None, "results": None, "manifest": {}, "findings": [],
               "history": _history(engagement, phase)}
    run_dir = engagement.latest_run_dir(phase)
    if run_dir is None:
        return section
    results = _read_optional(run_dir / "results.json") or {}
    manifest = _read_optional(run_dir / "manifest.json") or {}
    section.update(run_dir=run_dir, run_id=run_dir.name, results=results, manifest=manifest,
                   headline=results.get("headline", {}), summary=results.get("summary", ""),
                   findings=results.get("findings", []), tell_client=results.get("tell_client", ""),
                   next_steps=results.get("next_steps", []),
                   report_href=_href(engagement, run_dir / "report.html"),
                   notebook_href=_href(engagement, run_dir / phase.notebook),
                   files=manifest_files(engagement, run_dir, manifest, engagement.report_dir),
                   figures=_figures(run_dir))
    return section


def _href(engagement: Engagement, path: Path) -> str | None:
    """Link relative to report/ (the folder moves as a whole), or None when the file is not there."""
    return os.path.relpath(path, engagement.report_dir).replace(os.sep, "/") if path.is_file() else None


def _history(engagement: Engagement, phase) -> list[dict]:
    rows = []
    for run_id in engagement.run_ids(phase):
        status = _read_optional(engagement.runs_dir(phase) / run_id / "status.json") or {}
        rows.append({"run_id": run_id, "status": status.get("status", "unknown"),
                     "finished_utc": status.get("finished_utc", ""), "error": status.get("error", "")})
    _note_reperformances(engagement, phase, rows)
    return rows


def _note_reperformances(engagement: Engagement, phase, rows: list[dict]) -> None:
    """`ftkit reproduce` runs, shown beside the runs they re-performed (ftkit/reperformance.py)."""
    by_id = {row["run_id"]: row for row in rows}
    for row in rows:
        report = _read_optional(engagement.runs_dir(phase) / row["run_id"] / "reperformance.json")
        if not report:
            continue
        row["reperformance"] = f"re-performs {report.get('reperformance_of')}: {report.get('verdict')}"
        original = by_id.get(report.get("reperformance_of"))
        if original is not None:
            original.setdefault("reperformed_by", []).append(f"{row['run_id']}: {report.get('verdict')}")


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


def _num(value, digits: int = 3) -> str:
    """Numbers as people read them: 0.721, 1,234, '-' for missing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _ci(pair, digits: int = 3) -> str:
    if not pair:
        return ""
    return f"[{_num(pair[0], digits)}, {_num(pair[1], digits)}]"


def _kv(mapping) -> str:
    """{'bootstrap': 0, 'training': 42} -> 'bootstrap=0, training=42'."""
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items())


def _usd(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"${value:,.2f}"
