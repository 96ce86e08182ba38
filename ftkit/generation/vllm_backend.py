"""Generation with vLLM on a CUDA GPU (``baseline.backend: vllm``): the same prompts, greedy, LoRA adapters served.

vLLM batches continuously and pages its key/value cache, so on a GPU it answers a test split many times faster
than ``generate_local``. ftkit keeps everything that decides an answer identical to the transformers path:

- the **same prompts**: rendered by ``ftkit.prompting`` with the base model's chat template and tokenized by the
  same tokenizer; vLLM gets the token ids (``{"prompt_token_ids": [...]}``), so it never re-renders or adds a BOS;
- **greedy decoding**: ``temperature=0`` with repetition penalty 1, top-p 1, top-k off, and the engine started with
  ``generation_config="vllm"`` so no sampling default from the model's ``generation_config.json`` applies;
- the **same stop ids** (``generation.local.stop_token_ids``) and the same post-processing: the answer is decoded up
  to (not including) the first stop token with special tokens skipped, its length counted including the stop;
- **LoRA adapters** through vLLM's ``LoRARequest`` on the unmerged base model (the forgetting probe's "before" is
  the same engine without the request).

A check on a sample (``baseline.vllm_check_examples``) answers the same prompts with transformers and compares the
texts; differences are reported with the first differing token, since bf16 kernels can break near-ties.

Written against vLLM's documented API (``LLM``, ``SamplingParams``, ``LoRARequest``); vLLM needs a CUDA GPU, so on a
machine without one (or without the package) ``unavailable_reason`` says why in one line and the runner refuses
the engagement before any phase starts. Everything but ``VLLMEngine`` is plain Python, tested without vLLM.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ftkit.errors import FtkitError, MissingDependency
from ftkit.generation.local import count_until_stop
from ftkit.generation.predictions import Prediction

INSTALL = 'pip install "ftkit[vllm]"'


def _vllm(module: str = "vllm"):
    """A vllm module, imported by name: vllm is an optional, CUDA-only extra that CPU installs (and CI) do not have,
    so nothing in ftkit may import it at module level or require it to resolve."""
    import importlib

    return importlib.import_module(module)
SUPPORTED_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's max_lora_rank choices
GPU_MEMORY_SHARE = 0.85  # of the memory free when the engine starts (a transformers model may hold the rest)


def unavailable_reason(installed: bool | None = None, cuda: bool | None = None) -> str:
    """Why ``baseline.backend: vllm`` cannot run here, in one line ("" when it can)."""
    import importlib.util

    installed = importlib.util.find_spec("vllm") is not None if installed is None else installed
    if not installed:
        return f"baseline.backend: vllm needs the vllm package, which is not installed ({INSTALL} on a CUDA machine)."
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        return "baseline.backend: vllm needs a CUDA GPU and this machine has none; use baseline.backend: local here."
    return ""


def require_vllm() -> None:
    reason = unavailable_reason()
    if reason.startswith("baseline.backend: vllm needs the vllm package"):
        raise MissingDependency("vllm", "baseline.backend: vllm", INSTALL)
    if reason:
        raise FtkitError(reason)


def sampling_kwargs(max_new_tokens: int, stop_ids: list[int]) -> dict:
    """``SamplingParams`` arguments for greedy answers that stop where transformers' would.

    >>> sampling_kwargs(32, [2, 7])["temperature"], sampling_kwargs(32, [2, 7])["stop_token_ids"]
    (0.0, [2, 7])
    """
    return {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0,
            "max_tokens": int(max_new_tokens), "stop_token_ids": list(stop_ids), "skip_special_tokens": True,
            "ignore_eos": False}


def lora_rank_for(adapter_dir: str | Path) -> int:
    """vLLM's ``max_lora_rank`` for the adapter in ``adapter_dir``: its rank ``r`` rounded up to a supported one."""
    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    r = int(config.get("r") or 8)
    fit = next((x for x in SUPPORTED_LORA_RANKS if x >= r), None)
    if fit is None:
        raise FtkitError(f"The adapter in {adapter_dir} has LoRA rank {r}, above the largest vLLM serves "
                         f"({SUPPORTED_LORA_RANKS[-1]}); use baseline.backend: local or train with a smaller lora_r.")
    return fit


