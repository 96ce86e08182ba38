"""Cost estimates from the dated price table; the data card."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

from ftkit.data.cost import auto_epochs, billed_tokens, cost_summary, load_prices, managed_estimates
from ftkit.data.datacard import ASK_CLIENT, render_data_card


def test_price_table_is_dated_and_sourced():
    prices = load_prices()
    dt.date.fromisoformat(prices["as_of"])
    for provider in prices["providers"].values():
        assert urlparse(provider["source"]).scheme == "https"
        for entry in provider["models"].values():
            dt.date.fromisoformat(entry["as_of"])
            assert entry["usd_per_1m_training_tokens"] > 0 and entry["context_limit"] > 0
    for gpu in prices["self_hosted"]["gpus"].values():
        assert urlparse(gpu["source"]).scheme == "https" and gpu["bf16_dense_tflops"] > 0


def test_epochs_are_clamped_like_openai():
    policy = load_prices()["providers"]["openai"]["epochs_policy"]
    assert auto_epochs(10, policy) == 10  # 10 x 3 < 100 -> 100 // 10
    assert auto_epochs(1, policy) == 25  # capped at max_epochs
    assert auto_epochs(1000, policy) == 3
    assert auto_epochs(20000, policy) == 1  # 20000 x 3 > 25000 -> max(1, 25000 // 20000)
    assert auto_epochs(1000, policy, requested=80) == 50  # a requested value is clamped to the allowed range


def test_billed_tokens_truncate_at_the_context_limit():
    assert billed_tokens([10, 100_000], epochs=2, context_limit=65536) == 2 * (10 + 65536)
    rows = managed_estimates([1000] * 200, load_prices())
    openai_mini = next(r for r in rows if r["model"].startswith("gpt-4o-mini"))
    assert openai_mini["billed_tokens"] == 3 * 200_000 and openai_mini["usd"] == round(0.6 * 3.0, 2)


def test_cost_summary_self_hosted_uses_6nd():
    summary = cost_summary([1000] * 100, 1e9, 2, load_prices())
    row = summary["self_hosted"][0]
    assert row["flops"] == 6 * 1e9 * 2 * 100_000 and summary["prices_as_of"]


def test_data_card_answers_from_stats():
    stats = {"n_records": 10, "n_valid": 9, "n_errors": 1, "n_warnings": 2, "splits": {"train": 7, "validation": 1, "test": 1},
             "labels": {"n_labels": 2, "counts": {"a": 6, "b": 3}, "imbalance_ratio": 2.0},
             "duplicates": {"exact_extra_copies": 1, "near_groups": 0, "conflict_groups": 0}, "pii": {"email": 1}}
    card = render_data_card(stats, {"client": "Acme", "objective": "triage tickets", "task_type": "classification",
                                    "files": ["t.jsonl"], "frameworks": ["gdpr"], "verdict": "ready_with_warnings"})
    assert "10 records delivered" in card and "2 labels" in card and "email in 1 record" in card
    assert "triage tickets" in card and ASK_CLIENT in card and "gdpr" in card
