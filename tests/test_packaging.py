"""A non-editable install (a wheel) carries the notebooks, templates and sample data, and finds them."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(out), "-q"],
                   check=True, capture_output=True, timeout=300)
    return next(out.glob("ftkit-*.whl"))


def test_wheel_ships_notebooks_templates_and_sample_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for notebook in (REPO / "notebooks").glob("*.ipynb"):
        assert f"ftkit/_shipped/notebooks/{notebook.name}" in names
    assert "ftkit/_shipped/templates/engagement.yaml" in names
    assert "ftkit/_shipped/templates/report/ftkit_run/index.html.j2" in names
    assert "ftkit/sample_data/support_tickets.jsonl" in names
    assert not any(name.startswith("engagements/") or "/engagements/" in name for name in names)


def test_installed_wheel_finds_its_resources(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import ftkit.resources as r; "
            "print(r.notebooks_dir()); print(r.templates_dir()); print(r.sample_data_dir())")
    out = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout.split()
    assert all(str(site) in line for line in out)
    assert (Path(out[0]) / "01_suitability.ipynb").is_file()
