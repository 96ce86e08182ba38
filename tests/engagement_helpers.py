"""Helpers shared by tests (imported by name: test folders each have their own conftest.py)."""
from __future__ import annotations

import json
from pathlib import Path

from ftkit.resources import sample_data_dir


def sample_records(n: int | None = None) -> list[dict]:
    lines = (sample_data_dir() / "support_tickets.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


def fork_notebook(engagement, phase_folder: str, cells: list[str]) -> Path:
    """Give an engagement its own version of a phase notebook (how a consultant forks one for a client)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    params = new_code_cell('engagement_dir: str = "."  # engagement folder\nrun_dir: str = "."  # run folder',
                           metadata={"tags": ["parameters"]})
    nb = new_notebook(cells=[params] + [new_code_cell(c) for c in cells],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = engagement.path / "notebooks" / f"{phase_folder}.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, str(path))
    return path
