"""`ftkit env --from-run` reinstalls a recorded environment into a fresh venv whose `ftkit reproduce --strict` finds
no environment difference. Slow: it installs every distribution of this environment (about 240; 12 minutes on the
2-core development machine, less with a warm pip cache)."""
from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from ftkit.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_recreated_environment_reperforms_strictly(tiny_chain, tmp_path, capsys):
    tiny_chain.through("suitability")
    engagement = tiny_chain.copy(tmp_path)
    run_id = engagement.latest_run_id("suitability")
    requirements = tmp_path / "requirements.txt"
    assert main(["env", "--from-run", str(engagement.runs_dir("suitability") / run_id), "-o", str(requirements)]) == 0
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for args in (["-r", str(requirements)], ["-e", str(REPO)]):
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *args], env=env,
                              capture_output=True, text=True, timeout=3600)
        assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([str(python), "-m", "ftkit", "reproduce", engagement.slug, run_id, "--root",
                           str(engagement.root), "--strict"], env=env, capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ftkit reproduce: reproduced" in done.stdout
    differences = [line for line in done.stdout.splitlines() if line.startswith("environment:")]
    assert all("set to the recorded value" in line for line in differences), differences
