"""The doctests of ftkit.deployment run as tests, and importing its light modules pulls in no heavy library."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import ftkit.deployment

MODULES = sorted(m.name for m in pkgutil.iter_modules(ftkit.deployment.__path__, "ftkit.deployment."))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_importing_every_deployment_module_stays_light():
    code = ("import sys, importlib; [importlib.import_module(m) for m in %r]; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'matplotlib') if m in sys.modules))" % MODULES)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
