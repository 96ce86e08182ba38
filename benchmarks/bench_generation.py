"""Batched vs one-at-a-time generation on the packaged SmolLM2-135M-Instruct (CPU, fp32, greedy).

Same model, same prompts (user messages of the shipped sample data with its system prompt, zero-shot),
same ``max_new_tokens``, both with the shared-prefix cache (``--no-prefix-cache`` turns it off). Reports
generated tokens per second for both and their ratio; the last line of output is one JSON object
(``batched_over_sequential`` is the headline; target >= 3.5 at batch 16 on 2 CPU cores).

    python benchmarks/bench_generation.py [--n 32] [--batch-size 16] [--max-new-tokens 24]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def sample_records(n: int) -> list[dict]:
    from ftkit.resources import sample_data_dir

    rows = []
    with open(sample_data_dir() / "support_tickets.jsonl", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            record = json.loads(line)
            if record["messages"][-1]["content"].strip():  # the sample data has a deliberately empty answer
                rows.append({"id": str(i), **record})
            if len(rows) == n:
                break
    return rows


def run(n: int, batch_size: int, max_new_tokens: int, model_id: str, prefix_cache: bool = True) -> dict:
    import torch

    from ftkit.generation import generate_local, throughput
    from ftkit.models import load_model_and_tokenizer
    from ftkit.prompting import build_prompts, make_spec

    started = time.perf_counter()
    loaded = load_model_and_tokenizer(model_id, device="cpu")
    prep_s = time.perf_counter() - started
    prompts = build_prompts(sample_records(n), make_spec([], 0), loaded.tokenizer)
    # Warm-up: the first forward pass allocates and picks kernels; keep it out of both timings.
    generate_local(loaded.model, loaded.tokenizer, prompts[:2], 4, batch_size=2, progress=False)
    timings = {}
    for name, size in (("batched", batch_size), ("sequential", 1)):
        preds = generate_local(loaded.model, loaded.tokenizer, prompts, max_new_tokens, batch_size=size,
                               progress=False, prefix_cache=prefix_cache)
        timings[name] = throughput(preds)
        print(f"{name:>10} (batch {size:>2}): {timings[name]['output_tokens']} tokens in "
              f"{timings[name]['seconds']:.1f} s = {timings[name]['tokens_per_s']:.1f} tokens/s", flush=True)
    return {
        "benchmark": "generation", "model": model_id, "device": "cpu", "dtype": "float32",
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "n_prompts": n, "batch_size": batch_size, "max_new_tokens": max_new_tokens, "prefix_cache": prefix_cache,
        "load_s": round(prep_s, 2),
        "batched_tokens_per_s": round(timings["batched"]["tokens_per_s"], 2),
        "sequential_tokens_per_s": round(timings["sequential"]["tokens_per_s"], 2),
        "batched_over_sequential": round(timings["batched"]["tokens_per_s"] / timings["sequential"]["tokens_per_s"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="prompts (default 32 = two batches of 16)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24, help="enough for the sample's JSON answers")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--no-prefix-cache", action="store_true", help="recompute the shared prompt prefix per batch")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n, args.batch_size, args.max_new_tokens, args.model, not args.no_prefix_cache)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
