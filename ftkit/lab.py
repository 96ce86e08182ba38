"""`ftkit lab`: JupyterLab on a working copy of the phase notebooks for one engagement.

The copies get the engagement's parameters injected (papermill's own parameterisation), so a consultant can
run cells, explore and answer the questionnaire. Results written there go to ``lab/scratch``; only runs made
with `ftkit run` are evidence (the reports say so).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from ftkit.engagement import Engagement
from ftkit.errors import MissingDependency
from ftkit.phases import ordered
from ftkit.resources import notebooks_dir


def prepare_lab(engagement: Engagement) -> Path:
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    folder = engagement.path / "lab"
    folder.mkdir(exist_ok=True)
    for phase in ordered():
        source = engagement.path / "notebooks" / phase.notebook  # the client's fork, if any
        if not source.is_file():
            source = notebooks_dir() / phase.notebook
        if not source.is_file():
            continue
        target = folder / phase.notebook
        if target.exists():
            continue  # never overwrite a consultant's edits; delete the copy to get a fresh one
        scratch = folder / "scratch" / phase.folder
        scratch.mkdir(parents=True, exist_ok=True)
        nb = load_notebook_node(str(source))  # papermill's loader: normalises cell tags it relies on
        params = {"engagement_dir": str(engagement.path), "run_dir": str(scratch)}
        if phase.name == "suitability":
            params["interactive"] = True
        nb = parameterize_notebook(nb, params, kernel_name="python3", language="python")
        nbformat.write(nb, str(target))
    readme = folder / "README.md"
    if not readme.exists():
        readme.write_text("Working copies for exploration. Only runs made with `ftkit run` are evidence.\n",
                          encoding="utf-8")
    return folder


# Nothing leaves the machine: no news feed (jupyterlab.github.io), no update check (pypi.org), and an extension
# manager that lists installed extensions without searching PyPI.
OFFLINE_ARGS = ("--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly")


def lab_command(folder: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The JupyterLab command line for ``folder``: offline (``OFFLINE_ARGS``), and ``--allow-root`` when running
    as root (containers, CI), where JupyterLab otherwise refuses to start ("Running as root is not
    recommended")."""
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", *OFFLINE_ARGS]
    if running_as_root():
        command.append("--allow-root")
    return command + list(extra)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def launch_lab(folder: Path) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        raise MissingDependency("jupyterlab", "`ftkit lab`", "pip install -e . (ftkit's dependencies include it)")
    return subprocess.call(lab_command(folder))
