"""baseline.backend: vllm without vLLM: the one-line refusals (config pre-flight and the CLI), and the request
building and post-processing, checked against transformers' own generation on the tiny model."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from ftkit.errors import FtkitError, MissingDependency
from ftkit.generation import generate_local, generate_with, stop_token_ids
from ftkit.generation import vllm_backend as vb
from ftkit.prompting import build_prompts, make_spec

QUESTIONS = ["Where is my order NW-123456?", "Refund please.", "Is there a dark mode?", "hi"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ftkit.models import load_model, load_tokenizer

    return load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))


def _prompts(tokenizer):
    records = [{"id": f"q{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]}
               for i, q in enumerate(QUESTIONS)]
    return build_prompts(records, make_spec([], 0, "You triage tickets."), tokenizer)


def test_refusal_reasons_are_one_line():
    assert "pip install \"ftkit[vllm]\"" in vb.unavailable_reason(installed=False, cuda=True)
    assert vb.unavailable_reason(installed=True, cuda=False) == (
        "baseline.backend: vllm needs a CUDA GPU and this machine has none; use baseline.backend: local here.")
    assert vb.unavailable_reason(installed=True, cuda=True) == ""
    for reason in (vb.unavailable_reason(installed=False), vb.unavailable_reason(installed=True, cuda=False)):
        assert "\n" not in reason and reason.startswith("baseline.backend: vllm needs")


@pytest.mark.skipif(vb.unavailable_reason() == "", reason="vLLM can run on this machine")
def test_generation_refuses_before_loading_anything():
    from ftkit.config import parse_config
    from ftkit.generation import generate_for_config

    config = parse_config({"baseline": {"backend": "vllm"}})
    with pytest.raises((MissingDependency, FtkitError), match="vllm"):
        generate_for_config(config, [], make_spec([], 0, ""), [])


@pytest.mark.skipif(vb.unavailable_reason() == "", reason="vLLM can run on this machine")
def test_ftkit_run_refuses_vllm_before_any_phase_starts(make_engagement):
    from ftkit.hardware_checks import hardware_problems
    from ftkit.runner import run_phases

    engagement = make_engagement(n=30)
    data = yaml.safe_load(engagement.config_path.read_text())
    data["baseline"]["backend"] = "vllm"
    data.setdefault("training", {})["distributed"] = "fsdp"
    data["training"]["num_processes"] = 2
    engagement.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(FtkitError) as info:
        run_phases(engagement, ["suitability", "data_audit", "baseline", "training"], progress=False)
    message = str(info.value)
    assert message.startswith("This machine cannot run these settings:")
    assert "baseline.backend: vllm needs" in message and "training.distributed: fsdp needs GPUs" in message
    assert not (engagement.path / "phases").exists() or not any((engagement.path / "phases").rglob("status.json"))
    # only what the phases about to run use is checked
    config = __import__("ftkit.config", fromlist=["load_config"]).load_config(engagement.config_path)
    assert hardware_problems(config, ["suitability", "data_audit"], engagement, gpus=0) == []
    assert len(hardware_problems(config, ["baseline"], engagement, gpus=0)) == 1


@pytest.mark.skipif(vb.unavailable_reason() == "", reason="vLLM can run on this machine")
def test_cli_says_why_in_one_paragraph(tmp_path):
    from ftkit.resources import sample_data_dir

    root = tmp_path / "eng"
    cmd = [sys.executable, "-m", "ftkit.cli"]
    subprocess.run(cmd + ["new", "acme", "--data", str(sample_data_dir() / "support_tickets.jsonl"), "--root",
                          str(root)], check=True, capture_output=True)
    path = root / "acme" / "engagement.yaml"
    path.write_text(path.read_text().replace("backend: local", "backend: vllm", 1))
    result = subprocess.run(cmd + ["run", "acme", "--phase", "baseline", "--root", str(root)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "baseline.backend: vllm needs" in result.stderr
    assert "Traceback" not in result.stderr


def test_requests_carry_the_same_token_ids_and_greedy_settings(tiny):
    _, tokenizer = tiny
    items = _prompts(tokenizer)
    requests, encoded = vb.token_prompts(items, tokenizer)
    assert [r["prompt_token_ids"] for r in requests] == encoded
    # the ids generate_local feeds: the rendered text, no special tokens added on top of the template's
    assert encoded == [tokenizer(i.text, add_special_tokens=False)["input_ids"] for i in items]
    assert encoded[0][0] != tokenizer.bos_token_id or items[0].text.startswith(tokenizer.bos_token or "\0")
    kwargs = vb.sampling_kwargs(24, stop_token_ids(tokenizer))
    assert kwargs["temperature"] == 0.0 and kwargs["repetition_penalty"] == 1.0 and kwargs["top_p"] == 1.0
    assert kwargs["max_tokens"] == 24 and kwargs["stop_token_ids"] == stop_token_ids(tokenizer)


def test_engine_and_lora_arguments(tiny_model_dir, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for r, rank in ((16, 16), (24, 32), (8, 8)):
        (adapter / "adapter_config.json").write_text(json.dumps({"r": r}))
        assert vb.lora_rank_for(adapter) == rank
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(FtkitError, match="LoRA rank 1024"):
        vb.lora_rank_for(adapter)
    kwargs = vb.engine_kwargs(str(tiny_model_dir), lora_rank=16, gpu_memory_utilization=0.5)
    assert kwargs["enable_lora"] and kwargs["max_lora_rank"] == 16 and kwargs["generation_config"] == "vllm"
    assert kwargs["model"] == kwargs["tokenizer"] == str(tiny_model_dir) and kwargs["gpu_memory_utilization"] == 0.5
    assert "enable_lora" not in vb.engine_kwargs(str(tiny_model_dir))
    assert vb.lora_request_args(adapter) == ("ftkit-adapter", 1, str(adapter.resolve()))
    with pytest.raises(FtkitError, match="holds no LoRA adapter"):
        vb.lora_request_args(tmp_path)


def test_stop_ids_from_the_folder_equal_the_loaded_models(tiny, tiny_model_dir):
    model, tokenizer = tiny
    assert vb.stops_for(tiny_model_dir, tokenizer) == stop_token_ids(tokenizer, model)


def test_post_processing_equals_transformers(tiny):
    """Feed the token rows transformers generated through vLLM's post-processing: identical prediction rows."""
    import torch

    model, tokenizer = tiny
    items = _prompts(tokenizer)
    max_new = 10
    reference = generate_local(model, tokenizer, items, max_new, batch_size=1, progress=False, prefix_cache=False)
    stops = stop_token_ids(tokenizer, model)
    _, encoded = vb.token_prompts(items, tokenizer)
    rows = []
    for ids in encoded:  # what vLLM returns: the generated ids, ending at the stop id (no padding after it)
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id, top_p=None, top_k=None, temperature=None)
        rows.append(out[0, len(ids):].tolist())
    fast = vb.predictions_from_outputs(items, encoded, rows, tokenizer, stops, max_new, 0.5)
    assert [(p.id, p.output, p.n_input_tokens, p.n_output_tokens, p.hit_max_new_tokens) for p in fast] == \
        [(p.id, p.output, p.n_input_tokens, p.n_output_tokens, p.hit_max_new_tokens) for p in reference]
    assert vb.compare_answers(fast, reference) == {"checked": 4, "identical": 4, "differences": [], "explanation": ""}
    # a row vLLM finished on a stop id it did not return counts that stop token, as transformers' rows do
    [stopped] = vb.predictions_from_outputs(items[:1], encoded[:1], [[5, 6]], tokenizer, stops, max_new, 0.1,
                                            ["stop"])
    assert stopped.n_output_tokens == 3 and not stopped.hit_max_new_tokens
    [cut] = vb.predictions_from_outputs(items[:1], encoded[:1], [[5] * max_new], tokenizer, stops, max_new, 0.1,
                                        ["length"])
    assert cut.hit_max_new_tokens and cut.n_output_tokens == max_new


