"""Fixtures of the family matrix: one tiny random model per chat-model family (built once per session)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from family_models import BASE_FAMILIES, CHAT_FAMILIES, family_model  # noqa: E402


@pytest.fixture(scope="session")
def family_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="session")
def family_dir(family_root):
    """family_dir(name) -> folder of that family's tiny random model."""
    return lambda name: family_model(name, family_root)


__all__ = ["BASE_FAMILIES", "CHAT_FAMILIES"]