def engine_kwargs(model_path: str, tokenizer_path: str = "", revision: str = "", trust_remote_code: bool = False,
                  lora_rank: int = 0, max_model_len: int = 0, gpu_memory_utilization: float = 0.9,
                  seed: int = 0) -> dict:
    """``LLM(...)`` arguments: the local model folder, no sampling defaults from generation_config, prefix caching
    (every prompt shares the system prompt and few-shot block), LoRA on when an adapter will be served."""
    kwargs = {"model": str(model_path), "tokenizer": str(tokenizer_path or model_path),
              "trust_remote_code": trust_remote_code, "dtype": "auto", "seed": seed, "generation_config": "vllm",
              "enable_prefix_caching": True, "gpu_memory_utilization": round(gpu_memory_utilization, 3)}
    if revision:
        kwargs["revision"] = revision
    if max_model_len:
        kwargs["max_model_len"] = int(max_model_len)
    if lora_rank:
        kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank)
    return kwargs


def lora_request_args(adapter_dir: str | Path, name: str = "ftkit-adapter", number: int = 1) -> tuple[str, int, str]:
    """``LoRARequest(lora_name, lora_int_id, lora_path)`` arguments for a training run's adapter folder."""
    path = Path(adapter_dir).resolve()
    if not (path / "adapter_config.json").is_file():
        raise FtkitError(f"{path} holds no LoRA adapter (adapter_config.json); re-run the training phase.")
    return name, number, str(path)


