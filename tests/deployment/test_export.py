"""Export: a real peft merge, saved and re-loaded, proven equivalent to base + adapter; broken exports caught."""
from __future__ import annotations

import json
import shutil

import pytest

from deploy_helpers import ticket_records
from ftkit.deployment.artefacts import export_of, find_trained_model
from ftkit.deployment.export import compare, export_model, reference_of, sample_prompts

RECORDS = ticket_records(6)


@pytest.fixture(scope="module")
def merged(tiny_export):
    return tiny_export


def test_merged_export_is_equivalent_and_complete(merged, tiny_trained):
    run_dir, result = merged
    assert result.kind == "merged" and result.passed
    merge, exported = result.comparisons
    assert merge.stage.startswith("merge") and merge.mean_kl < 1e-6 and merge.top1_agreement == 1.0
    assert exported.dtype == "bf16" and exported.template_identical and exported.n_positions > 50
    assert {"model.safetensors", "config.json", "tokenizer_config.json", "generation_config.json"} <= set(result.files)
    config = json.loads((result.folder / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    report = json.loads((run_dir / "export" / "equivalence.json").read_text())
    assert report["passed"] is True and len(report["comparisons"]) == 2
    # the trained adapter ships byte for byte next to the merged model (vLLM --enable-lora, rollback)
    shipped = run_dir / "export" / "adapter" / "adapter_model.safetensors"
    assert shipped.read_bytes() == (tiny_trained.weights_dir / "adapter_model.safetensors").read_bytes()
    assert export_of(run_dir).weights_dir == result.folder


def test_merge_really_changed_the_weights(merged, tiny_model_dir):
    """The adapter is not a no-op: the merged model differs from the base, so the check has teeth."""
    from ftkit.deployment.export import compare_logits, forward_logits
    from ftkit.models import load_model, load_tokenizer

    _, result = merged
    tok = load_tokenizer(str(tiny_model_dir))
    text = ["<|im_start|>user\nhello there<|im_end|>\n"]
    base = forward_logits(load_model(str(tiny_model_dir), device="cpu"), tok, text)
    out = forward_logits(load_model(str(result.folder), device="cpu"), tok, text)
    assert compare_logits(base, out)["mean_kl"] > 1e-4


def test_a_dropped_adapter_fails_the_check(tiny_trained, tiny_model_dir):
    """The base model alone (an export that lost its adapter) must not pass as the fine-tuned model."""
    from ftkit.deployment.artefacts import load_trained
    from ftkit.models import load_model, load_tokenizer

    model, tok = load_trained(tiny_trained)
    ref = reference_of(model, tok, sample_prompts(RECORDS, "", tok, 3), 4)
    result = compare("base only", "fp32", ref, load_model(str(tiny_model_dir), device="cpu"),
                     load_tokenizer(str(tiny_model_dir)), 4, with_generation=False)
    assert not result.passed and result.mean_kl > result.kl_tolerance


def test_a_different_chat_template_fails_the_check(tiny_trained):
    from ftkit.deployment.artefacts import load_trained

    model, tok = load_trained(tiny_trained)
    ref = reference_of(model, tok, sample_prompts(RECORDS, "", tok, 2), 4)
    tok.chat_template = tok.chat_template.replace("'\n' + message['content']", "' ' + message['content']")  # template drift: newline after the role dropped
    result = compare("drifted template", "fp32", ref, model, tok, 4, with_generation=False)
    assert tok.chat_template != ref.chat_template
    assert not result.template_identical and not result.passed


def test_adapter_only_handover(tiny_trained, tmp_path):
    result = export_model(tiny_trained, tmp_path, "bf16", RECORDS, "", n_prompts=2, max_new_tokens=4, merge=False)
    assert result.kind == "adapter" and result.passed
    assert (tmp_path / "export" / "adapter" / "adapter_config.json").is_file()
    assert export_of(tmp_path) is None  # nothing merged: `ftkit serve` falls back to base + adapter


def test_missing_training_output_is_a_clear_error(tmp_path):
    from ftkit.errors import FtkitError

    with pytest.raises(FtkitError, match="adapter_config.json"):
        find_trained_model(tmp_path, "tiny-random")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(FtkitError, match="only loads safetensors"):
        find_trained_model(tmp_path, "tiny-random")


def test_pickles_next_to_the_adapter_are_not_shipped(tiny_trained, tmp_path):
    """Trainer leaves training_args.bin (a pickle) in the adapter folder; the handover copy drops it."""
    from ftkit.deployment.artefacts import TrainedModel
    from ftkit.deployment.export import ship_adapter

    source = tmp_path / "adapter"
    shutil.copytree(tiny_trained.weights_dir, source)
    (source / "training_args.bin").write_bytes(b"pickle")
    shipped = ship_adapter(TrainedModel("adapter", source, tiny_trained.base), None, tmp_path / "shipped")
    names = {p.name for p in shipped.iterdir()}
    assert "training_args.bin" not in names and "adapter_model.safetensors" in names


def test_a_full_fine_tune_is_re_saved_and_checked(tiny_model_dir, tmp_path):
    """training wrote model/ (full fine-tuning): no merge, one check of the re-saved bf16 copy."""
    shutil.copytree(tiny_model_dir, tmp_path / "training" / "model")
    trained = find_trained_model(tmp_path / "training", "ignored-for-full")
    assert trained.kind == "full" and trained.tokenizer_dir == tmp_path / "training" / "model"
    result = export_model(trained, tmp_path / "deploy", "bf16", RECORDS, "", n_prompts=2, max_new_tokens=4)
    assert result.kind == "full" and result.passed and [c.dtype for c in result.comparisons] == ["bf16"]
