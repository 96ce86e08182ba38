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
import re
from pathlib import Path

import ftkit
from ftkit.engagement import Engagement
from ftkit.fsutil import atomic_write_text, read_json
from ftkit.resources import templates_dir

EVIDENCE_NOTE = ("Only runs made through `ftkit run` are evidence: they are executed headless from the "
                 "versioned notebook, hashed and recorded in the engagement's audit log. Copies opened with "
                 "`ftkit lab` are for exploration.")


RUN_LOG = "run.log"  # beside report.html: what the notebook printed that is not for the client (see below)
# Output kinds a person reads in report.html; anything else (stderr, widget views, bare text reprs) goes to the log.
_RICH_MIMES = ("text/html", "text/markdown", "image/png", "image/jpeg", "image/svg+xml", "text/latex")
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# A tqdm-style bar ("generating:  40%|████      | 4/10 [00:01<00:02, 3.1ex/s]") printed to stdout.
_PROGRESS_LINE = re.compile(r"^.{0,80}?\d{1,3}%\|.*\|\s*\d+(?:\.\d+)?[kMG]?/\d+(?:\.\d+)?[kMG]?\b.*$")


def render_run_report(notebook_path: Path, out_path: Path, header: dict) -> Path:
    """Render the executed notebook to ``out_path`` with code hidden and the evidence header on top.

    The report keeps what a client reads: markdown, tables, images, plain printed text, and errors (a failed
    run must show why). Library warnings and everything else on stderr, progress bars, widget views and bare
    text reprs (``PosixPath('.../results.json')``, ``<Figure size 1110x360 with 1 Axes>``) are moved to
    ``run.log`` in the same folder, cell by cell, so nothing the run printed is lost.
    """
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="ftkit_run", extra_template_basedirs=[str(templates_dir() / "report")])
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebook = nbformat.read(str(notebook_path), as_version=4)
    _drop_parameter_cells(notebook)
    log = split_run_log(notebook)
    header = {**header, "inputs": {_shown_input(name): digest for name, digest in (header.get("inputs") or {}).items()}}
    resources = {"ftkit": {"evidence_note": EVIDENCE_NOTE, "git_commit": "", "error": "", **header}}
    body, _ = exporter.from_notebook_node(notebook, resources=resources)
    atomic_write_text(out_path.parent / RUN_LOG, _format_log(header, log))
    return atomic_write_text(out_path, body)


def _shown_input(name: str) -> str:
    """Inputs are recorded relative to the engagement folder; one outside it (ftkit's shipped price table, say)
    is shown by its place in ftkit or by its file name: this machine's folders stay in the manifest only."""
    path = Path(name)
    if not path.is_absolute():
        return name
    shipped = templates_dir().parent
    if path.is_relative_to(shipped):
        return f"ftkit: {path.relative_to(shipped).as_posix()}"
    return f"outside the engagement: {path.name}"


def split_run_log(notebook) -> list[tuple[int, str, str]]:
    """Remove from ``notebook`` (in place) the outputs that belong in the run log; returns them as
    ``(cell number, kind, text)`` in notebook order. Kinds: ``stderr``, ``progress``, ``widget``, ``repr``."""
    log = []
    for number, cell in enumerate(notebook.cells, start=1):
        kept = []
        for output in cell.get("outputs", []):
            kind, text, output = _classify_output(output)
            if kind:
                log.append((number, kind, text))
            if output is not None:
                kept.append(output)
        if cell.get("cell_type") == "code":
            cell["outputs"] = kept
    return log


