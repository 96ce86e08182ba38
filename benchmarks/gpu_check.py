"""The GPU check: ftkit's GPU paths measured on whatever GPUs this machine has, one JSON line at the end.

    python benchmarks/gpu_check.py                 # every part
    python benchmarks/gpu_check.py --part lora     # one part: lora | qlora | fsdp | vllm (repeatable)
    python benchmarks/gpu_check.py --smoke --part lora   # the same code on the tiny random model, any device

Parts (each runs on its own; a part that cannot run here says why and the others still run):

- **lora** / **qlora**: ``ftkit.training.trainer.run_training`` on a randomly initialised ~1.1B Llama (hidden 2048,
  16 layers) in bf16, packed sequences; real tokens/s, MFU (6 x parameters x real tokens / time, against the bf16
  matmul peak measured on this GPU in the same run) and peak memory against ftkit's estimate
  (``ftkit.training.memory``). QLoRA needs bitsandbytes.
- **fsdp**: the same LoRA job through ``accelerate launch`` with ftkit's FSDP config on all GPUs (needs 2+), next to
  DDP on the same GPUs: tokens/s of both, peak memory per GPU against the sharded estimate, and the distributed
  type accelerate set up (the proof it really sharded).
- **vllm**: vLLM (``ftkit.generation.vllm_backend``) against transformers (``generate_local``) on the same prompts,
  greedy: output tokens/s of both, their ratio, and how many answers are identical.

Without CUDA the check prints one JSON line saying so and exits 0 without running anything. It has not yet run
on a GPU for this version of ftkit (see the README); ``--smoke`` runs the lora part's code on the tiny model so the
script itself is tested on CPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))

PARTS = ("lora", "qlora", "fsdp", "vllm")


def cuda_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _examples(model_path: str, n: int, max_seq_length: int):
    from bench_training import alpaca_records

    from ftkit.models import load_tokenizer
    from ftkit.training.dataset import tokenize_split

    records, source = alpaca_records(n)
    tokenizer = load_tokenizer(model_path, padding_side="right")
    return tokenize_split(tokenizer, records, max_seq_length).examples, records, source


def part_training(method: str, model_path: str, ctx: dict) -> dict:
    """lora / qlora: one epoch with ftkit's trainer; MFU and peak memory against the estimate."""
    from bench_training import gpu_extras, run_ftkit

    if method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "bitsandbytes is not installed (pip install \"ftkit[qlora]\")"}
    examples = ctx["examples"]
    result = run_ftkit(model_path, examples, ctx["max_seq_length"], ctx["batch_rows"], method, ctx["workdir"])
    out = {"real_tokens_per_s": round(result["real_tokens"] / result["seconds"], 1), "steps": result["steps"],
           "seconds": round(result["seconds"], 2), "peak_memory_gb": round(result["peak_memory_gb"], 3)}
    if ctx["gpus"]:
        label_share = sum(e.n_labels for e in examples) / sum(e.n_tokens for e in examples)
        out.update(gpu_extras(model_path, result, ctx["max_seq_length"], ctx["batch_rows"], label_share, method,
                              ctx["peak_tflops"]))
        out["peak_over_estimate"] = round(out["peak_memory_gb"] / out["estimate_gb"], 3)
    return out


def _launched(mode: str, model_path: str, ctx: dict, processes: int = 0) -> dict:
    from ftkit.config import TrainingSettings
    from ftkit.training.distributed import plan_from_settings
    from ftkit.training.launch import launch
    from ftkit.training.packing import build_sequences
    from ftkit.training.settings import plan_steps, resolve_settings
    from ftkit.training.trainer import TrainingJob

    settings = resolve_settings(TrainingSettings(epochs=1, batch_size=ctx["batch_rows"], eval_steps=10 ** 6,
                                                 max_seq_length=ctx["max_seq_length"], early_stopping_patience=0,
                                                 distributed=mode, num_processes=processes or ctx["gpus"]))
    sequences = build_sequences(ctx["examples"], ctx["max_seq_length"], True, 0)
    plan = plan_steps(settings, len(sequences))
    job = TrainingJob(model_path, settings.to_dict(), plan.to_dict(), str(ctx["workdir"] / f"launch-{mode}"), "gpu-check",
                      ctx["eot_id"], progress=False)
    outcome = launch(job, sequences, [], plan_from_settings(settings), echo=lambda line: None)
    return {"real_tokens_per_s": round(outcome["tokens"]["real"] / outcome["train_seconds"], 1),
            "peak_memory_gb_rank0": round(outcome["peak_memory_gb"], 3), "processes": outcome["processes"],
            "distributed_type": outcome["distributed_type"], "settings": settings}


