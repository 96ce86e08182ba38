"""Scale-out: two training processes through `accelerate launch` on the CPU (DDP over gloo)."""
from __future__ import annotations

import json

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
