"""Load a base model and its tokenizer safely: safetensors only, no remote code unless allowed, offline-aware.

Device: CUDA > MPS > CPU. dtype: fp32 on CPU (bf16 matmul is ~30x slower on common CPUs), bf16 on CUDA
when supported (else fp16), fp16 on MPS. A hub model that is neither cached nor reachable fails fast with
one sentence saying what to do, instead of transformers' five retries (~50 s) and a traceback.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ftkit.errors import FtkitError
from ftkit.models.quiet import quiet_progress
from ftkit.models.resolve import ModelSource, resolve_model

_TRUTHY = {"1", "true", "yes", "on"}


@dataclass
class LoadedModel:
    """A model ready for generation, with where it came from and how it was placed."""

    model: object
    tokenizer: object
    source: ModelSource
    device: str
    dtype: str
    load_seconds: float


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str):
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16  # MPS bf16 support varies by macOS version; fp16 halves memory safely for inference
    return torch.float32


def hub_offline() -> bool:
    """True when the user asked for offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUTHY for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Can we open a TCP connection to the hub endpoint (``HF_ENDPOINT``, default huggingface.co) quickly?"""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _hub_kwargs(source: ModelSource) -> dict:
    """``from_pretrained`` kwargs for a hub id: revision, and local-only when offline or unreachable."""
    if source.kind != "hub":
        return {}
    kwargs = {"revision": source.revision} if source.revision else {}
    if hub_offline() or _cached_locally(source):
        kwargs["local_files_only"] = True
    elif not hub_reachable():
        raise _not_available(source, "the Hugging Face hub cannot be reached from this machine")
    return kwargs


def _cached_locally(source: ModelSource) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source.path, "config.json", revision=source.revision or None)
    return isinstance(found, str)


def _not_available(source: ModelSource, why: str) -> FtkitError:
    return FtkitError(
        f"Model '{source.requested}' is not in the local Hugging Face cache and {why}: download it on a "
        f"connected machine (`hf download {source.path}`) and copy ~/.cache/huggingface here, or set "
        f"base_model.id to a local folder or a short name such as smollm2-135m-instruct.")


def _check_safetensors(source: ModelSource) -> None:
    if source.kind == "hub":
        return  # use_safetensors=True makes transformers refuse pickle weights from the hub
    folder = Path(source.path)
    if not any(folder.glob("*.safetensors")):
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        detail = f" (it has {', '.join(pickles[:3])}: pickle files can run code when loaded)" if pickles else ""
        raise FtkitError(f"{folder} has no .safetensors weights{detail}; ftkit only loads safetensors. Convert "
                         f"them on a trusted machine with `model.save_pretrained(dir, safe_serialization=True)`.")


def _wrap_load_error(source: ModelSource, err: Exception) -> FtkitError:
    text = str(err)
    if "trust_remote_code" in text:
        return FtkitError(f"Model '{source.requested}' needs its own code from the hub to run; set "
                          f"base_model.trust_remote_code: true only if the client approved running that code.")
    if source.kind == "hub" and ("offline" in text.lower() or "couldn't find" in text.lower()
                                 or "local_files_only" in text or "connect" in text.lower()):
        return _not_available(source, "it cannot be downloaded now (offline mode or no network)")
    first = text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__
    return FtkitError(f"Cannot load model '{source.requested}' from {source.path}: {first}. Check base_model.id "
                      f"and that the folder holds a complete transformers model.")


def _source(model: str | ModelSource, revision: str, cache_dir, trust_remote_code: bool | None) -> ModelSource:
    """A ModelSource carries whether the model's code may run; a loose ``trust_remote_code`` overrides it."""
    source = model if isinstance(model, ModelSource) else resolve_model(model, revision, cache_dir)
    if trust_remote_code is not None and trust_remote_code != source.trust_remote_code:
        import dataclasses

        source = dataclasses.replace(source, trust_remote_code=bool(trust_remote_code))
    return source


def load_tokenizer(model_id_or_path: str | ModelSource, revision: str = "", trust_remote_code: bool | None = None,
                   padding_side: str = "left", cache_dir: str | Path | None = None):
    """The model's tokenizer, with a pad token (eos when it has none) and left padding for generation.
    Pass a ModelSource (``base_model_source(config.base_model)``); a plain id/folder gets ``revision`` and
    ``trust_remote_code`` (default off) as loose arguments."""
    from transformers import AutoTokenizer

    source = _source(model_id_or_path, revision, cache_dir, trust_remote_code)
    kwargs = _hub_kwargs(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=source.trust_remote_code, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise _wrap_load_error(source, err) from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(model_id_or_path: str | ModelSource, revision: str = "", trust_remote_code: bool | None = None,
               device: str | None = None, dtype=None, cache_dir: str | Path | None = None):
    """The causal LM in eval mode on ``device`` (auto) in ``dtype`` (auto); safetensors only."""
    from transformers import AutoModelForCausalLM

    source = _source(model_id_or_path, revision, cache_dir, trust_remote_code)
    _check_safetensors(source)
    device = device or pick_device()
    dtype = dtype or pick_dtype(device)
    kwargs = _hub_kwargs(source)
    try:
        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(source.path, trust_remote_code=source.trust_remote_code,
                                                         use_safetensors=True, dtype=dtype, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise _wrap_load_error(source, err) from None
    return model.to(device).eval()


def load_model_and_tokenizer(model: str | ModelSource, revision: str = "", trust_remote_code: bool | None = None,
                             device: str | None = None, cache_dir: str | Path | None = None) -> LoadedModel:
    """Resolve once, then load tokenizer and model; ``load_seconds`` excludes one-time conversion."""
    source = _source(model, revision, cache_dir, trust_remote_code)
    device = device or pick_device()
    dtype = pick_dtype(device)
    started = time.perf_counter()
    tokenizer = load_tokenizer(source)
    model = load_model(source, device=device, dtype=dtype)
    return LoadedModel(model, tokenizer, source, device, str(dtype).replace("torch.", ""),
                       round(time.perf_counter() - started, 2))
