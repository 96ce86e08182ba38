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


LLAMA_8B = ModelShape(4096, 32, 32, 8, 128, 14336, 128256, False)


def test_sharding_divides_the_states_it_shards_and_nothing_else():
    from ftkit.training.memory import shard_estimate

    one = estimate_memory(LLAMA_8B, "full", 2 * 2048, None, 2, True, device="cuda")
    zero2 = shard_estimate(one, "zero2", 8, LLAMA_8B, 2)
    full = shard_estimate(one, "full", 8, LLAMA_8B, 2)
    assert shard_estimate(one, "none", 8, LLAMA_8B, 2).total_gb == pytest.approx(one.total_gb)  # DDP: full copies
    assert zero2.weights_gb == one.weights_gb and zero2.optimizer_gb == pytest.approx(one.optimizer_gb / 8)
    assert zero2.gradients_gb == pytest.approx(one.gradients_gb / 8)
    layer_gb = (LLAMA_8B.linear_params / 32 + 2 * 4096) * 2 / 1024 ** 3  # one decoder layer in bf16, ~0.41 GB
    assert full.weights_gb == pytest.approx(one.weights_gb / 8 + 2 * layer_gb)  # shard + gathered working set
    assert full.activations_gb == one.activations_gb  # each process trains its own micro-batch
    assert full.total_gb < zero2.total_gb < one.total_gb
    assert (full.sharding, full.world_size) == ("full", 8)


def test_refusal_on_both_sides_of_sharding():
    """Full fine-tuning of an 8B model on 8 x 80 GB: DDP does not fit (a full copy of everything per GPU), FSDP does,
    and the refusal names FSDP as the setting that fits."""
    from ftkit.training.memory import shard_estimate

    settings = resolve_settings(TrainingSettings(method="full", batch_size=2, max_seq_length=2048, distributed="ddp",
                                                 num_processes=8, gradient_checkpointing=True))

    def est(s):
        one = estimate_memory(LLAMA_8B, s.method, s.batch_size * s.max_seq_length, None, 2, s.gradient_checkpointing,
                              s.lora_r, s.target_modules, "cuda")
        sharding = {"ddp": "none", "fsdp": "full", "deepspeed": "zero2" if s.zero_stage == 2 else "full"}
        return shard_estimate(one, sharding[s.distributed], s.world_size, LLAMA_8B, 2)

    fits = lambda s: est(s).total_gb <= 80  # noqa: E731
    assert not fits(settings) and est(settings).total_gb > 110  # 15 GB weights + 15 gradients + 60 optimizer + ...
    assert fits(settings.replace(distributed="fsdp"))
    text, fitted = suggest_setting(fits, settings)
    assert fitted.distributed == "fsdp" and text.startswith("training.distributed: fsdp")
    with pytest.raises(PhaseFailed) as info:
        check_fits(est(settings), 80.0, "an 80 GB GPU", text)
    assert "Set training.distributed: fsdp" in str(info.value)
    check_fits(est(fitted), 80.0, "an 80 GB GPU", None)  # fits: no exception
    fsdp_text = str(pytest.raises(PhaseFailed, check_fits, est(fitted), 20.0, "a 20 GB GPU", None).value)
    assert "weights, gradients and optimizer states sharded over 8 processes" in fsdp_text