def token_prompts(prompts, tokenizer) -> tuple[list[dict], list[list[int]]]:
    """vLLM prompt dicts with the token ids transformers would feed (no special tokens added: the chat template
    already rendered them), and those ids."""
    encoded = [tokenizer(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
    return [{"prompt_token_ids": ids} for ids in encoded], encoded


def predictions_from_outputs(prompts, encoded: list[list[int]], token_rows: list[list[int]], tokenizer,
                             stops: list[int], max_new_tokens: int, seconds: float,
                             finish_reasons: list[str] | None = None) -> list[Prediction]:
    """Prediction rows from generated token ids, post-processed exactly like ``generate_local``'s.

    All prompts go to vLLM as one batch (it schedules them itself), so ``latency_s`` is the whole call. A row that
    vLLM finished with ``finish_reason == "stop"`` without the stop id in its tokens counts that stop token, as
    transformers' rows do.
    """
    stop_set = set(stops)
    reasons = finish_reasons or [""] * len(token_rows)
    out = []
    for item, ids, row, reason in zip(prompts, encoded, token_rows, reasons):
        n_out, stopped = count_until_stop(list(row), stop_set)
        if reason == "stop" and not stopped:
            row, n_out, stopped = list(row) + [stops[0]], len(row) + 1, True
        kept = list(row[:n_out - 1] if stopped else row[:n_out])
        text = tokenizer.decode(kept, skip_special_tokens=True).strip()
        out.append(Prediction(item.id, item.sha256, text, item.reference, len(ids), n_out, round(seconds, 4),
                              (not stopped) and n_out >= max_new_tokens, item.label, len(prompts), 0))
    return out


def compare_answers(fast: list[Prediction], reference: list[Prediction], tokenizer=None) -> dict:
    """How many of ``fast``'s answers equal ``reference``'s (same ids), with each difference shown.

    >>> a = [Prediction("1", "h", "yes", "", 1, 1, 0.1, False), Prediction("2", "h", "no", "", 1, 1, 0.1, False)]
    >>> b = [Prediction("1", "h", "yes", "", 1, 1, 0.1, False), Prediction("2", "h", "maybe", "", 1, 1, 0.1, False)]
    >>> r = compare_answers(a, b)
    >>> r["checked"], r["identical"], r["differences"][0]["id"]
    (2, 1, '2')
    """
    by_id = {p.id: p for p in reference}
    pairs = [(p, by_id[p.id]) for p in fast if p.id in by_id]
    differences = []
    for f, r in pairs:
        if f.output != r.output:
            at = next((i for i, (x, y) in enumerate(zip(f.output, r.output)) if x != y), min(len(f.output), len(r.output)))
            differences.append({"id": f.id, "vllm": f.output, "transformers": r.output, "first_difference_at_char": at})
    return {"checked": len(pairs), "identical": len(pairs) - len(differences), "differences": differences,
            "explanation": "" if not differences else
            "vLLM's bf16 kernels sum in another order than transformers', so where two next tokens are almost "
            "equally likely greedy decoding can pick the other one; answers agree up to that point."}


class VLLMEngine:
    """One vLLM engine for a base model (optionally ready to serve one LoRA adapter); ``generate`` is greedy."""

    def __init__(self, model_path: str, tokenizer, revision: str = "", trust_remote_code: bool = False,
                 adapter_dir: str | Path = "", tokenizer_path: str = ""):
        require_vllm()
        import torch

        LLM = _vllm().LLM

        free, total = torch.cuda.mem_get_info()
        self.tokenizer = tokenizer
        self.adapter_dir = str(adapter_dir or "")
        self.kwargs = engine_kwargs(model_path, tokenizer_path, revision, trust_remote_code,
                                    lora_rank_for(adapter_dir) if adapter_dir else 0,
                                    gpu_memory_utilization=GPU_MEMORY_SHARE * free / total)
        started = time.perf_counter()
        self.llm = LLM(**self.kwargs)
        self.load_seconds = time.perf_counter() - started
        self.stops = stops_for(model_path, tokenizer)

    def generate(self, prompts, max_new_tokens: int, adapter: bool = True) -> list[Prediction]:
        """Answers in the order of ``prompts``; with the adapter when one was given and ``adapter``."""
        SamplingParams = _vllm().SamplingParams
        stops = self.stops

        requests, encoded = token_prompts(prompts, self.tokenizer)
        lora = None
        if adapter and self.adapter_dir:
            lora = _vllm("vllm.lora.request").LoRARequest(*lora_request_args(self.adapter_dir))
        started = time.perf_counter()
        outputs = self.llm.generate(requests, SamplingParams(**sampling_kwargs(max_new_tokens, stops)),
                                    lora_request=lora, use_tqdm=False)
        seconds = time.perf_counter() - started
        rows = [list(o.outputs[0].token_ids) for o in outputs]
        reasons = [str(o.outputs[0].finish_reason) for o in outputs]
        return predictions_from_outputs(prompts, encoded, rows, self.tokenizer, stops, max_new_tokens, seconds,
                                        reasons)

    def describe(self) -> dict:
        return {"backend": "vllm", "vllm_version": _vllm().__version__, "engine": self.kwargs,
                "load_seconds": round(self.load_seconds, 2)}


def stops_for(model_folder: str | Path, tokenizer) -> list[int]:
    """The stop ids ``generate_local`` would use for this model: its generation_config.json's EOS ids (read from the
    folder, no weights loaded), the tokenizer's EOS and the end-of-turn special tokens."""
    from types import SimpleNamespace

    from ftkit.generation.local import stop_token_ids

    try:
        from transformers import GenerationConfig

        generation_config = GenerationConfig.from_pretrained(str(model_folder))
    except (OSError, ValueError):
        generation_config = None
    return stop_token_ids(tokenizer, SimpleNamespace(generation_config=generation_config))


def engine_for_finetuned(config, finetuned) -> "VLLMEngine":
    """A vLLM engine for a training run's output (``ftkit.evaluation.finetuned.FineTuned``): the base model with
    the adapter served through LoRARequest, or the full fine-tuned model's folder. The tokenizer is the run's."""
    from ftkit.models import resolve_model

    bm = config.base_model
    if finetuned.kind == "adapter":
        source = resolve_model(bm.id, bm.revision)
        return VLLMEngine(source.path, finetuned.tokenizer, source.revision, bm.trust_remote_code,
                          adapter_dir=finetuned.path)
    return VLLMEngine(str(finetuned.path), finetuned.tokenizer, "", bm.trust_remote_code)
