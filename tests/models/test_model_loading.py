"""Resolving base_model.id and loading safely: short names, folders, hub ids offline, safetensors only."""
from __future__ import annotations

import json
import shutil

import pytest

from ftkit.errors import ConfigError, FtkitError
from ftkit.models import load_model, load_model_and_tokenizer, load_tokenizer, pick_device, resolve_model
from ftkit.models.describe import describe_model, folder_files_sha256, folder_sha256, safetensors_parameter_count


def test_resolve_forms(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("FTKIT_CACHE", str(tiny_model_dir.parent.parent))
    assert resolve_model("tiny-random").kind == "short_name"
    assert resolve_model("TINY-RANDOM").path == str(tiny_model_dir)
    folder = resolve_model(str(tiny_model_dir))
    assert folder.kind == "folder" and folder.is_local
    hub = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", revision="abc")
    assert (hub.kind, hub.path, hub.revision) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct", "abc")


@pytest.mark.parametrize("bad", ["", "../nope here", "/no/such/dir/"])
def test_unresolvable_ids_name_the_valid_forms(bad):
    with pytest.raises(ConfigError, match="short name"):
        resolve_model(bad)


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(FtkitError, match="does not exist"):
        resolve_model(str(tmp_path / "model.gguf"))


def test_hub_model_offline_fails_fast_with_one_actionable_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FtkitError) as info:
        load_tokenizer("some-org/not-cached-model")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message and "hf download some-org/not-cached-model" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_unreachable_hub_fails_fast(monkeypatch):
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens, refused at once
    started = time.perf_counter()
    with pytest.raises(FtkitError, match="cannot be reached"):
        load_model("some-org/not-cached-model")
    assert time.perf_counter() - started < 10  # not transformers' five retries


def test_load_model_picks_device_and_dtype_and_evals(tiny_model_dir):
    import torch

    from ftkit.models.loading import pick_dtype

    loaded = load_model_and_tokenizer(str(tiny_model_dir))
    assert loaded.device == pick_device() and next(loaded.model.parameters()).dtype == pick_dtype(loaded.device)
    cpu = load_model_and_tokenizer(str(tiny_model_dir), device="cpu")
    assert cpu.dtype == "float32" and next(cpu.model.parameters()).dtype == torch.float32  # bf16 is slow on CPUs
    assert not loaded.model.training and not cpu.model.training
    assert loaded.tokenizer.padding_side == "left" and loaded.tokenizer.pad_token == "<|im_end|>"


def test_pickle_weights_are_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(FtkitError, match="only loads safetensors"):
        load_model(str(folder))


def test_broken_folder_names_the_model(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FtkitError, match="Cannot load model"):
        load_model(str(tmp_path))


def test_describe_model_for_the_manifest(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    info = describe_model(str(tiny_model_dir))
    hashes = folder_files_sha256(tiny_model_dir)
    assert info["files"] == hashes and info["files_sha256"] == folder_sha256(hashes)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    assert info["parameters"] == n_params == safetensors_parameter_count(tiny_model_dir)
    assert info["is_tiny_random"] is True and "random" in info["note"].lower()
    assert json.dumps(info)


def test_folder_hash_changes_when_a_file_changes(tiny_model_dir, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    before = describe_model(str(folder))["files_sha256"]
    with open(folder / "config.json", "a") as handle:
        handle.write(" ")
    assert describe_model(str(folder))["files_sha256"] != before


def test_remote_code_is_not_run_unless_allowed(tiny_model_dir, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="acme_llm", auto_map={"AutoConfig": "configuration_acme.AcmeConfig",
                                                   "AutoModelForCausalLM": "modeling_acme.AcmeForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("modeling_acme.py", "configuration_acme.py"):
        (folder / name).write_text("raise SystemExit('remote code ran')\n")  # would end the test run if executed
    with pytest.raises(FtkitError, match="trust_remote_code: true only if the client approved"):
        load_model(str(folder))


def test_the_base_model_travels_as_one_model_source():
    """(id, revision, trust_remote_code) used to be passed as three loose arguments through a dozen call sites;
    now every phase builds one ModelSource from the settings (issue 14). No module outside ftkit/models/ passes
    base_model.revision or base_model.trust_remote_code to a loader itself."""
    import re
    from pathlib import Path

    import ftkit

    root = Path(ftkit.__file__).parent
    loose = re.compile(r"load_(?:tokenizer|model|model_and_tokenizer)\([^)]*(?:\.revision|\.trust_remote_code)")
    offenders = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py") if "models" not in p.parts
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if loose.search(line)]
    assert offenders == []


def test_a_model_source_carries_the_trust_setting_to_the_loader(tiny_model_dir):
    from types import SimpleNamespace

    from ftkit.models import base_model_source, load_tokenizer

    bm = SimpleNamespace(id=str(tiny_model_dir), revision="", trust_remote_code=True)
    source = base_model_source(bm)
    assert source.kind == "folder" and source.trust_remote_code is True
    assert base_model_source(SimpleNamespace(id=str(tiny_model_dir), revision="", trust_remote_code=False)) \
        .trust_remote_code is False
    assert load_tokenizer(source).eos_token  # loads through the source, trust setting included
