"""Every manifest records the complete environment, and every run folder has a hashed environment.txt."""
from __future__ import annotations

import importlib.metadata as metadata
import json
import re

import pytest

from engagement_helpers import fork_notebook
from ftkit import environment
from ftkit.manifest import MANIFEST_FILE
from ftkit.runner import run_phases
from ftkit.verify import verify_engagement

QUICK = ("from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
         "import torch\nrun.finish(headline={'ok': 1})")


@pytest.fixture
def quick_run(make_engagement, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_value_123")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    engagement = make_engagement()
    fork_notebook(engagement, "01_suitability", [QUICK])
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded, outcome.error
    return engagement, outcome.run_dir


def test_manifest_has_the_complete_environment(quick_run):
    _, run_dir = quick_run
    text = (run_dir / MANIFEST_FILE).read_text()
    env = json.loads(text)["environment"]
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in metadata.distributions()}
    assert set(env["distributions"]) == installed  # every distribution, not a hand-picked list
    assert env["distributions"]["papermill"] == metadata.version("papermill")
    assert env["python"]["version"] and env["python"]["build"] and env["python"]["compiler"]
    assert env["platform"]["machine"] and isinstance(env["cpu"]["numeric_flags"], list)
    assert env["torch_build"]["version"] == metadata.version("torch")
    assert env["variables"]["OMP_NUM_THREADS"] == "1" and env["variables"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert env["variables"]["HF_TOKEN"] == environment.NOT_RECORDED
    assert "hf_not_a_real_token_value_123" not in text
    runtime = env["torch_runtime"]  # collected inside the kernel, which imported torch
    assert runtime["num_threads"] == 1 and runtime["deterministic_algorithms"] in (True, False)


def test_environment_txt_pins_every_distribution_and_is_hashed(quick_run):
    engagement, run_dir = quick_run
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text())
    pinned = environment.parse_requirements((run_dir / environment.ENVIRONMENT_FILE).read_text())
    assert pinned == {k: v for k, v in manifest["environment"]["distributions"].items() if k != "ftkit"}
    assert environment.ENVIRONMENT_FILE in manifest["outputs"]
    (run_dir / environment.ENVIRONMENT_FILE).write_text("torch==2.4.0\n")
    problems, _ = verify_engagement(engagement)
    assert any("environment.txt" in p and "changed" in p for p in problems)


def test_secret_looking_variables_are_listed_without_values():
    found = environment.result_variables({"HF_TOKEN": "x", "OMP_NUM_THREADS": "4", "FTKIT_API_KEY": "y",
                                          "HOME": "/root", "TORCH_HOME": "/cache"})
    assert found == {"FTKIT_API_KEY": environment.NOT_RECORDED, "HF_TOKEN": environment.NOT_RECORDED,
                     "OMP_NUM_THREADS": "4", "TORCH_HOME": "/cache"}


def test_compare_names_every_difference():
    base = environment.collect()
    changed = json.loads(json.dumps(base))
    changed["distributions"]["numpy"] = "0.0.1"
    del changed["distributions"]["papermill"]
    changed["distributions"]["made-up-pkg"] = "1.0"
    changed["variables"]["OMP_NUM_THREADS"] = "8"
    changed["python"]["version"] = "3.99.0"
    diffs = environment.compare(base, changed)
    assert environment.compare(base, base) == []
    assert any(d.startswith("package numpy:") and "0.0.1" in d for d in diffs)
    assert any("papermill" in d and "is not now" in d for d in diffs)
    assert any("made-up-pkg" in d for d in diffs)
    assert any("OMP_NUM_THREADS" in d for d in diffs) and any("python version" in d for d in diffs)


def test_collecting_the_environment_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, ftkit.environment as e, ftkit.manifest as m; e.collect(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
