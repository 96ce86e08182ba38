"""Fixtures for the data-audit tests: hand-made files written into tmp_path, and the tiny model's tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl(records, name="data.jsonl", raw_lines=None) -> Path (records as JSON lines, or raw text lines)."""
    def write(records=(), name: str = "data.jsonl", raw_lines: list[str] | None = None) -> Path:
        path = tmp_path / name
        lines = raw_lines if raw_lines is not None else [json.dumps(r) for r in records]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path
    return write


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from ftkit.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))
