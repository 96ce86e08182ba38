"""Helpers shared by the data-audit tests (plain functions; fixtures are in conftest.py)."""
from __future__ import annotations

import json


def chat(user: str, answer: str, system: str | None = None, **extra) -> dict:
    msgs = ([{"role": "system", "content": system}] if system is not None else []) + \
        [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": msgs, **extra}


def distinct_tickets(n: int, start: int = 0) -> list[dict]:
    """n clearly different support tickets (no accidental near-duplicates), labelled in turn."""
    words = ("refund invoice parcel login password delivery kayak tent jacket boots stove filter headlamp charge "
             "voucher address account locked damaged missing late courier warranty size colour").split()
    out = []
    for i in range(start, start + n):
        picked = [words[(i * 7 + k * (i % 5 + 1)) % len(words)] for k in range(6)]
        label = ("billing", "shipping", "account")[i % 3]
        out.append(chat(f"Ticket {i}: {' '.join(picked)} number {i * 7919 % 10007} needs attention",
                        json.dumps({"category": label, "priority": "low"}), system="Classify the ticket."))
    return out
