"""House rules for the notebooks in git: no outputs, exactly one documented parameters cell."""
from __future__ import annotations

import json
import re

import pytest

from ftkit.phases import PHASES
from ftkit.resources import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))
PARAM_LINE = re.compile(r"^(\w+): (str|int|float|bool|list|dict) = .+  # .+$")


def test_notebook_names_match_the_phase_registry():
    known = {p.notebook for p in PHASES.values()}
    assert NOTEBOOKS and all(path.name in known for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_and_one_parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    assert not [c for c in cells if c.get("outputs")], "clear outputs before committing"
    assert not [c for c in cells if c.get("execution_count")], "clear execution counts"
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_typed_and_explained(path):
    cells = json.loads(path.read_text())["cells"]
    [params] = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    lines = [l for l in "".join(params["source"]).splitlines() if l.strip()]
    bad = [l for l in lines if not PARAM_LINE.match(l)]
    assert bad == [], "each line: name: type = default  # what it does"
    names = [PARAM_LINE.match(l).group(1) for l in lines]
    assert {"engagement_dir", "run_dir"} <= set(names)