def _classify_output(output) -> tuple[str, str, object]:
    """(log kind or '', text for the log, the output to keep or None)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        if output.get("name") == "stderr":
            return "stderr", text, None
        kept, progress = _strip_progress(text)
        if not progress:
            return "", "", output
        output["text"] = kept
        return "progress", progress, output if kept.strip() else None
    if kind in ("display_data", "execute_result"):
        data = output.get("data", {})
        if _WIDGET_MIME in data:
            return "widget", str(data.get("text/plain", "")), None
        if not any(m in data for m in _RICH_MIMES):
            return "repr", str(data.get("text/plain", "")), None
    return "", "", output


def _strip_progress(text: str) -> tuple[str, str]:
    """Split stdout text into (what to keep, progress-bar lines); carriage-return redraws count as lines."""
    kept, progress = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        frames = [f for f in line.split("\r") if f.strip()]
        if frames and all(_PROGRESS_LINE.match(f.strip()) for f in frames):
            progress.extend(frames)
        else:
            kept.append(frames[-1] if frames else line)  # a terminal shows the last redraw of a line
    return "\n".join(kept), "\n".join(progress)


def _format_log(header: dict, log: list[tuple[int, str, str]]) -> str:
    title = (f"ftkit run log: {header.get('client', '')} {header.get('phase', '')} run {header.get('run_id', '')}\n"
             f"Output of the executed notebook that report.html leaves out (warnings, stderr, progress bars, "
             f"widget views, text reprs). The notebook itself keeps every output.\n")
    lines, previous = [title], None
    for number, kind, text in log:  # stderr arrives in fragments: one heading per cell and kind
        body = text.replace("\r", "\n").strip("\n")
        if not body:
            continue
        if (number, kind) != previous:
            lines.append(f"--- cell {number} [{kind}]")
            previous = (number, kind)
        lines.append(body)
    if not log:
        lines.append("(nothing left out)")
    return "\n".join(lines) + "\n"


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
    from ftkit.audit_log import read_entries
    from ftkit.config import load_config
    from ftkit.doc_index import documentation_index
    from ftkit.phases import ordered
    from ftkit.report_evidence import audit_chain, environment
    from ftkit.report_summary import executive_summary
    from ftkit.report_uat import uat_section

    config = load_config(engagement.config_path)
    sections = [_phase_section(engagement, phase) for phase in ordered()]
    chain = audit_chain(engagement, read_entries(engagement.audit_path))
    results = {s["phase"].name: s.get("results") for s in sections}
    summary = executive_summary(results)
    return dict(
        config=config, client=engagement.slug, sections=sections, chain=chain,
        summary=summary, hosting_note=hosting_note(summary["cost"], results.get("suitability")),
        doc_index=documentation_index(engagement, engagement.report_dir), environment=environment(sections),
        training_data=_training_data(engagement),
        generated_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        ftkit_version=ftkit.__version__, evidence_note=EVIDENCE_NOTE, spend=_spend(engagement, config),
        findings=[(s["phase"].title, f) for s in sections for f in s.get("findings", [])],
        uat=uat_section(engagement), ledger=_ledger(engagement))


def _training_data(engagement: Engagement) -> list[dict]:
    """Per training iteration: the examples it trained on by source (synthetic included; ftkit/augmentation)."""
    from ftkit.augmentation.sources import training_data_by_iteration

    return training_data_by_iteration(engagement)


def _ledger(engagement: Engagement):
    from ftkit.report_ledger import ledger_context

    return ledger_context(engagement)


def hosting_note(cost: dict | None, suitability: dict | None) -> dict | None:
    """Why the plan self-hosts when a managed option is cheaper at the client's volume (None when none is).

    The reason is the compliance one recorded by suitability (``hosting_reason``), or
    ``compliance.allow_external_providers: false`` ruling every cheaper provider out; without either the note
    says plainly that a managed provider would be cheaper and nothing forbids it.

    >>> cost = {"self_hosted_usd": 500.0, "managed": [{"provider": "P", "name": "m", "usd": 9.5, "allowed": True}]}
    >>> hosting_note(cost, {"results": {"hosting": "self_hosted", "hosting_reason": "GDPR."}})["text"]
    'P m costs $9.50/month against $500.00 self-hosted, but self-hosting was chosen: GDPR.'
    """
    if not cost or not _number(cost.get("self_hosted_usd")):
        return None
    cheaper = [m for m in cost.get("managed") or [] if _number(m.get("usd")) and m["usd"] < cost["self_hosted_usd"]]
    if not cheaper:
        return None
    best = min(cheaper, key=lambda m: m["usd"])
    head = (f"{best.get('provider', '')} {best.get('name', '')}".strip() +
            f" costs {_usd(best['usd'])}/month against {_usd(cost['self_hosted_usd'])} self-hosted")
    suitability = (suitability or {}).get("results") or {}
    if not any(m.get("allowed", True) for m in cheaper):
        return {"title": "Why self-hosted", "text": f"{head}, but compliance.allow_external_providers is false: no "
                                                     f"managed provider may receive the client's data."}
    if suitability.get("hosting") == "self_hosted" and suitability.get("hosting_reason"):
        return {"title": "Why self-hosted",
                "text": f"{head}, but self-hosting was chosen: {suitability['hosting_reason']}"}
    return {"title": "Cheaper option", "text": f"{head}, and no compliance setting rules it out: consider the "
                                               f"managed provider unless volume will grow past break-even."}


def _spend(engagement: Engagement, config) -> dict | None:
    """The spend-vs-budget section (``ftkit.report_spend``); None when the price table cannot be read."""
    from ftkit.errors import FtkitError
    from ftkit.report_spend import spend_summary

    try:
        return spend_summary(engagement, config)
    except FtkitError:
        return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _render(context: dict, expand: bool) -> str:
    """The page; ``expand`` opens every <details> (a printed page cannot be clicked open)."""
    import jinja2

    # Lenient undefined on purpose: results.json files written by older ftkit versions may lack a key, and an
    # audit report that refuses to render is worse than one with an empty cell.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters.update(num=_num, ci=_ci, usd=_usd, kv=_kv, headline_items=headline_items)
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
                   figures=_figures(engagement, run_dir))
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


def _figures(engagement: Engagement, run_dir: Path) -> list[dict]:
    """Figures embedded as base64 so the report stays one self-contained file; ``href`` links the PNG file itself
    so a reader can open it at full size (a link to the data URI would not do: browsers refuse to open a page
    at a data: URL)."""
    import base64

    figures = []
    for path in sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []:
        figures.append({"name": path.stem.replace("_", " "), "href": _href(engagement, path),
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


# Labels (and units) for the phases' headline keys in the consolidated report's phase table; a key not listed
# is shown with its underscores as spaces. ci_low/ci_high are merged into one "95 % CI" item.
HEADLINE_LABELS = {
    "recommendation": ("recommendation", ""), "method": ("method", ""), "hosting": ("hosting", ""),
    "readiness": ("readiness", ""), "timeline_weeks": ("timeline", " weeks"), "verdict": ("verdict", ""),
    "n_valid": ("valid examples", ""), "n_train": ("training examples", ""), "n_test": ("test examples", ""),
    "model": ("model", ""), "headline_metric": ("headline metric", ""), "headline_value": ("headline value", ""),
    "initial_val_loss": ("validation loss before", ""), "final_val_loss": ("validation loss after", ""),
    "train_minutes": ("training time", " min"), "steps": ("steps", ""), "overfitting": ("overfitting", ""),
    "resumed_from_step": ("resumed from step", ""), "delta": ("difference (fine-tuned - baseline)", ""),
    "baseline": ("baseline", ""), "fine_tuned": ("fine-tuned", ""), "p_value": ("p-value", ""),
    "action": ("action", ""), "serving": ("serving", ""), "monthly_cost_usd": ("monthly cost", ""),
}
_ENUM_VALUE = re.compile(r"^[a-z]+(?:_[a-z]+)+$")  # ready_with_warnings -> "ready with warnings"


def headline_items(headline) -> list[dict]:
    """A phase's headline as labelled, rounded items for people.

    >>> [(i["label"], i["value"]) for i in headline_items({"verdict": "no_go", "ci_low": 0.0, "ci_high": 0.25,
    ...                                                     "train_minutes": 0.021, "overfitting": False})]
    [('verdict', 'no go'), ('95 % CI', '[0.000, 0.250]'), ('training time', '0.021 min'), ('overfitting', 'no')]
    """
    items = []
    for key, value in (headline or {}).items():
        if value is None or value == "" or key == "ci_high" and "ci_low" in headline:
            continue
        if key == "ci_low":
            items.append({"key": "ci", "label": "95 % CI", "value": _ci([value, headline.get("ci_high")])})
            continue
        label, unit = HEADLINE_LABELS.get(key, (key.replace("_", " "), ""))
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif key.endswith("_usd"):
            shown = _usd(value)
        elif isinstance(value, str) and _ENUM_VALUE.match(value):
            shown = value.replace("_", " ")
        else:
            shown = _num(value)
        items.append({"key": key, "label": label, "value": shown + unit})
    return items


def _kv(mapping) -> str:
    """{'bootstrap': 0, 'training': 42} -> 'bootstrap=0, training=42'."""
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items())


def _usd(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"${value:,.2f}"
