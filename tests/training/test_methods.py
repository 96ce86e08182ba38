"""LoRA, QLoRA (bitsandbytes 4-bit NF4, on the CPU) and full fine-tuning of the tiny model with the real Trainer."""
from __future__ import annotations

import pytest

from ftkit.config import TrainingSettings
from ftkit.fsutil import read_json
from ftkit.training.packing import build_sequences
from ftkit.training.settings import plan_steps, resolve_settings
from ftkit.training.trainer import TrainingJob, load_training_model, run_training


def _job(tiny_model_dir, tmp_path, eot_id, n_train, **overrides):
    settings = resolve_settings(TrainingSettings(**{"max_steps": 4, "batch_size": 2, "eval_steps": 2,
                                                    "early_stopping_patience": 0, **overrides}), 256)
    return TrainingJob(str(tiny_model_dir), settings.to_dict(), plan_steps(settings, n_train).to_dict(), str(tmp_path),
                       "test", eot_id, progress=False)


@pytest.mark.parametrize("method, packing", [("lora", True), ("qlora", True), ("full", False)])
def test_each_method_trains_validates_and_saves(method, packing, tiny_model_dir, tiny_examples, eot_id, tmp_path):
    train = build_sequences(tiny_examples[:48], 256, packing, 0)
    evals = build_sequences(tiny_examples[48:60], 256, packing, 0)
    job = _job(tiny_model_dir, tmp_path, eot_id, len(train), method=method, packing=packing)
    outcome = run_training(job, train, evals)
    assert outcome["global_step"] == 4 and outcome["best_val_loss"] > 0
    tokens = outcome["tokens"]
    assert tokens["labels"] > 0 and (tokens["real"] == tokens["processed"]) is packing
    out = tmp_path / ("model" if method == "full" else "adapter")
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()
    if method == "full":
        assert (out / "model.safetensors").is_file() and outcome["trainable_parameters"] == outcome["total_parameters"]
    else:
        config = read_json(out / "adapter_config.json")
        adapted = {name.split(".")[-1] for name in config["target_modules"]}  # peft may store full module paths
        assert config["r"] == 16 and adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"}
        assert 0 < outcome["trainable_parameters"] < outcome["total_parameters"]
    evals_logged = [e["step"] for e in outcome["log_history"] if "eval_loss" in e]
    assert evals_logged == [0, 2, 4]
    marker = read_json(tmp_path / "checkpoints" / "checkpoint-4" / "ftkit_checkpoint.json")
    assert marker == {"fingerprint": "test", "step": 4, "run_id": tmp_path.name}


def test_qlora_loads_the_base_model_in_4bit_nf4(tiny_model_dir, tmp_path, eot_id):
    import bitsandbytes as bnb

    model = load_training_model(_job(tiny_model_dir, tmp_path, eot_id, 10, method="qlora"), "cpu")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7  # every linear layer of both blocks; lm_head stays unquantised
    assert layers[0].weight.quant_state.quant_type == "nf4"


def test_target_modules_can_be_configured(tiny_model_dir, tiny_examples, eot_id, tmp_path):
    train = build_sequences(tiny_examples[:16], 256, True, 0)
    job = _job(tiny_model_dir, tmp_path, eot_id, len(train), target_modules=["q_proj", "v_proj"], max_steps=1)
    outcome = run_training(job, train, [])
    names = read_json(tmp_path / "adapter" / "adapter_config.json")["target_modules"]
    assert {name.split(".")[-1] for name in names} == {"q_proj", "v_proj"}
    assert outcome["best_val_loss"] is None  # no validation split: no evaluation, still a saved adapter


def test_early_stopping_ends_training_when_validation_loss_stops_improving(tiny_model_dir, tiny_examples, eot_id,
                                                                           tmp_path):
    from ftkit.training import summary

    train = build_sequences(tiny_examples[:2], 256, True, 0)  # two examples: memorised within a few steps
    evals = build_sequences(tiny_examples[40:50], 256, True, 0)
    job = _job(tiny_model_dir, tmp_path, eot_id, len(train), max_steps=12, eval_steps=1, learning_rate=0.05,
               early_stopping_patience=1, warmup_ratio=0.0)
    outcome = run_training(job, train, evals)
    assert outcome["stopped_early"] and outcome["global_step"] < 12
    history = summary.loss_history(outcome["log_history"])
    flag = summary.overfitting(history)
    assert flag["flag"] and outcome["best_val_loss"] == flag["best_val_loss"]
