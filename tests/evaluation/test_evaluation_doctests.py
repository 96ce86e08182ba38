"""The doctests of ftkit.evaluation run as tests (pytest is not configured with --doctest-modules)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ftkit.evaluation

MODULES = sorted(m.name for m in pkgutil.iter_modules(ftkit.evaluation.__path__, "ftkit.evaluation."))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_importing_the_evaluation_package_stays_light():
    import subprocess
    import sys

    code = ("import sys, ftkit.evaluation.verdict, ftkit.evaluation.ab_sheet, ftkit.evaluation.paired; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
