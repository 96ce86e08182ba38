"""Turn a GGUF file into a plain transformers safetensors folder, once, cached.

transformers can read GGUF (``from_pretrained(folder, gguf_file=...)``, dequantised to fp32 through the
``gguf`` package) but that takes ~45 s for SmolLM2-135M and the loaded model refuses ``save_pretrained``.
So we load it once, copy its state dict into a freshly built model of the same config, check the two give
the same logits, and save tokenizer + model as a normal folder that reloads in under a second.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ftkit.errors import FtkitError, MissingDependency
from ftkit.fsutil import sha256_file
from ftkit.models.cache import NOTE_FILE, build_cached, model_cache_dir
from ftkit.models.quiet import quiet_progress

CONVERTER_VERSION = "gguf-convert/2"
_PROBE_TEXT = "<|im_start|>user\nHello, what is 2 + 2?<|im_end|>\n"  # a short, template-shaped probe


def convert_gguf_cached(gguf_path: str | Path, name: str = "", cache_dir: str | Path | None = None) -> Path:
    """Return a cached safetensors folder converted from ``gguf_path`` (converting on first use).

    ``name`` is the cache folder name; by default ``gguf-<file stem>-<first 12 hex of its sha256>``, so a
    changed file gets a new folder instead of silently reusing the old conversion.
    """
    gguf_path = Path(gguf_path).expanduser().resolve()
    if not gguf_path.is_file():
        raise FtkitError(f"GGUF file {gguf_path} does not exist; check base_model.id.")
    digest = sha256_file(gguf_path)
    target = model_cache_dir(name or f"gguf-{gguf_path.stem}-{digest[:12]}", cache_dir)
    return build_cached(target, lambda out: _convert(gguf_path, digest, out, target.name), CONVERTER_VERSION)


def _convert(gguf_path: Path, digest: str, out: Path, name: str) -> None:
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError:
        raise MissingDependency("gguf", "Loading a .gguf model") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    folder, fname = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
        quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    except (ValueError, OSError, KeyError, RuntimeError) as err:
        raise FtkitError(f"transformers cannot read {gguf_path} ({type(err).__name__}: {str(err)[:200]}); "
                         f"use a GGUF of a supported architecture (e.g. Llama) or a safetensors folder.") from None
    _set_special_tokens(tokenizer, gguf_path)
    plain = _plain_copy(quantised)
    _check_same_logits(quantised, plain, tokenizer, gguf_path)
    plain.generation_config = quantised.generation_config
    # GGUF tokenizers come without a length limit (1e30); the model's context is the real one (8192 for SmolLM2).
    tokenizer.model_max_length = getattr(plain.config, "max_position_embeddings", tokenizer.model_max_length)
    with quiet_progress():
        plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    note = {"builder_version": CONVERTER_VERSION, "name": name, "is_tiny_random": False,
            "source_gguf": str(gguf_path), "source_gguf_sha256": digest,
            "convert_seconds": round(time.perf_counter() - started, 1),
            "parameters": sum(p.numel() for p in plain.parameters())}
    (out / NOTE_FILE).write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


_SPECIAL_KEYS = {"bos_token": "bos_token_id", "eos_token": "eos_token_id", "pad_token": "padding_token_id",
                 "unk_token": "unknown_token_id"}


def _set_special_tokens(tokenizer, gguf_path: Path) -> None:
    """Take bos/eos/pad/unk from the GGUF metadata itself.

    Some transformers 5.x releases (seen with 5.17) map SmolLM2's GGUF eos to <|im_start|> and drop the pad
    token; a model whose eos is wrong never stops. The file's ``tokenizer.ggml.*_token_id`` fields are
    the source of truth.
    """
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf_path)).fields
    for attr, key in _SPECIAL_KEYS.items():
        field = fields.get(f"tokenizer.ggml.{key}")
        if field is not None and field.data:
            token_id = int(field.parts[field.data[0]][0])
            if 0 <= token_id < len(tokenizer):
                setattr(tokenizer, attr, tokenizer.convert_ids_to_tokens(token_id))


def _plain_copy(quantised):
    """A non-GGUF model with the same config and weights (fp32)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(quantised.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")  # otherwise the copy is flagged as GGUF and refuses to save too
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantised.state_dict(), strict=False)
    # Tied lm_head weights may be reported missing; anything else means the architectures differ.
    missing = [k for k in missing if not k.startswith("lm_head")]
    if missing or unexpected:
        raise FtkitError(f"Converted GGUF weights do not fit the model: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}; report this file's architecture to the ftkit maintainers.")
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    return plain.eval()


def _check_same_logits(a, b, tokenizer, gguf_path: Path) -> None:
    """Equivalence check before saving: the copy must reproduce the original's next-token logits."""
    import torch

    ids = tokenizer(_PROBE_TEXT, return_tensors="pt")["input_ids"]  # (1, seq)
    with torch.no_grad():
        la, lb = a.eval()(ids).logits, b(ids).logits  # (1, seq, vocab)
    if not torch.allclose(la, lb, atol=1e-4, rtol=1e-4):
        diff = (la - lb).abs().max().item()
        raise FtkitError(f"Converting {gguf_path.name} changed the model's outputs (max logit difference {diff:.3g}); "
                         f"the conversion was not saved. Report this to the ftkit maintainers.")
