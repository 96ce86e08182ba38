"""Benchmark: the full data audit vs the tokenize-only floor, on a generated 100k-example chat dataset.

    python benchmarks/bench_audit.py [--n 100000] [--tokenizer MODEL_DIR] [--workers 0] [--repeat 1]

The floor is the same rendered chat texts tokenized in batches of 1,000 by the same fast tokenizer on all
cores (Rust threads), which is the least any audit that counts tokens and checks label masks must spend.
The audit streams the file and does everything the data audit phase does: parse, normalise, structure and
content checks, PII scan, exact/near duplicates, chat-template rendering, token and label-coverage counts,
profiles, stratified splits, and writing train/validation/test.jsonl, issues.csv and stats.json.

The last line printed is one JSON object: examples_per_s, audit_over_tokenize and the measurements. With
``--repeat N`` both are measured N times, alternating, and the best of each is used (shared machines vary by
+-10 % from minute to minute; both sides get the same chance).
Targets (issue 3): >= 5,000 examples/s and audit <= 1.5x the floor on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

CATEGORIES = ["billing", "technical", "account", "shipping", "returns"]
SYSTEM = 'Classify the support ticket. Reply with JSON only: {"category": ..., "priority": ...}'
OPENERS = ["Hi,", "Hello team,", "Dear support,", "Good morning.", "Hey,", ""]
SUBJECTS = ["my order", "the invoice", "my account", "the parcel", "the refund", "my password", "the app", "the jacket",
            "the tent", "my card", "the delivery", "the warranty", "the size exchange", "the voucher", "the boots"]
PROBLEMS = ["has not arrived after two weeks", "shows the wrong amount", "was charged twice", "is locked since yesterday",
            "arrived damaged and the box was open", "cannot be found in the tracking page", "keeps crashing on login",
            "was sent to my old address", "is missing one item", "did not include the discount", "is the wrong colour",
            "stopped working after a week", "was refused at the door", "expired before I could use it"]
ASKS = ["Please help.", "Can you fix this today?", "What should I do now?", "I want a refund.", "Please call me back.",
        "Is there an update?", "Thanks in advance.", "This is urgent, I travel on Friday.", "No rush."]


def make_dataset(path: Path, n: int, seed: int = 0, long: bool = False) -> None:
    """n chat examples, 1 % exact duplicates, a few e-mails; written as JSONL without holding them in memory.
    ``long``: user turns of 7-10 sentences (~200 tokens per example with SmolLM2's tokenizer) instead of 1-3."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        previous = []
        for i in range(n):
            if previous and rng.random() < 0.01:
                handle.write(rng.choice(previous))
                continue
            parts = [rng.choice(OPENERS)] + [f"{rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)} (ref {rng.randint(10**5, 10**6)})."
                                             for _ in range(rng.randint(7, 10) if long else rng.randint(1, 3))] + [rng.choice(ASKS)]
            if rng.random() < 0.002:
                parts.append(f"My e-mail is user{i}@example.com.")
            answer = json.dumps({"category": rng.choice(CATEGORIES), "priority": rng.choice(["low", "medium", "high"])})
            line = json.dumps({"messages": [{"role": "system", "content": SYSTEM},
                                            {"role": "user", "content": " ".join(p for p in parts if p)},
                                            {"role": "assistant", "content": answer}]}) + "\n"
            handle.write(line)
            if len(previous) < 1000:
                previous.append(line)


def _encode_chunk(chunk: list[str]) -> int:
    return sum(len(e) for e in _FLOOR["backend"].encode_batch(chunk, add_special_tokens=False))


_FLOOR: dict = {}


def tokenize_floor(tokenizer, path: Path, batch: int = 1000) -> dict:
    """Seconds to tokenize the rendered texts (rendering untimed) on all cores, two ways, the faster being the
    floor: one process whose Rust thread pool batches across cores, and two processes tokenizing single-threaded
    (on small machines the thread pool often gains nothing)."""
    import multiprocessing as mp

    from ftkit.chat_format import _backend

    conversations = [json.loads(line)["messages"] for line in open(path, encoding="utf-8")]
    texts = []
    for lo in range(0, len(conversations), batch):
        texts += tokenizer.apply_chat_template(conversations[lo:lo + batch], tokenize=False)
    del conversations
    chunks = [texts[lo:lo + batch] for lo in range(0, len(texts), batch)]
    _FLOOR["backend"] = _backend(tokenizer)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # set before forking: single-threaded workers, no warning
    with mp.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        t0 = time.perf_counter()
        tokens = sum(pool.map(_encode_chunk, chunks))
        procs_s = time.perf_counter() - t0
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    t0 = time.perf_counter()
    threads_tokens = sum(_encode_chunk(c) for c in chunks)
    threads_s = time.perf_counter() - t0
    assert threads_tokens == tokens
    return {"seconds": min(procs_s, threads_s), "threads_s": threads_s, "processes_s": procs_s,
            "n": len(texts), "tokens": tokens}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tokenizer", default="", help="model folder with a fast tokenizer (default: the tiny test model)")
    parser.add_argument("--workers", type=int, default=0, help="audit worker processes (0 = automatic)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the best of each is reported")
    parser.add_argument("--long", action="store_true", help="long user turns: ~200 tokens per example (SmolLM2)")
    args = parser.parse_args(argv)

    from ftkit.data.audit_files import AuditOptions, audit_files
    from ftkit.data.record_checks import TaskContext, control_markers
    from ftkit.models.loading import load_tokenizer
    from ftkit.models.tiny import ensure_tiny_model

    tokenizer = load_tokenizer(args.tokenizer or str(ensure_tiny_model()))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "chat.jsonl"
        make_dataset(data, args.n, long=args.long)
        size_mb = data.stat().st_size / 1e6
        options = AuditOptions(task=TaskContext("structured_output", "category", (), {}, control_markers(tokenizer)),
                               tokenizer=tokenizer, max_seq_length=1024, workers=args.workers or None)
        audit_runs, floor_runs = [], []
        for _ in range(args.repeat):  # alternate the two, so a slow spell of a shared machine hits both
            t0 = time.perf_counter()
            result = audit_files([data], options)
            result.write_outputs(Path(tmp) / "out")
            audit_runs.append(time.perf_counter() - t0)
            n_valid, issues, splits = result.n_valid, result.issue_counts(), result.split_counts()
            result.close()
            floor = tokenize_floor(tokenizer, data)
            floor_runs.append(floor["seconds"])
        audit_s, floor_s = min(audit_runs), min(floor_runs)  # best of each: the least disturbed run
        n, tokens = floor["n"], floor["tokens"]
    report = {
        "examples_per_s": round(args.n / audit_s, 1),
        "audit_over_tokenize": round(audit_s / floor_s, 3),
        "audit_s": round(audit_s, 2), "tokenize_s": round(floor_s, 2),
        "tokenize_examples_per_s": round(n / floor_s, 1), "tokenize_threads_s": round(floor["threads_s"], 2),
        "tokenize_processes_s": round(floor["processes_s"], 2), "n_examples": args.n, "n_valid": n_valid,
        "tokens_per_example": round(tokens / n, 1), "file_mb": round(size_mb, 1), "cpu_count": os.cpu_count(),
        "splits": splits, "issues": issues, "tokenizer": args.tokenizer or "tiny-random (ftkit test model)", "long_user_turns": args.long,
        "load_average_1min": round(os.getloadavg()[0], 2), "repeat": args.repeat,
        "audit_runs_s": [round(x, 2) for x in audit_runs], "tokenize_runs_s": [round(x, 2) for x in floor_runs],
        "targets": {"examples_per_s": 5000, "audit_over_tokenize": 1.5},
    }
    print(f"audit: {audit_s:.1f} s ({report['examples_per_s']:,} examples/s); tokenize-only floor: {floor_s:.1f} s "
          f"({report['tokenize_examples_per_s']:,} examples/s, {report['tokens_per_example']} tokens/example)")
    print(json.dumps(report))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
