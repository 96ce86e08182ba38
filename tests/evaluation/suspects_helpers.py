"""A tiny model trained (really, full fine-tune, CPU, seconds) on a separable classification set, for the suspect tests."""
from __future__ import annotations

import random

# Three classes, each recognisable from its keywords (words the tiny tokenizer knows).
KEYWORDS = {"billing": ["payment", "invoice", "fee", "refund", "charge"],
            "shipping": ["delivery", "order", "address", "late", "missing"],
            "security": ["password", "login", "fraud", "access", "reset"]}
FILLER = ["please", "help", "my", "the", "today", "thanks", "need", "with", "a", "is"]


def record(i: int, label: str, answer: str | None = None, split: str = "train", rng=None) -> dict:
    rng = rng or random.Random(i)
    words = rng.sample(KEYWORDS[label], 2) + rng.sample(FILLER, 3)
    rng.shuffle(words)
    return {"id": f"{split}-{i}", "label": label, "origin": {"file": "tickets.jsonl", "line": i + 1},
            "messages": [{"role": "user", "content": " ".join(words)},
                         {"role": "assistant", "content": answer if answer is not None else label}]}


def dataset(n_per_label: int, start: int = 0, split: str = "train", answers: dict | None = None) -> list[dict]:
    rng = random.Random(start)
    out = []
    for k in range(n_per_label):
        for label in KEYWORDS:
            i = start + len(out)
            out.append(record(i, label, (answers or {}).get(label, label), split, rng))
    return out


def train_tiny(model_dir, records: list[dict], steps: int = 60, lr: float = 3e-3, seed: int = 0):
    """(model, tokenizer) after ``steps`` AdamW steps on ``records`` (assistant-only labels, batch 8)."""
    import torch

    from ftkit.chat_format import IGNORE_INDEX, tokenize_with_assistant_labels
    from ftkit.models import load_model, load_tokenizer

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(str(model_dir), padding_side="right")
    model = load_model(str(model_dir), device="cpu")
    rows = tokenize_with_assistant_labels(tokenizer, [r["messages"] for r in records], max_length=64)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id
    for _ in range(steps):
        batch = rng.sample(rows, min(8, len(rows)))
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch])
        labels = torch.tensor([r["labels"] + [IGNORE_INDEX] * (width - len(r["labels"])) for r in batch])
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tokenizer
