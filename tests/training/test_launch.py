"""Scale-out: two training processes through `accelerate launch` on the CPU (DDP over gloo)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftkit.config import TrainingSettings
from ftkit.training.distributed import plan_from_settings
from ftkit.training.launch import launch
from ftkit.training.packing import build_sequences
from ftkit.training.settings import plan_steps, resolve_settings
from ftkit.training.trainer import TrainingJob


def test_two_processes_train_with_accelerate_launch_on_cpu(tiny_model_dir, tiny_examples, eot_id, tmp_path):
    settings = resolve_settings(TrainingSettings(max_steps=4, batch_size=2, eval_steps=2, num_processes=2,
                                                 distributed="ddp"), 256)
    train = build_sequences(tiny_examples[:48], 256, True, 0)
    evals = build_sequences(tiny_examples[48:60], 256, True, 0)
    plan = plan_steps(settings, len(train))
    assert plan.sequences_per_step == 4  # 2 sequences per process per step
    job = TrainingJob(str(tiny_model_dir), settings.to_dict(), plan.to_dict(), str(tmp_path), "fp", eot_id)
    lines = []
    outcome = launch(job, train, evals, plan_from_settings(settings), echo=lines.append)

    assert outcome["processes"] == 2 and outcome["global_step"] == 4
    # tokens are summed over both processes: each step trained 4 packed sequences
    per_sequence = sum(e.n_tokens for seq in train for e in seq) / len(train)
    assert outcome["tokens"]["real"] > 2 * 4 * per_sequence * 0.5
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    # progress was streamed back line by line, and only rank 0 wrote ftkit's metrics log
    assert any(line.startswith("step 4/4") and "validation loss" in line for line in lines)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == sorted(set(steps)) and steps[-1] == 4


@pytest.mark.slow  # ~1 min: four Python processes start torch on the test machine
def test_two_machines_each_started_from_its_node_script(tiny_model_dir, tiny_examples, eot_id, tmp_path):
    """A real two-node run on one host: machine 0 is launched by ftkit, machine 1 from its generated script."""
    import subprocess
    import threading
    import time

    from ftkit.training.launch import free_port

    settings = resolve_settings(TrainingSettings(max_steps=2, batch_size=2, eval_steps=2, distributed="ddp",
                                                 num_processes=1, num_machines=2, machine_rank=0,
                                                 main_process_ip="127.0.0.1", main_process_port=free_port()), 256)
    train = build_sequences(tiny_examples[:16], 256, True, 0)
    evals = build_sequences(tiny_examples[48:52], 256, True, 0)
    plan = plan_steps(settings, len(train))
    assert plan.sequences_per_step == 4  # 2 sequences on each of the 2 machines
    job = TrainingJob(str(tiny_model_dir), settings.to_dict(), plan.to_dict(), str(tmp_path), "fp", eot_id)
    other = {}

    def start_machine_1():  # what the consultant does on the second machine
        script = tmp_path / "launch" / "node_1.sh"
        for _ in range(600):
            if script.is_file():
                break
            time.sleep(0.1)
        other["run"] = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300)

    thread = threading.Thread(target=start_machine_1)
    thread.start()
    lines = []
    outcome = launch(job, train, evals, plan_from_settings(settings), echo=lines.append)
    thread.join(300)
    assert other["run"].returncode == 0, other["run"].stdout[-2000:] + other["run"].stderr[-2000:]
    assert outcome["processes"] == 2 and outcome["global_step"] == 2 and outcome["distributed_type"] == "MULTI_CPU"
    record = outcome["launch"]
    assert record["plan"]["num_machines"] == 2 and record["plan"]["world_size"] == 2
    assert [Path(p).name for p in record["node_scripts"]] == ["node_0.sh", "node_1.sh"]
    assert any("start on each other machine its script now" in line and "node_1.sh" in line for line in lines)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "launch" / "sequences.json").exists()  # the job's token data is not kept twice
