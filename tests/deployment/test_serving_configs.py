"""Serving configs: every generator renders with the engagement's chat template and stop tokens; the Python
snippet runs for real against a merged export."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from ftkit.deployment.serving_configs import (CHAT_FAMILIES, GENERATORS, ServingContext, detect_family,
                                              generate_configs, write_configs)
from ftkit.errors import UsageError
from ftkit.models.tiny import CHATML_TEMPLATE


def context(**overrides) -> ServingContext:
    values = dict(client="acme", model_name="acme-ft", chat_template=CHATML_TEMPLATE, stop_strings=["<|im_end|>"],
                  system_prompt="Triage the ticket.", dtype="bf16", export_dtype="bf16", context_length=1024,
                  max_input_tokens=900, max_tokens=64, concurrency=8, n_gpus=1, gpu_label="L4",
                  merged_dir="export/merged", adapter_dir="export/adapter", base="HuggingFaceTB/SmolLM2-135M-Instruct",
                  base_revision="abc123", lora_rank=12)
    return ServingContext(**{**values, **overrides})


def by_key(configs) -> dict:
    return {c.key: c for c in configs}


def test_every_generator_renders_with_its_command():
    configs = by_key(generate_configs(context()))
    assert set(configs) == {"vllm", "vllm_lora", "ollama", "tgi", "python"}
    assert all(c.command and c.text.strip() for c in configs.values())


def test_vllm_merged_and_lora_variants():
    configs = by_key(generate_configs(context(), ["vllm"]))
    merged, lora = configs["vllm"].text, configs["vllm_lora"].text
    assert "vllm serve export/merged --served-model-name acme-ft" in merged and "--enable-lora" not in merged
    assert "--max-model-len 1024" in merged and "--max-num-seqs 8" in merged and "--dtype bfloat16" in merged
    assert "--chat-template serving/chat_template.jinja" in merged and "--host 127.0.0.1" in merged
    assert "vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --revision abc123" in lora
    assert "--lora-modules acme-ft=export/adapter --max-lora-rank 16" in lora  # rank 12 rounds up to vLLM's 16


def test_quantised_serving_adds_the_engine_flags():
    configs = by_key(generate_configs(context(dtype="int4")))
    assert "--quantization bitsandbytes" in configs["vllm"].text
    assert "--quantize bitsandbytes-nf4" in configs["tgi"].text
    assert "q4_K_M" in configs["ollama"].notes


def test_ollama_modelfile_carries_template_system_prompt_and_stops():
    text = by_key(generate_configs(context(), ["ollama"]))["ollama"].text
    assert "FROM ../export/merged" in text and "ADAPTER" not in text.replace("# ", "")
    assert 'TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}' in text
    assert 'SYSTEM """Triage the ticket."""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER num_ctx 1024" in text
    adapter_only = by_key(generate_configs(context(merged_dir=""), ["ollama"]))["ollama"].text
    assert "FROM HuggingFaceTB/SmolLM2-135M-Instruct" in adapter_only and "ADAPTER ../export/adapter" in adapter_only


def test_unknown_chat_template_asks_for_a_hand_written_template():
    configs = by_key(generate_configs(context(chat_template="{{ messages[0]['content'] }}"), ["ollama"]))
    assert "TEMPLATE" not in configs["ollama"].text.split("No Go template")[0].replace("# ", "x")
    assert "write the Modelfile's TEMPLATE by hand" in configs["ollama"].notes


@pytest.mark.parametrize("family", CHAT_FAMILIES, ids=lambda f: f.name)
def test_chat_families_are_recognised_by_their_markers(family):
    assert detect_family(f"{{{{ '{family.marker}' }}}}") is family


def test_tgi_needs_a_merged_model_and_unknown_generators_are_named():
    assert "tgi" not in by_key(generate_configs(context(merged_dir="")))
    with pytest.raises(UsageError, match=", ".join(GENERATORS)):
        generate_configs(context(), ["triton"])


def test_write_configs_writes_the_template_and_a_readme(tmp_path):
    ctx = context()
    written = write_configs(ctx, tmp_path, generate_configs(ctx))
    assert (tmp_path / "serving" / "chat_template.jinja").read_text() == CHATML_TEMPLATE
    readme = (tmp_path / "serving" / "README.md").read_text()
    assert "bash serving/vllm_merged.sh" in readme and "ollama create acme-ft" in readme
    assert set(written) >= {"serving/Modelfile", "serving/tgi.sh", "serving/inference.py", "serving/README.md"}


def test_the_python_snippet_answers_like_ftkit(tiny_export, tmp_path):
    """Render inference.py next to a merged export and run it in a fresh interpreter: it must give the same
    greedy answer as ftkit's own generation with the same template, system prompt and stop tokens."""
    from ftkit.generation import generate_local
    from ftkit.models import load_model, load_tokenizer
    from ftkit.prompting import PromptItem, render

    _, export = tiny_export
    shutil.copytree(export.folder, tmp_path / "export" / "merged")
    ctx = context(max_tokens=12)
    write_configs(ctx, tmp_path, generate_configs(ctx, ["python"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "serving/inference.py", "my parcel is late"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    tok = load_tokenizer(str(export.folder))
    messages = [{"role": "system", "content": "Triage the ticket."}, {"role": "user", "content": "my parcel is late"}]
    [expected] = generate_local(load_model(str(export.folder), device="cpu"), tok,
                                [PromptItem("x", messages, render(tok, messages), "")], 12, progress=False)
    assert done.stdout.strip() == expected.output
