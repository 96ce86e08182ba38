"""Where ftkit's notebooks, templates and sample data are.

In a source checkout (editable install) they are the top-level ``notebooks/`` and ``templates/``
folders; a wheel carries copies under ``ftkit/_shipped/`` (see pyproject.toml). Sample data ships inside
the package (``ftkit/sample_data/``) either way.
"""
from __future__ import annotations

from pathlib import Path

from ftkit.errors import FtkitError

_PACKAGE_DIR = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_shipped" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FtkitError(f"ftkit's '{name}' folder is missing from this installation (looked in "
                     f"{_PACKAGE_DIR / '_shipped'} and {_PACKAGE_DIR.parent}); reinstall ftkit with pip.")


def notebooks_dir() -> Path:
    return _locate("notebooks")


def templates_dir() -> Path:
    return _locate("templates")


def engagement_or_shipped(engagement_dir, file_name: str) -> Path:
    """The engagement's own copy of a shipped table (``file_name`` in the engagement folder) when the consultant
    made one, else the one in templates/ (the price tables)."""
    if engagement_dir is not None and (Path(engagement_dir) / file_name).is_file():
        return Path(engagement_dir) / file_name
    return templates_dir() / file_name


def sample_data_dir() -> Path:
    return _PACKAGE_DIR / "sample_data"
