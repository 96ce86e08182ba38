"""Tiny RANDOMLY INITIALISED models of the major chat-model families, for the family test matrix.

Each model is a normal transformers folder: the family's architecture (transformers' own config class, tiny
dims: hidden 64, 2 layers), a real fast tokenizer (a byte-level BPE trained on ftkit's small corpus) carrying the
family's special tokens with their published AddedToken flags (Phi-3's ``<|end|>`` has ``rstrip=True``), the
family's published chat template (``templates/``, sources in ``families.json``) and its generation_config
(stop ids, sampling settings such as Qwen's ``repetition_penalty``). Outputs are gibberish: these models only
exercise the plumbing, and the ``ftkit_tiny_random`` flag says so in every report.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
SPECS = {k: v for k, v in json.loads((HERE / "families.json").read_text(encoding="utf-8")).items()
         if not k.startswith("_")}
CHAT_FAMILIES = ["qwen2_5", "llama3_1", "mistral_v0_3", "gemma2", "gemma3", "phi3"]
BASE_FAMILIES = ["gemma3_base", "plain_base"]
BUILDER_VERSION = "family-tiny/1"


def template_text(name: str) -> str | None:
    """The family's published chat template (the file's single trailing newline is not part of it)."""
    file = SPECS[name]["template"]
    if not file:
        return None
    text = (HERE / "templates" / file).read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def build_tokenizer(name: str, vocab_size: int = 1024):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from ftkit.models.tiny import _corpus

    spec = SPECS[name]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(1500), trainer=trainer)
    for text, flags in spec["tokens"]:  # the published flags; special defaults to True like the hub's files
        token = AddedToken(text, rstrip=flags.get("rstrip", False), lstrip=flags.get("lstrip", False),
                           normalized=False, special=flags.get("special", True))
        (tok.add_special_tokens if token.special else tok.add_tokens)([token])
    if spec["add_bos"]:  # as the hub tokenizers do: a post-processor puts bos first when add_special_tokens=True
        bos = spec["bos"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    kwargs = {k + "_token": spec[k] for k in ("bos", "eos", "pad", "unk") if spec[k]}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=2048, **kwargs)
    template = template_text(name)
    if template:
        fast.chat_template = template
    return fast


def _model_config(name: str, tokenizer):
    import transformers

    arch = SPECS[name]["architecture"]
    ids = {k: tokenizer.convert_tokens_to_ids(SPECS[name][k]) if SPECS[name][k] else None
           for k in ("bos", "eos", "pad")}
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])
    if arch == "llama":
        return transformers.LlamaConfig(**common, tie_word_embeddings=True), transformers.LlamaForCausalLM
    if arch == "qwen2":
        return transformers.Qwen2Config(**common, tie_word_embeddings=True), transformers.Qwen2ForCausalLM
    if arch == "mistral":
        return transformers.MistralConfig(**common, sliding_window=None), transformers.MistralForCausalLM
    if arch == "gemma2":
        return (transformers.Gemma2Config(**common, head_dim=16, query_pre_attn_scalar=16, sliding_window=64),
                transformers.Gemma2ForCausalLM)
    if arch == "gemma3_text":
        return (transformers.Gemma3TextConfig(**common, head_dim=16, query_pre_attn_scalar=16, sliding_window=64),
                transformers.Gemma3ForCausalLM)
    if arch == "phi3":
        return transformers.Phi3Config(**common), transformers.Phi3ForCausalLM
    raise ValueError(f"unknown architecture {arch!r}")


def build_family_model(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny random model of family ``name`` (a key of ``families.json``) into ``out_dir``."""
    import torch
    from transformers import GenerationConfig

    from ftkit.models.cache import NOTE_FILE
    from ftkit.models.loading import quiet_progress

    spec = SPECS[name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(name)
    config, cls = _model_config(name, tokenizer)
    config.ftkit_tiny_random = True
    torch.manual_seed(seed)
    model = cls(config).to(torch.float32)
    gen = dict(spec["generation_config"])
    eos = [tokenizer.convert_tokens_to_ids(t) for t in gen.pop("eos")]
    model.generation_config = GenerationConfig(eos_token_id=eos if len(eos) > 1 else eos[0],
                                               bos_token_id=config.bos_token_id, pad_token_id=config.pad_token_id,
                                               **gen)
    with quiet_progress():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    note = {"builder_version": BUILDER_VERSION, "name": f"tiny-{name}", "is_tiny_random": True,
            "note": f"Randomly initialised TEST model ({spec['architecture']} architecture, {name} chat template and "
                    f"special tokens): its outputs are meaningless.", "source": spec["source"]}
    (out / NOTE_FILE).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    return out


def family_model(name: str, root: str | Path) -> Path:
    """The family's model under ``root`` (built on first use)."""
    folder = Path(root) / f"tiny-{name}"
    if not (folder / "config.json").is_file():
        build_family_model(name, folder)
    return folder
