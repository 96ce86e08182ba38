"""Training findings with a threshold, on both sides of it, and the typed TrainingResults (no model needed)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ftkit.training import phase, summary


def run_summary(frac):
    return {"steps": 6, "train_minutes": 0.5, "real_tokens": 950, "real_token_fraction": frac, "processed_tokens": 1000,
            "real_tokens_per_s": 120.0, "processes": 1, "device": "cpu", "peak_memory_gb": 1.0,
            "memory_estimate_gb": 1.2, "trainable_parameters": 10, "trainable_percent": 0.1, "total_parameters": 10000,
            "output_folder": "adapter", "output_size_mb": 1.0}


@pytest.mark.parametrize("frac,severity", [(summary.REAL_TOKEN_WARN, "info"), (summary.REAL_TOKEN_WARN - 0.01, "warning")])
def test_throughput_warns_below_the_real_token_share(frac, severity):
    f = summary.throughput_findings(run_summary(frac), {"mode": "packed"})[0]
    assert (f[0], f[1]) == (severity, "training.throughput") and bool(f[3]) == (severity == "warning")


def data(padding):
    split = SimpleNamespace(n_label_tokens=50, n_tokens=100, dropped_cut_answer=[], dropped_no_labels=[], truncated=[],
                            examples=[1, 2])
    packing = {"mode": "padded", "sequences": 10, "padding_fraction": padding, "real_token_fraction": 1 - padding}
    plan = SimpleNamespace(total_steps=6, sequences_per_step=4, steps_per_epoch=3, eval_steps=3)
    return SimpleNamespace(train=split, validation=split, train_sequences=[1] * 10, label_check={"examples": 10},
                           packing=packing, plan=plan)


@pytest.mark.parametrize("padding,severity", [(phase.PADDING_WARN, "info"), (phase.PADDING_WARN + 0.01, "warning")])
def test_packing_recommended_above_the_padding_share(padding, severity):
    s = SimpleNamespace(settings=SimpleNamespace(max_seq_length=256), eot_token="<|im_end|>")
    f = next(f for f in phase.data_findings(data(padding), s) if f[1] == "training.packing")
    assert f[0] == severity and (f[3] == "Set training.packing: true.") == (severity == "warning")


def test_training_results_headline_and_flags():
    r = phase.TrainingResults(
        summary={"final_val_loss": 1.2, "train_minutes": 0.5, "initial_val_loss": 2.0, "steps": 6}, overfitting={"flag": True},
        settings={"method": "lora"}, plan={}, packing={}, label_check={}, splits=[{"examples": 150}], memory=None,
        resumed_from={"step": 3}, fingerprint="f", base_model={"is_tiny_random": True}, files={})
    assert r.headline_row() == {"method": "lora", "final_val_loss": 1.2, "train_minutes": 0.5, "initial_val_loss": 2.0,
                                "steps": 6, "overfitting": True, "resumed_from_step": 3}
    assert r.overfitting_flag and r.n_train_examples == 150 and r.is_tiny_random
