"""Helpers for the deployment tests (imported by name: tests/deployment is on sys.path under pytest)."""
from __future__ import annotations

import json
from pathlib import Path

from ftkit.resources import sample_data_dir


def ticket_records(n: int) -> list[dict]:
    """The first ``n`` demo tickets with a non-empty answer, as audited records {id, messages, label}."""
    rows = []
    for i, line in enumerate((sample_data_dir() / "support_tickets.jsonl").read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        answer = record["messages"][-1]["content"]
        if answer.strip():
            rows.append({"id": f"t{i:03d}", "messages": record["messages"], "label": json.loads(answer).get("category")})
        if len(rows) == n:
            break
    return rows


def make_adapter(base_dir: Path, out_dir: Path, seed: int = 0, with_tokenizer: bool = True) -> Path:
    """A LoRA adapter (r=4, all linear layers) with random non-zero B matrices, so merging changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ftkit.models import load_model, load_tokenizer

    torch.manual_seed(seed)
    base = load_model(str(base_dir), device="cpu")
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(out_dir)
    if with_tokenizer:
        load_tokenizer(str(base_dir)).save_pretrained(out_dir)
    return out_dir
