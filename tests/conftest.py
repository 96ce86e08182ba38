"""Shared fixtures: real engagements in temporary folders, the tiny random-init test model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ftkit.resources import sample_data_dir

# Kernels started by papermill inherit this: keep their thread pools small on 2-core CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-init Llama with a real tokenizer and ChatML template (built once per test session)."""
    from ftkit.models.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.mktemp("ftkit-cache"))


def sample_records(n: int | None = None) -> list[dict]:
    lines = (sample_data_dir() / "support_tickets.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


@pytest.fixture
def engagements_root(tmp_path) -> Path:
    return tmp_path / "engagements"


@pytest.fixture
def make_engagement(tmp_path, engagements_root):
    """make_engagement(client="acme", records=None, settings=None, base_model=None) -> Engagement.

    Creates a real engagement with `ftkit new` semantics from (a slice of) the shipped demo data.
    """
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement

    def make(client: str = "acme", records: list[dict] | None = None, settings: dict | None = None,
             base_model: str | None = None, n: int | None = None):
        data = tmp_path / f"{client}-tickets.jsonl"
        rows = records if records is not None else sample_records(n)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        merged = {**DEMO_SETTINGS, **(settings or {})}
        return create_engagement(client, [data], engagements_root, base_model=base_model, settings=merged)

    return make


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
