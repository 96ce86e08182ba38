"""The training notebook run through the real runner on the tiny model: outputs, results and findings."""
from __future__ import annotations

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
