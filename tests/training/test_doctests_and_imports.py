"""The doctests of ftkit.training run as tests; importing the package does not pull in torch."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import ftkit.training

MODULES = sorted(m.name for m in pkgutil.iter_modules(ftkit.training.__path__, "ftkit.training."))


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    assert doctest.testmod(importlib.import_module(name)).failed == 0


def test_importing_the_training_modules_stays_light():
    code = ("import sys, ftkit.training.phase, ftkit.training.launch, ftkit.training.memory; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