def test_evaluation_dispatch(tiny):
    model, tokenizer = tiny
    items = _prompts(tokenizer)[:2]
    assert [p.output for p in generate_with("local", model, tokenizer, items, 6, progress=False)] == \
        [p.output for p in generate_local(model, tokenizer, items, 6, progress=False)]

    class Engine:  # stands in for VLLMEngine: records what the evaluation asks for
        def generate(self, prompts, max_new_tokens, adapter=True):
            self.asked = (len(prompts), max_new_tokens, adapter)
            return []

    engine = Engine()
    generate_with("vllm", None, tokenizer, items, 6, engine=engine, adapter=False)
    assert engine.asked == (2, 6, False)
    with pytest.raises(ValueError, match="engine_for_finetuned"):
        generate_with("vllm", None, tokenizer, items, 6)


def test_a_vllm_baseline_is_reproduced_from_the_rendered_prompts(tiny):
    """vLLM baselines hash the rendered text (as local ones do), so the evaluation's prompt check holds for them."""
    from ftkit.errors import PhaseFailed
    from ftkit.evaluation.baseline_record import BaselineRecord, prompts_for
    from ftkit.generation import RENDERED_BACKENDS, Prediction

    _, tokenizer = tiny
    items = _prompts(tokenizer)  # what BACKENDS["vllm"] builds and records
    records = [{"id": f"q{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]}
               for i, q in enumerate(QUESTIONS)]
    preds = [Prediction(i.id, i.sha256, "x", "ok", 1, 1, 0.1, False) for i in items]
    spec = make_spec([], 0, "You triage tickets.")
    assert "vllm" in RENDERED_BACKENDS
    setup = BaselineRecord("r1", {}, {}, preds, records, spec, 8, 4, "vllm")
    assert [p.sha256 for p in prompts_for(setup, tokenizer)] == [p.prompt_sha256 for p in preds]
    with pytest.raises(PhaseFailed, match="prompts differ"):
        prompts_for(BaselineRecord("r1", {}, {}, preds, records, spec, 8, 4, "openai"), tokenizer)


class _Engine:
    """Stands in for VLLMEngine (vLLM needs a CUDA GPU): records each call, answers every prompt with 'paris'."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, max_new_tokens, adapter=True):
        from ftkit.generation import Prediction

        self.calls.append((len(prompts), max_new_tokens, adapter))
        return [Prediction(p.id, p.sha256, "paris", p.reference, 1, 1, 0.1, False) for p in prompts]


def test_evaluation_generates_on_the_baselines_backend(tiny, tmp_path):
    """A vLLM baseline: the evaluation's answers and both sides of the forgetting probe come from the vLLM engine
    (adapter on, then off); a local baseline never asks for an engine."""
    from types import SimpleNamespace

    from ftkit.config import parse_config
    from ftkit.evaluation import phase

    model, tokenizer = tiny
    engine = _Engine()
    ft = SimpleNamespace(model=model, tokenizer=tokenizer, kind="adapter")
    c = phase.Compared(SimpleNamespace(backend="vllm", max_new_tokens=7, batch_size=4), [], None, None, ft, engine)
    run = SimpleNamespace(artefact=lambda name: tmp_path / name, config=parse_config({}),
                          engagement=SimpleNamespace(path=tmp_path), write_json=lambda *a: None,
                          record_input=lambda *a: None)
    items = _prompts(tokenizer)
    section = phase.generate(run, c, items, progress=False)
    assert [p.output for p in section.value] == ["paris"] * len(items) and engine.calls == [(len(items), 7, True)]
    assert (tmp_path / "predictions.jsonl").is_file()
    probe = phase.forgetting_probe(run, c, progress=False)
    assert engine.calls[1][2] is False and engine.calls[2][2] is True  # before: base (no adapter); after: adapter
    assert probe.value["before"] == probe.value["after"]
    local = phase.Compared(SimpleNamespace(backend="local", max_new_tokens=4, batch_size=4), [], None, None, ft)
    assert phase.vllm_engine(run, local) is None
    assert [p.output for p in phase.generate(run, local, items[:2], progress=False).value] == \
        [p.output for p in generate_local(model, tokenizer, items[:2], 4, progress=False)]
