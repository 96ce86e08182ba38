"""The memory estimate, and the refusal with a suggested setting when training will not fit."""
from __future__ import annotations

import pytest

from ftkit.config import TrainingSettings
from ftkit.errors import PhaseFailed
from ftkit.fsutil import read_json
from ftkit.runner import run_phases
from ftkit.training.memory import ModelShape, check_fits, estimate_memory, suggest_setting
from ftkit.training.settings import resolve_settings


def test_parameter_counts_match_the_real_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from ftkit.models import load_model
    from ftkit.models.describe import safetensors_parameter_count

    shape = ModelShape.from_folder(tiny_model_dir)
    assert shape.params == safetensors_parameter_count(tiny_model_dir)
    model = get_peft_model(load_model(str(tiny_model_dir), device="cpu"),
                           LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert shape.lora_params(8) == model.get_nb_trainable_parameters()[0]


def test_smollm2_shape_from_its_config():
    shape = ModelShape.from_config({"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3,
                                    "num_hidden_layers": 30, "intermediate_size": 1536, "vocab_size": 49152,
                                    "tie_word_embeddings": True})
    assert shape.params == 134_515_008  # SmolLM2-135M
    assert shape.lora_params(16) == 4_884_480  # what peft reports for r=16 on all linear layers


def test_methods_order_by_memory():
    shape = ModelShape(4096, 32, 32, 8, 128, 14336, 128256, False)  # Llama-3.1-8B
    est = {m: estimate_memory(shape, m, 8 * 2048, 8 * 2048, dtype_bytes=2, device="cuda")
           for m in ("full", "lora", "qlora")}
    assert est["qlora"].weights_gb < 0.4 * est["lora"].weights_gb
    assert est["full"].optimizer_gb > 50 * est["lora"].optimizer_gb
    assert est["qlora"].total_gb < est["lora"].total_gb < est["full"].total_gb
    # without the logits (fp32, 3 x tokens x vocabulary either way), checkpointing keeps ~1/10 of the activations
    plain = estimate_memory(shape, "lora", 8 * 2048, 0, 2, device="cuda")
    checkpointed = estimate_memory(shape, "lora", 8 * 2048, 0, 2, gradient_checkpointing=True, device="cuda")
    assert checkpointed.activations_gb < 0.1 * plain.activations_gb


def test_refusal_names_the_numbers_and_a_setting_that_fits():
    shape = ModelShape(4096, 32, 32, 8, 128, 14336, 128256, False)
    settings = resolve_settings(TrainingSettings(batch_size=16, max_seq_length=2048))

    def est(s):
        return estimate_memory(shape, s.method, s.batch_size * s.max_seq_length, None, 2, s.gradient_checkpointing,
                               s.lora_r, s.target_modules, "cuda")

    fits = lambda s: est(s).total_gb <= 24  # noqa: E731  a 24 GB GPU
    text, fitted = suggest_setting(fits, settings)
    assert fits(fitted) and not fits(settings)
    with pytest.raises(PhaseFailed) as info:
        check_fits(est(settings), 24.0, "a 24 GB GPU", text)
    message = str(info.value)
    assert "will not fit" in message and "only 24.00 GB are available (a 24 GB GPU)" in message
    assert f"Set {text} in engagement.yaml" in message


def test_training_phase_refuses_before_loading_the_model(audited, set_training):
    set_training(audited, memory_limit_gb=0.05)
    [outcome] = run_phases(audited, ["training"], progress=False)
    assert outcome.status == "failed"
    assert "Training will not fit in memory" in outcome.error and "memory_limit_gb" in outcome.error
    status = read_json(outcome.run_dir / "status.json")
    assert status["status"] == "failed" and audited.latest_run_id("training") is None
