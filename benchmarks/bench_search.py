"""training.search on SmolLM2-135M-Instruct (LoRA, CPU): best trial against the default settings, and the search's
overhead per trial beyond training itself.

Data: banking77 intents (``../shared/data/banking77/train.csv``: query -> intent label) when present, else the shipped
demo support tickets. A seeded sample is split into a training subset and a validation set; the study runs
``--trials`` trials (TPE, median pruning on validation loss, the first trial = the default settings) through
``ftkit.training.search.run_study``, exactly as the training phase does, with its SQLite storage in a temp folder.

Reported (last line, one JSON object):
- ``default_val_loss`` / ``best_val_loss``: best validation loss (nats/token) of the default-settings trial and of
  the best trial, same data, steps and run; ``ratio_best_to_default`` (< 1 = the search found better settings);
- ``overhead_per_trial_s``: a trial's wall time minus its ``trainer.train()`` time (copy of the base model, LoRA wrap,
  Trainer set-up) plus the study's own work for it (Optuna ask/tell, SQLite writes, trials.jsonl);
  ``overhead_share`` = that over the mean training time per trial (target <= 0.05). The one-off set-up (storage,
  loading the base model once) and the final summary are reported beside it, and amortised over the trials in
  ``overhead_share_with_setup_amortised``.

    python benchmarks/bench_search.py [--trials 4] [--examples 32] [--validation 8] [--max-steps 8]

The fixed part of a trial (a deep copy of the base model, the LoRA wrap, the Trainer's set-up: about 2 s on this
CPU) does not grow with the trial, so the overhead share falls as trials get longer; these defaults are sized to
finish in about 10 minutes on a shared 2-core CPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: idle threads sleep on shared cores

BANKING = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "train.csv"
SYSTEM = "Classify the banking customer's message into one intent label. Answer with the label only."


def records(n: int, seed: int = 0) -> tuple[list[dict], str]:
    rng = random.Random(seed)
    if BANKING.is_file():
        with open(BANKING, encoding="utf-8", newline="") as handle:
            rows = [(r["text"], r["category"]) for r in csv.DictReader(handle)]
        source = str(BANKING)
    else:
        from ftkit.resources import sample_data_dir

        lines = (sample_data_dir() / "support_tickets.jsonl").read_text(encoding="utf-8").splitlines()
        rows = []
        for line in lines:
            msgs = json.loads(line)["messages"]
            rows.append((next(m["content"] for m in msgs if m["role"] == "user"),
                         next(m["content"] for m in msgs if m["role"] == "assistant")))
        source = "ftkit sample data: support_tickets.jsonl"
    rng.shuffle(rows)
    return [{"id": str(i), "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for i, (q, a) in enumerate(rows[:n])], source


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--examples", type=int, default=32, help="training subset")
    p.add_argument("--validation", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=8)
    args = p.parse_args(argv)

    from dataclasses import asdict

    from ftkit.chat_format import template_info
    from ftkit.config import SearchSettings, SearchSpace, TrainingSettings
    from ftkit.models import load_tokenizer
    from ftkit.models.resolve import resolve_model
    from ftkit.training import search
    from ftkit.training.dataset import tokenize_split
    from ftkit.training.packing import build_sequences
    from ftkit.training.settings import resolve_settings

    source = resolve_model(args.model)
    tokenizer = load_tokenizer(source, padding_side="right")
    rows, data_source = records(args.examples + args.validation)
    train = tokenize_split(tokenizer, rows[:args.examples], 256, "train", system_prompt=SYSTEM).examples
    val = tokenize_split(tokenizer, rows[args.examples:], 256, "validation", system_prompt=SYSTEM).examples
    base = resolve_settings(TrainingSettings(max_steps=args.max_steps, eval_steps=3, batch_size=2), 256)
    cfg = SearchSettings(enabled=True, trials=args.trials, pruner="median",
                         space=SearchSpace(learning_rate=[1e-5, 3e-3], lora_r=[4, 32], lora_dropout=[0.0, 0.1]))
    with tempfile.TemporaryDirectory() as tmp:
        job = search.SearchJob(str(Path(tmp) / "search"), base.to_dict(), asdict(cfg), search.study_key("bench", asdict(cfg)),
                               source.path, template_info(tokenizer).end_of_turn_id, chat_template=tokenizer.chat_template)
        t0 = time.perf_counter()
        summary = search.run_study(job, build_sequences(train, 256, True, 42), build_sequences(val, 256, True, 42),
                                   log=lambda line: print(line, flush=True))
        study_wall = time.perf_counter() - t0
    ran = [t for t in summary["trials"] if t["state"] in ("complete", "pruned")]
    train_s = sum(t["train_seconds"] for t in ran) / len(ran)  # trainer.train() per trial
    in_trial = sum(t["wall_seconds"] - t["train_seconds"] for t in ran) / len(ran)  # copy, LoRA wrap, Trainer set-up
    book = sum(summary["overhead"]["bookkeeping_seconds"]) / len(ran)  # ask/tell, SQLite, trials.jsonl
    setup = summary["overhead"]["setup_seconds"]  # once: storage, base model load
    other = study_wall - len(ran) * (train_s + in_trial + book) - setup  # summary, importance, budget checks
    overhead = in_trial + book
    best, default = summary["best"], summary["default"]
    result = {
        "benchmark": "search", "model": args.model, "data": data_source, "train_examples": len(train),
        "validation_examples": len(val), "trials": len(ran), "pruned": summary["pruned"],
        "default_val_loss": round(default["best_val_loss"], 4), "best_val_loss": round(best["best_val_loss"], 4),
        "best_trial": best["number"], "best_params": best["params"],
        "ratio_best_to_default": round(best["best_val_loss"] / default["best_val_loss"], 4),
        "mean_train_s_per_trial": round(train_s, 2),
        "overhead_per_trial_s": round(overhead, 3), "overhead_in_trial_s": round(in_trial, 3),
        "overhead_bookkeeping_s": round(book, 3), "overhead_share": round(overhead / train_s, 4),
        "target_overhead_share": 0.05, "setup_once_s": round(setup, 2), "summary_and_rest_s": round(other, 2),
        "overhead_share_with_setup_amortised": round((overhead + (setup + other) / len(ran)) / train_s, 4),
        "study_wall_s": round(study_wall, 1), "cost_usd": summary["spent"]["cost_usd"],
        "rate": summary["rate"]["name"],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
