"""PhaseRun: what a phase notebook holds while it runs.

One object per notebook run. It loads and validates ``engagement.yaml``, reads upstream phases' latest
results (recording their hashes as inputs), collects findings, saves figures and artefacts into the run
folder, and writes ``results.json`` at the end. Notebooks stay thin: every cell calls one or two ftkit
functions and hands its finding to ``run.finding``.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.config import EngagementConfig, load_config
from ftkit.display import embed_figures_as_png, show_png
from ftkit.engagement import Engagement
from ftkit.errors import PhaseFailed
from ftkit.findings import Finding
from ftkit.fsutil import atomic_write_json, read_json, sha256_file
from ftkit.safe_values import markdown_text  # client text in Markdown output: no links, no raw HTML
from ftkit.phases import get_phase

RESULTS_FILE = "results.json"
SNAPSHOT_FILE = "engagement.snapshot.yaml"
REPERFORMANCE_OF_FILE = "reperformance_of.json"  # in a re-performance's run folder: what it re-performs


@dataclass
class PhaseRun:
    phase: str
    engagement: Engagement
    run_dir: Path
    config: EngagementConfig
    params: dict = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    provenance: dict = field(default_factory=lambda: {"seeds": {}, "base_model": {}})
    started_utc: str = ""

    @classmethod
    def open(cls, phase: str, engagement_dir: str, run_dir: str, params: dict | None = None,
             show: bool = True) -> "PhaseRun":
        """Validate the engagement and get ready. ``run_dir`` '.' (interactive use) means a scratch folder."""
        phase_obj = get_phase(phase)
        engagement = Engagement.from_dir(engagement_dir)
        run_path = Path(run_dir).resolve()
        if run_dir in ("", "."):  # opened by hand in JupyterLab: keep scratch output out of the evidence
            run_path = engagement.path / "scratch" / phase_obj.folder
        run_path.mkdir(parents=True, exist_ok=True)
        # Runs made by `ftkit run` read the snapshot the runner took, so the evidence shows the exact
        # settings used even if engagement.yaml is edited later; interactive use reads the live file.
        snapshot = run_path / SNAPSHOT_FILE
        config = load_config(snapshot if snapshot.is_file() else engagement.config_path)
        run = cls(phase_obj.name, engagement, run_path, config, dict(params or {}),
                  started_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        embed_figures_as_png()  # figures displayed any way end up as images in report.html
        if show:  # the interpreter path is machine-local: the manifest records it, the report does not show it
            run._show_markdown(
                f"**Client:** {markdown_text(config.client.name or engagement.slug)} · **phase:** {phase_obj.title} · "
                f"**run:** `{run.run_id}`")
        return run

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    # -- inputs -------------------------------------------------------------------------------------
    def record_input(self, path: str | Path) -> str:
        """Hash ``path`` and record it as an input of this run (relative to the engagement folder)."""
        path = Path(path).resolve()
        digest = sha256_file(path)
        try:
            key = self.engagement.relative(path)
        except ValueError:  # outside the engagement (e.g. a model folder): keep the absolute path
            key = str(path)
        self.inputs[key] = digest
        return digest

    def data_files(self, test: bool = False) -> list[Path]:
        """The client's data files (``data.files``, or ``data.test_files`` with test=True), recorded as inputs."""
        from ftkit.errors import DataError

        paths = []
        for rel in (self.config.data.test_files if test else self.config.data.files):
            path = (self.engagement.path / rel).resolve()
            if path.is_dir():  # a dataset folder (save_to_disk, Parquet/Arrow shards): every file in it is an input
                for member in sorted(f for f in path.rglob("*") if f.is_file()):
                    self.record_input(member)
            elif path.is_file():
                self.record_input(path)
            else:
                raise DataError(f"engagement.yaml lists data file '{rel}' but {path} does not exist; fix data."
                                f"{'test_files' if test else 'files'} or copy the file into data/.")
            paths.append(path)
        return paths

    def record_seed(self, name: str, value: int) -> None:
        """Record a seed (data split, sampling, training) for the manifest."""
        self.provenance["seeds"][name] = value

    def record_model(self, description: dict) -> None:
        """Record the base model's identity (id, revision or folder sha256, parameters) for the manifest."""
        self.provenance["base_model"] = dict(description)

    def upstream_dir(self, phase: str) -> Path:
        pinned = self._pinned_upstream().get(get_phase(phase).name)
        if pinned:  # a re-performance reads the very runs the original read, not today's `latest`
            return self.engagement.runs_dir(phase) / pinned
        run_dir = self.engagement.latest_run_dir(phase)
        if run_dir is None:
            raise PhaseFailed(f"Phase '{get_phase(phase).name}' has no succeeded run yet; run "
                              f"`ftkit run {self.engagement.slug} --phase {get_phase(phase).name}` first.")
        return run_dir

    def _pinned_upstream(self) -> dict:
        """{phase: run_id} from ``reperformance_of.json`` (written by ``ftkit reproduce``), else {}."""
        path = self.run_dir / REPERFORMANCE_OF_FILE
        return (read_json(path).get("upstream") or {}) if path.is_file() else {}

    def upstream_payload(self, phase: str) -> dict:
        """The latest succeeded results.json of ``phase`` as written (a dict); its hash is recorded as an input.

        Phase code reads :meth:`upstream` (typed) instead; this is for readers of the file's envelope.
        """
        path = self.upstream_dir(phase) / RESULTS_FILE
        self.record_input(path)
        return read_json(path)

    def upstream(self, phase: str):
        """The latest succeeded results of ``phase``, typed (its ``PhaseResults`` dataclass).

        The file's hash is recorded as an input. PhaseFailed naming the phase to re-run when that run was
        written before typed results, by an older schema version, or lacks a field.
        """
        from ftkit.phase_results import load

        run_dir = self.upstream_dir(phase)
        return load(phase, self.upstream_payload(phase), self.engagement.slug,
                    where=f"the latest '{get_phase(phase).name}' run ({run_dir.name})")

    def upstream_file(self, phase: str, name: str) -> Path:
        """An artefact of the upstream phase's latest run, recorded as an input."""
        path = self.upstream_dir(phase) / name
        if not path.exists():
            raise PhaseFailed(f"{path} is missing: the latest '{phase}' run did not write '{name}'. Re-run that phase.")
        if path.is_file():
            self.record_input(path)
        return path

    # -- outputs ------------------------------------------------------------------------------------
    def artefact(self, name: str) -> Path:
        """Path for an output file inside the run folder (parent folders created)."""
        path = self.run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.artefact(name), obj)

    def save_figure(self, fig, name: str) -> Path:
        """Save a matplotlib figure as figures/<name>.png (150 dpi) and show it inline."""
        path = self.artefact(f"figures/{name}.png")
        tmp = path.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        os.replace(tmp, path)
        show_png(path)  # the saved file itself, so the report shows it whatever matplotlib backend is active
        import matplotlib.pyplot as plt
        plt.close(fig)
        return path

    def finding(self, severity: str, code: str, message: str, next_step: str = "") -> None:
        """Record and show a finding. Returns None so a cell ending with it shows no repr."""
        item = Finding(severity, code, message, next_step)
        self.findings.append(item)
        icon = {"info": "ℹ️", "warning": "⚠️", "blocking": "⛔"}[severity]
        extra = f" **Next:** {markdown_text(next_step)}" if next_step else ""
        self._show_markdown(f"{icon} **{severity.upper()}** `{code}`: {markdown_text(message)}{extra}")

    def record(self, section) -> None:
        """Show and record one section: its tables, notes, figures (saved) and findings, in that order.

        ``section`` is a :class:`ftkit.section.Section`, or an iterable of findings (``Finding`` objects or
        ``(severity, code, message, next_step)`` tuples). Returns None so a cell ending with it shows no repr.
        """
        from ftkit.section import Section, as_findings

        if not isinstance(section, Section):
            section = Section(findings=as_findings(section))
        if section.tables:
            from ftkit.display import show_table

            for t in section.tables:
                show_table(t.rows, t.columns, t.caption)
        for line in section.notes:
            print(line)
        for name, fig in section.figures:
            self.save_figure(fig, name)
        for f in section.findings:
            self.finding(f.severity, f.code, f.message, f.next_step)

    def finish(self, headline=None, results: dict | None = None, summary: str = "", tell_client: str = "",
               next_steps: list[str] | None = None, blocks_downstream: str = "") -> None:
        """Write results.json (atomically). Call once, as the notebook's last step.

        ``headline``: the phase's typed results (a :class:`ftkit.phase_results.PhaseResults`; headline,
        results and schema come from it), or a plain headline dict with ``results`` beside it (ad-hoc
        notebooks). ``blocks_downstream``: a non-empty reason makes the runner refuse every phase that
        depends on this one (e.g. a blocked data audit), quoting the reason. Returns None, so a notebook
        ending with this call shows no stray repr; the file is ``run.results_path``.
        """
        from ftkit.phase_results import PhaseResults

        schema = None
        if isinstance(headline, PhaseResults):
            typed = headline
            if typed.PHASE != self.phase:
                raise PhaseFailed(f"{type(typed).__name__} holds '{typed.PHASE}' results, but this is the "
                                  f"'{self.phase}' phase.")
            headline, results, schema = typed.headline_row(), typed.to_results(), typed.schema()
        from ftkit.environment import torch_runtime

        self.provenance["torch"] = torch_runtime()  # determinism settings and threads, as this kernel had them
        payload = {
            "phase": self.phase,
            "run_id": self.run_id,
            "client": self.engagement.slug,
            "started_utc": self.started_utc,
            "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "headline": headline or {},
            "summary": summary,
            "results": results or {},
            "findings": [f.to_dict() for f in self.findings],
            "tell_client": tell_client,
            "next_steps": list(next_steps or []),
            "blocks_downstream": blocks_downstream,
            "inputs": self.inputs,
            "provenance": self.provenance,
            "params": self.params,
        }
        if schema:
            payload["schema"] = schema
        atomic_write_json(self.results_path, payload)
        lines = [f"### What to tell the client\n{tell_client}" if tell_client else "",
                 "### What to do next\n" + "\n".join(f"1. {s}" for s in next_steps) if next_steps else ""]
        self._show_markdown("\n\n".join(x for x in lines if x))

    @property
    def results_path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    @staticmethod
    def _show_markdown(text: str) -> None:
        if not text:
            return
        try:
            from IPython import get_ipython
            from IPython.display import Markdown, display
            if get_ipython() is not None:
                display(Markdown(text))
                return
        except ImportError:
            pass
        print(text)
