"""`ftkit serve` under load: requests/s and p50/p95 latency at concurrency 1, 4 and 16, and time to the first
streamed token, with the tiny random model and with the packaged SmolLM2-135M-Instruct (CPU, fp32, greedy).

Real HTTP on 127.0.0.1 with an issued token (the UAT path: auth, admission, fsynced request log). The peer,
measured in the same run on the same prompts: the same ``LocalChatModel.complete`` called in-process, one at a
time (a plain transformers generate loop, no HTTP, no log). ``serve_over_direct`` is the headline: serving's
latency at concurrency 1 over the direct loop's (1.0 = no overhead). ``ttft_over_latency`` is the streamed
first token's wait over a whole answer's latency (small = testers see the answer start early). Requests are
answered one at a time (one model, CPU), so req/s stays flat with concurrency and latency grows with the queue.

    python benchmarks/bench_serve.py [--models tiny-random,smollm2-135m-instruct] [--max-tokens 16] [--rounds 1]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

CONCURRENCY = (1, 4, 16)


def prompts(n: int) -> list[list[dict]]:
    from ftkit.resources import sample_data_dir

    rows = []
    with open(sample_data_dir() / "support_tickets.jsonl", encoding="utf-8") as handle:
        for line in handle:
            messages = json.loads(line)["messages"]
            rows.append([m for m in messages if m["role"] != "assistant"])
            if len(rows) == n:
                break
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def one_request(port: int, token: str, body: dict) -> tuple[float, float | None]:
    """(latency s, time to first content chunk s or None) of one real HTTP request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    first = None
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    if body.get("stream"):
        for line in response:
            if first is None and line.startswith(b"data: {") and b'"content": "' in line and b'"content": ""' not in line:
                first = time.perf_counter() - started
            if line.strip() == b"data: [DONE]":
                break
    else:
        response.read()
    conn.close()
    return time.perf_counter() - started, first


def load_level(port: int, token: str, model: str, convs: list[list[dict]], concurrency: int, n: int,
               max_tokens: int) -> dict:
    latencies, lock, jobs = [], threading.Lock(), list(range(n))

    def worker():
        while True:
            with lock:
                if not jobs:
                    return
                i = jobs.pop()
            latency, _ = one_request(port, token, {"model": model, "messages": convs[i % len(convs)],
                                                   "max_tokens": max_tokens})
            with lock:
                latencies.append(latency)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": n, "req_per_s": round(n / wall, 3),
            "p50_s": round(percentile(latencies, 0.5), 4), "p95_s": round(percentile(latencies, 0.95), 4)}


def bench_model(model_id: str, max_tokens: int, rounds: int, folder: Path) -> dict:
    import torch

    from ftkit.deployment.chat_request import ChatRequest
    from ftkit.deployment.server import BackgroundServer, LocalChatModel
    from ftkit.deployment.uat_tokens import TokenStore
    from ftkit.models import load_model_and_tokenizer

    loaded = load_model_and_tokenizer(model_id, device="cpu")
    chat_model = LocalChatModel(loaded.model, loaded.tokenizer, "bench", context_length=1024)
    convs = prompts(16)
    n_direct = 4 * rounds
    chat_model.complete(ChatRequest("bench", convs[0], 4))  # warm-up: first forward allocates, picks kernels
    started = time.perf_counter()
    for i in range(n_direct):  # the peer: the same generation, in-process, one at a time
        chat_model.complete(ChatRequest("bench", convs[i % len(convs)], max_tokens))
    direct_s = (time.perf_counter() - started) / n_direct
    store = TokenStore(folder / model_id / "tokens.json")
    token = store.issue("bench")
    with BackgroundServer(chat_model, log_path=folder / model_id / "requests.jsonl", tokens=store,
                          max_pending=64) as server:
        port = server.httpd.server_address[1]
        levels = []
        for c in CONCURRENCY:
            levels.append(load_level(port, token, "bench", convs, c, max(4 * rounds, c * rounds), max_tokens))
            print(f"{model_id:>22} c={c:>2}: {levels[-1]['req_per_s']} req/s, p50 {levels[-1]['p50_s']} s, "
                  f"p95 {levels[-1]['p95_s']} s", flush=True)
        streamed = [one_request(port, token, {"model": "bench", "messages": convs[i % len(convs)],
                                              "max_tokens": max_tokens, "stream": True}) for i in range(4 * rounds)]
    firsts = [f for _, f in streamed if f is not None]
    # tiny-random's random weights emit only special tokens, which decode to no text: no first token to time.
    ttft = statistics.median(firsts) if firsts else None
    stream_latency = statistics.median(t for t, _ in streamed)
    serve_c1 = levels[0]["p50_s"]
    print(f"{model_id:>22} direct {direct_s:.4f} s/request; streamed first token "
          f"{'n/a (empty answers)' if ttft is None else f'{ttft:.4f} s'} of {stream_latency:.4f} s", flush=True)
    return {"model": model_id, "torch_threads": torch.get_num_threads(), "max_tokens": max_tokens, "levels": levels,
            "direct_s": round(direct_s, 4), "ttft_s": None if ttft is None else round(ttft, 4),
            "streams_with_text": len(firsts), "streams": len(streamed), "stream_latency_s": round(stream_latency, 4),
            "serve_over_direct": round(serve_c1 / direct_s, 3),
            "ttft_over_latency": None if ttft is None else round(ttft / stream_latency, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-random,smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="requests per level = max(4, concurrency) x rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_model(m, args.max_tokens, args.rounds, Path(tmp)) for m in args.models.split(",") if m]
    print(json.dumps({"benchmark": "serve", "device": "cpu", "dtype": "float32", "cpu_count": os.cpu_count(),
                      "machine": platform.machine(), "models": results,
                      "serve_over_direct": {r["model"]: r["serve_over_direct"] for r in results},
                      "ttft_over_latency": {r["model"]: r["ttft_over_latency"] for r in results}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
