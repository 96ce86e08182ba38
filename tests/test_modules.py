"""Module hygiene for the whole package: every ftkit module's doctests run as tests (one runner, so a new
module's examples are checked without anyone remembering to list it), and the modules notebooks and the CLI
import before any model work pull in no heavy library."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import ftkit

MODULES = sorted(m.name for m in pkgutil.walk_packages(ftkit.__path__, "ftkit."))
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "matplotlib")
DEPLOYMENT = [m for m in MODULES if m.startswith("ftkit.deployment.")]


def test_every_package_is_found():
    assert {"ftkit.data.splits", "ftkit.training.settings", "ftkit.evaluation.verdict", "ftkit.deployment.cost",
            "ftkit.doc_index", "ftkit.report_summary"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("modules", [
    DEPLOYMENT,  # every deployment module: heavy work happens inside functions
    ["ftkit.evaluation.verdict", "ftkit.evaluation.ab_sheet", "ftkit.evaluation.paired"],
    ["ftkit.training.phase", "ftkit.training.launch", "ftkit.training.memory"],
], ids=["deployment", "evaluation", "training"])
def test_importing_stays_light(modules):
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
