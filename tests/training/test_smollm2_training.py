"""The real SmolLM2-135M-Instruct learns the demo task with LoRA (slow: ~2 minutes of CPU training)."""
from __future__ import annotations

import pytest

from ftkit.config import TrainingSettings
from ftkit.training.packing import build_sequences
from ftkit.training.settings import plan_steps, resolve_settings
from ftkit.training.trainer import TrainingJob, run_training

pytestmark = pytest.mark.slow


def test_smollm2_lora_validation_loss_falls_clearly(tickets, tmp_path):
    from ftkit.chat_format import template_info
    from ftkit.models import load_tokenizer, resolve_model
    from ftkit.training.dataset import tokenize_split

    source = resolve_model("smollm2-135m-instruct")
    tokenizer = load_tokenizer(source, padding_side="right")
    examples = tokenize_split(tokenizer, tickets, 256).examples
    train, evals = build_sequences(examples[:64], 256, True, 0), build_sequences(examples[64:80], 256, True, 0)
    # the demo's settings (ftkit/demo_data.py), fewer steps
    settings = resolve_settings(TrainingSettings(max_steps=10, batch_size=2, learning_rate=1e-3, lora_dropout=0.0,
                                                 eval_steps=10, early_stopping_patience=0), 256)
    job = TrainingJob(source.path, settings.to_dict(), plan_steps(settings, len(train)).to_dict(), str(tmp_path),
                      "slow", template_info(tokenizer).end_of_turn_id, progress=False)
    outcome = run_training(job, train, evals)
    val = [e["eval_loss"] for e in outcome["log_history"] if "eval_loss" in e]
    assert val[-1] < 0.5 * val[0]  # ~1.6 -> ~0.3 after 10 steps of ~480 tokens
    assert outcome["tokens"]["real"] == outcome["tokens"]["processed"]
