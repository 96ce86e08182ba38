"""The training notebook run through the real runner on the tiny model: outputs, results and findings."""
from __future__ import annotations

import pytest

from ftkit.fsutil import read_json


def test_training_phase_runs_lora_end_to_end(tiny_chain):
    engagement = tiny_chain.through("training")
    run_dir = engagement.latest_run_dir("training")
    results = read_json(run_dir / "results.json")
    head = results["headline"]
    assert head["method"] == "lora" and head["final_val_loss"] > 0 and head["train_minutes"] >= 0
    summary = read_json(run_dir / "training_summary.json")
    assert summary["steps"] == 6 and summary["real_token_fraction"] == 1.0
    assert summary["trainable_parameters"] < summary["total_parameters"]
    for name in ("adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/tokenizer.json",
                 "adapter/chat_template.jinja", "loss_history.json", "hyperparameters.json", "metrics.jsonl",
                 "figures/loss.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "checkpoints").exists()  # removed once the adapter is saved
    history = read_json(run_dir / "loss_history.json")
    assert [v["step"] for v in history["validation"]] == [0, 3, 6]
    codes = {f["code"] for f in results["findings"]}
    assert {"training.tiny_random_model", "training.labels", "training.packing", "training.fresh_start"} <= codes
    manifest = read_json(run_dir / "manifest.json")
    assert manifest["seeds"]["training"] == 42 and manifest["base_model"]["is_tiny_random"] is True


@pytest.mark.slow  # two training processes through the notebook (~1 min after the audit)
def test_training_phase_with_ddp_and_tensorboard_through_the_notebook(audited, set_training):
    """engagement.yaml's scale-out and tracking settings, as a consultant sets them, through the real runner."""

    pytest.importorskip("tensorboard", reason='needs the tracking extra: pip install "ftkit[tracking]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ftkit.runner import run_phases

    set_training(audited, distributed="ddp", num_processes=2, report_to="tensorboard", max_steps=2, eval_steps=2)
    [outcome] = run_phases(audited, ["training"], progress=False)
    assert outcome.succeeded, outcome.error
    run_dir = outcome.run_dir
    summary = read_json(run_dir / "training_summary.json")
    assert summary["distributed"] == "ddp" and summary["processes"] == 2
    assert summary["tracking"] == f"tensorboard: {run_dir / 'logs'} (run {audited.slug}-{run_dir.name})"
    config = (run_dir / "accelerate_config.yaml").read_text()
    assert "distributed_type: MULTI_GPU" in config and "num_processes: 2" in config
    assert EventAccumulator(str(run_dir / "logs")).Reload().Scalars("eval/loss")[-1].step == 2
    codes = {f["code"] for f in read_json(run_dir / "results.json")["findings"]}
    assert {"training.distributed", "training.tracking"} <= codes
    manifest = read_json(run_dir / "manifest.json")  # the generated config and the event files are evidence
    recorded = " ".join(manifest.get("outputs", {}) or [])
    assert "accelerate_config.yaml" in recorded and "logs/" in recorded
