"""The tiny random test model: a normal transformers folder, SmolLM2-like tokens, plainly marked as random."""
from __future__ import annotations

import json

from ftkit.fsutil import sha256_file
from ftkit.models import build_tiny_model, ensure_tiny_model, is_tiny_random
from ftkit.models.cache import NOTE_FILE, cache_root, model_cache_dir


def test_tiny_model_is_a_normal_transformers_folder(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizer)
    assert list(tiny_model_dir.glob("*.safetensors")) and not list(tiny_model_dir.glob("*.bin"))
    # like SmolLM2: <|im_end|> is eos and pad
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == model.config.pad_token_id


def test_chatml_template_and_byte_level_round_trip(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tokenizer.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    sample = '{"category": "billing", "amount": 12.5} Ünïcode ✓'
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == sample  # byte-level: any text survives
    assert len(ids) < len(sample.encode())  # BPE merges learned on JSON and English do compress


def test_marked_as_random_in_note_and_config(tiny_model_dir, tmp_path):
    note = json.loads((tiny_model_dir / NOTE_FILE).read_text())
    assert note["is_tiny_random"] is True and "Randomly initialised TEST model" in note["note"]
    assert json.loads((tiny_model_dir / "config.json").read_text())["ftkit_tiny_random"] is True
    assert is_tiny_random(tiny_model_dir)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    assert is_tiny_random(copy)  # the config flag survives a copy that drops the note
    assert not is_tiny_random(tmp_path)


def test_build_is_deterministic(tiny_model_dir, tmp_path):
    again = build_tiny_model(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256_file(again / name) == sha256_file(tiny_model_dir / name), name


def test_ensure_reuses_the_cached_build(tiny_model_dir):
    before = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(tiny_model_dir.parent.parent) == tiny_model_dir
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == before


def test_cache_location_follows_ftkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_CACHE", str(tmp_path / "c"))
    assert model_cache_dir("tiny-random") == (tmp_path / "c" / "models" / "tiny-random").resolve()
    monkeypatch.delenv("FTKIT_CACHE")
    assert cache_root().parts[-2:] == (".cache", "ftkit")
    assert cache_root(tmp_path) == tmp_path.resolve()
