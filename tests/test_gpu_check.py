"""benchmarks/gpu_check.py on a machine without CUDA: one JSON line saying so; --smoke runs its code paths on CPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _run(*args):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(not _no_cuda(), reason="this machine has a GPU: the check would really run")
def test_without_cuda_it_says_so_in_one_json_line_and_runs_nothing():
    out = _run()
    assert out["skipped"] is True and out["gpus"] == 0 and "no CUDA GPU" in out["reason"]
    assert out["parts"] == ["lora", "qlora", "fsdp", "vllm"] and "lora" not in out


@pytest.mark.slow  # ~1-2 min: trains the tiny model in-process and with 2 CPU processes
@pytest.mark.skipif(not _no_cuda(), reason="this machine has a GPU: run the real check instead")
def test_smoke_run_exercises_each_parts_code_on_cpu():
    out = _run("--smoke", "--part", "lora", "--part", "fsdp", "--part", "vllm")
    assert out["lora"]["steps"] >= 1 and out["lora"]["real_tokens_per_s"] > 0 and "error" not in out["lora"]
    assert out["fsdp"]["skipped"].startswith("needs 2 or more GPUs")
    assert out["fsdp"]["ddp_smoke"]["processes"] == 2 and out["fsdp"]["ddp_smoke"]["distributed_type"] == "MULTI_CPU"
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        assert "vllm package" in out["vllm"]["skipped"]