def part_fsdp(model_path: str, ctx: dict) -> dict:
    """FSDP (ftkit's config) vs DDP on all GPUs; memory per GPU against the sharded estimate."""
    from ftkit.training.distributed import plan_from_settings
    from ftkit.training.memory import ModelShape, estimate_memory, shard_estimate

    if ctx["gpus"] < 2:
        skipped = {"skipped": f"needs 2 or more GPUs, this machine has {ctx['gpus']}"}
        if ctx["smoke"]:  # the launch path of this part, as DDP on 2 CPU processes (FSDP needs GPUs)
            ddp = _launched("ddp", model_path, ctx, processes=2)
            ddp.pop("settings")
            skipped["ddp_smoke"] = ddp
        return skipped
    fsdp = _launched("fsdp", model_path, ctx)
    ddp = _launched("ddp", model_path, ctx)
    shape = ModelShape.from_folder(model_path)
    tokens = ctx["batch_rows"] * ctx["max_seq_length"]
    plan = plan_from_settings(fsdp.pop("settings"))
    ddp.pop("settings")
    one = estimate_memory(shape, "lora", tokens, None, 2, True, 16, (), "cuda")
    estimate = shard_estimate(one, plan.sharding, plan.world_size, shape, 2)
    return {"gpus": ctx["gpus"], "fsdp": fsdp, "ddp": ddp,
            "fsdp_over_ddp_tokens_per_s": round(fsdp["real_tokens_per_s"] / ddp["real_tokens_per_s"], 3),
            "fsdp_estimate_gb": round(estimate.total_gb, 2),
            "fsdp_peak_over_estimate": round(fsdp["peak_memory_gb_rank0"] / estimate.total_gb, 3)}


def part_vllm(model_path: str, ctx: dict) -> dict:
    """vLLM vs transformers generation on the same prompts, greedy."""
    from ftkit.generation import generate_local
    from ftkit.generation.vllm_backend import VLLMEngine, compare_answers, unavailable_reason
    from ftkit.generation.predictions import throughput
    from ftkit.models import load_model, load_tokenizer
    from ftkit.prompting import build_prompts, make_spec

    reason = unavailable_reason()
    if reason:
        return {"skipped": reason}
    tokenizer = load_tokenizer(model_path)
    records = [{"id": r["id"], "messages": r["messages"]} for r in ctx["records"][:ctx["prompts"]]]
    prompts = build_prompts(records, make_spec([], 0, "Answer the instruction."), tokenizer)
    model = load_model(model_path, device="cuda")
    reference = generate_local(model, tokenizer, prompts, ctx["max_new_tokens"], ctx["generation_batch"], progress=False)
    del model
    import torch

    torch.cuda.empty_cache()
    engine = VLLMEngine(model_path, tokenizer)
    fast = engine.generate(prompts, ctx["max_new_tokens"])
    hf, vl = throughput(reference), throughput(fast)
    check = compare_answers(fast, reference)
    return {"prompts": len(prompts), "transformers_tokens_per_s": round(hf["tokens_per_s"], 1),
            "vllm_tokens_per_s": round(vl["tokens_per_s"], 1),
            "vllm_over_transformers": round(vl["tokens_per_s"] / hf["tokens_per_s"], 2),
            "identical_answers": check["identical"], "checked": check["checked"],
            "vllm_version": engine.describe()["vllm_version"]}


def run(parts: list[str], smoke: bool, examples: int, max_seq_length: int) -> dict:
    import torch

    from ftkit.chat_format import template_info
    from ftkit.models import load_tokenizer

    gpus = cuda_gpus()
    out = {"benchmark": "gpu_check", "parts": parts, "gpus": gpus,
           "gpu": torch.cuda.get_device_name() if gpus else None, "torch": torch.__version__}
    if not gpus and not smoke:
        out.update(skipped=True, reason="no CUDA GPU on this machine: the GPU check needs one (nothing was run)")
        return out
    workdir = Path(tempfile.mkdtemp(prefix="ftkit-gpu-check-"))
    if smoke:
        from ftkit.models.tiny import ensure_tiny_model

        model_path, max_seq_length, examples = str(ensure_tiny_model()), 256, min(examples, 24)
        out["model"] = "tiny-random (smoke run: code path only, numbers mean nothing)"
    else:
        from bench_training import bf16_matmul_tflops, random_llama

        model_path = str(random_llama(workdir / "llama-1b"))
        out["model"] = "random-llama-1.1b (bf16)"
        out["bf16_matmul_tflops"] = round(bf16_matmul_tflops(), 1)
    ex, records, source = _examples(model_path, examples, max_seq_length)
    mean_len = sum(e.n_tokens for e in ex) / len(ex)
    ctx = {"gpus": gpus, "workdir": workdir, "examples": ex, "records": records, "max_seq_length": max_seq_length,
           "batch_rows": max(1, round(8 * mean_len / max_seq_length)), "peak_tflops": out.get("bf16_matmul_tflops"),
           "eot_id": template_info(load_tokenizer(model_path)).end_of_turn_id, "prompts": min(64, len(records)),
           "max_new_tokens": 16 if smoke else 128, "generation_batch": 16, "smoke": smoke}
    out.update(data=source, examples=len(ex))
    runners = {"lora": lambda: part_training("lora", model_path, ctx),
               "qlora": lambda: part_training("qlora", model_path, ctx),
               "fsdp": lambda: part_fsdp(model_path, ctx), "vllm": lambda: part_vllm(model_path, ctx)}
    for part in parts:
        started = time.perf_counter()
        try:
            out[part] = runners[part]()
        except Exception as err:  # one part failing must not hide the others' figures
            out[part] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc(limit=3)[-1500:]}
        out[part]["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="tiny random model on any device: tests the code path")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--max-seq-length", type=int, default=2048)
    args = parser.parse_args(argv)
    out = run(args.part or list(PARTS), args.smoke, args.examples, args.max_seq_length)
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
