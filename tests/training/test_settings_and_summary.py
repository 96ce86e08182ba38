"""Resolved settings, the step plan, the resume fingerprint, and the numbers the findings are computed from."""
from __future__ import annotations

import pytest

from ftkit.config import TrainingSettings, parse_config
from ftkit.errors import ConfigError
from ftkit.training import summary
from ftkit.training.settings import fingerprint, plan_steps, resolve_settings


def test_method_defaults_and_sequence_length_from_the_audit():
    lora = resolve_settings(TrainingSettings(), audit_max_seq_length=512)
    full = resolve_settings(TrainingSettings(method="full", max_seq_length=300), audit_max_seq_length=512)
    assert (lora.learning_rate, lora.max_seq_length) == (2e-4, 512) and "data audit" in lora.sources["max_seq_length"]
    assert (full.learning_rate, full.max_seq_length) == (1e-5, 300) and "max_seq_length" not in full.sources
    assert resolve_settings(TrainingSettings(), 0, 768).max_seq_length == 768
    assert resolve_settings(TrainingSettings(learning_rate=5e-4)).learning_rate == 5e-4


def test_plan_counts_steps_per_epoch_across_processes_and_accumulation():
    s = resolve_settings(TrainingSettings(batch_size=4, gradient_accumulation_steps=2, num_processes=2, epochs=1.5,
                                            distributed="ddp"))
    plan = plan_steps(s, n_train_sequences=100)
    assert (plan.sequences_per_step, plan.steps_per_epoch, plan.total_steps) == (16, 7, 11)
    assert plan.eval_steps == 1 and plan.warmup_steps == 1
    assert plan_steps(s.replace(max_steps=3, eval_steps=10), 100).eval_steps == 3


def test_fingerprint_changes_with_what_is_learned_only():
    s = resolve_settings(TrainingSettings(), 256)
    base = fingerprint(s, {"train.jsonl": "a"}, "m", "t")
    assert base == fingerprint(s.replace(report_to="tensorboard", eval_max_examples=9), {"train.jsonl": "a"}, "m", "t")
    assert base != fingerprint(s.replace(learning_rate=1e-3), {"train.jsonl": "a"}, "m", "t")
    assert base != fingerprint(s, {"train.jsonl": "b"}, "m", "t")
    assert base != fingerprint(s, {"train.jsonl": "a"}, "m2", "t")
    assert base != fingerprint(s, {"train.jsonl": "a"}, "m", "t2")


def test_bad_training_values_are_all_reported_with_field_and_value():
    with pytest.raises(ConfigError) as info:
        parse_config({"training": {"batch_size": 0, "lora_dropout": 1.5}})
    text = str(info.value)
    assert "training: batch_size must be 1 or more, got 0; lora_dropout must be between 0 and 1, got 1.5" in text
    with pytest.raises(ConfigError, match="training.report_to: 'neptune' is not one of none, tensorboard"):
        parse_config({"training": {"report_to": "neptune"}})


def _history(val, train):
    return summary.loss_history([{"step": s, "eval_loss": v} for s, v in val] + [{"step": s, "loss": v} for s, v in train])


def test_overfitting_is_flagged_only_when_validation_rises_while_training_falls():
    train = [(s, 2.0 - 0.1 * s) for s in range(1, 13)]
    rising = _history([(0, 2.0), (4, 1.4), (8, 1.5), (12, 1.7)], train)
    flag = summary.overfitting(rising)
    assert flag["flag"] and flag["best_step"] == 4 and flag["last_val_loss"] == 1.7
    assert not summary.overfitting(_history([(0, 2.0), (4, 1.4), (8, 1.3), (12, 1.2)], train))["flag"]
    flat_train = [(s, 1.5) for s in range(1, 13)]
    assert not summary.overfitting(_history([(0, 2.0), (4, 1.4), (12, 1.7)], flat_train))["flag"]


def test_loss_findings_are_computed_from_the_numbers():
    train = [(s, 2.0 - 0.1 * s) for s in range(1, 13)]
    hist = _history([(0, 2.0), (4, 1.4), (8, 1.5), (12, 1.7)], train)
    s = {"initial_val_loss": 2.0, "best_val_loss": 1.4, "best_step": 4, "stopped_early": True, "steps": 12,
         "planned_steps": 20, "epochs": 3.0}
    found = {f[1]: f for f in summary.loss_findings(s, summary.overfitting(hist))}
    assert "fell from 2.000 before training to 1.400 at step 4 (30.0 % lower)" in found["training.val_loss"][2]
    assert "training.max_steps: 4" in found["training.overfitting"][3]
    assert "step 12 of 20" in found["training.early_stopping"][2]
    flat = dict(s, best_val_loss=1.99, stopped_early=False)
    assert "training.val_loss_flat" in {f[1] for f in summary.loss_findings(flat, {"flag": False})}


def test_loss_figure_marks_the_best_step_and_the_resume_point():
    hist = _history([(0, 2.0), (4, 1.4)], [(s, 2 - 0.1 * s) for s in range(1, 5)])
    hist["resumed_from"] = {"run_id": "r1", "step": 2}
    fig = summary.loss_figure(hist)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "best (step 4)" in labels and "resumed (step 2)" in labels


def test_a_tracker_that_is_not_installed_is_named_with_its_install_command():
    import importlib.util

    from ftkit.errors import MissingDependency
    from ftkit.training.trainer import check_tracker

    assert check_tracker("none") == []
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(MissingDependency, match="pip install tensorboard"):
            check_tracker("tensorboard")
    else:
        assert check_tracker("tensorboard") == ["tensorboard"]
