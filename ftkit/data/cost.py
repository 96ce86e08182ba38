"""Training cost estimates: managed fine-tuning (billed tokens x price) and self-hosted compute (FLOPs).

Prices come from ``templates/prices.yaml`` (dated, each with its source); every estimate carries that date.

>>> auto_epochs(20, {"default_epochs": 3, "min_target_examples": 100, "max_target_examples": 25000, "min_epochs": 1, "max_epochs": 25})
5
>>> billed_tokens([100, 5000, 300], epochs=3, context_limit=4096)
13488
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ftkit.errors import ConfigError

STALE_DAYS = 180


def load_prices(path: str | Path | None = None) -> dict:
    """The price table (default: the shipped ``templates/prices.yaml``)."""
    from ftkit.config import load_yaml
    from ftkit.resources import templates_dir

    path = Path(path) if path else templates_dir() / "prices.yaml"
    table = load_yaml(path)
    if not isinstance(table, dict) or "providers" not in table or "as_of" not in table:
        raise ConfigError("needs 'as_of' and 'providers' at the top level", source=str(path))
    return table


def auto_epochs(n_examples: int, policy: dict, requested: float | None = None) -> int:
    """Epochs a provider runs: the requested number clamped to the allowed range, or the provider's automatic
    choice (target ``default_epochs``, raised/lowered so epochs x examples stays within the target range)."""
    if requested:
        return int(min(max(round(requested), policy.get("user_min_epochs", 1)), policy.get("user_max_epochs", 50)))
    epochs = policy["default_epochs"]
    lo, hi = policy.get("min_target_examples", 0), policy.get("max_target_examples", 0)
    if n_examples <= 0:
        return epochs
    if lo and n_examples * epochs < lo:
        epochs = min(policy["max_epochs"], lo // n_examples)
    elif hi and n_examples * epochs > hi:
        epochs = max(policy["min_epochs"], hi // n_examples)
    return int(epochs)


def billed_tokens(token_counts: list[int], epochs: int, context_limit: int) -> int:
    """epochs x sum(min(tokens, context_limit)): longer examples are truncated, so not billed beyond the limit."""
    return int(epochs * sum(min(t, context_limit) for t in token_counts))


def managed_estimates(token_counts: list[int], prices: dict, requested_epochs: float | None = None) -> list[dict]:
    """One row per provider model: epochs, billed tokens, USD. Token counts are the base model's; a provider's
    own tokenizer differs by roughly +-20 %, which the notes say."""
    rows = []
    for pid, provider in prices["providers"].items():
        epochs = auto_epochs(len(token_counts), provider["epochs_policy"], requested_epochs)
        for model, entry in provider["models"].items():
            tokens = billed_tokens(token_counts, epochs, entry["context_limit"])
            rows.append({"provider": pid, "model": model, "epochs": epochs, "billed_tokens": tokens,
                         "usd": round(tokens / 1e6 * entry["usd_per_1m_training_tokens"], 2),
                         "usd_per_1m": entry["usd_per_1m_training_tokens"], "as_of": entry.get("as_of", prices["as_of"]),
                         "source": provider["source"]})
    return sorted(rows, key=lambda r: r["usd"])


def self_hosted_estimates(n_params: float, token_counts: list[int], epochs: float, prices: dict) -> list[dict]:
    """FLOPs ~ 6 x N x D (D = epochs x tokens); hours = FLOPs / (peak BF16 x MFU); USD = hours x hourly price."""
    sh = prices["self_hosted"]
    tokens = epochs * sum(token_counts)
    flops = 6.0 * n_params * tokens
    rows = []
    for gpu, g in sh["gpus"].items():
        hours = flops / (g["bf16_dense_tflops"] * 1e12 * sh["mfu"]) / 3600
        rows.append({"gpu": gpu, "flops": flops, "hours": round(hours, 4), "usd": round(hours * g["usd_per_hour"], 2),
                     "memory_gb": g["memory_gb"], "as_of": g.get("as_of", prices["as_of"]), "source": g["source"]})
    return rows


def table_age_days(prices: dict, today: _dt.date | None = None) -> int:
    as_of = _dt.date.fromisoformat(str(prices["as_of"]))
    return ((today or _dt.date.today()) - as_of).days


def params_from_config(config: dict) -> float:
    """Approximate parameter count of a decoder from its config.json (embeddings + attention + MLP).

    >>> round(params_from_config({"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
    ...     "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}) / 1e6)
    135
    """
    h, v = config["hidden_size"], config["vocab_size"]
    layers, inter = config["num_hidden_layers"], config.get("intermediate_size", 4 * h)
    heads = config.get("num_attention_heads", 1)
    kv = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim", h // heads)
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * inter
    emb = v * h * (1 if config.get("tie_word_embeddings", False) else 2)
    return float(emb + layers * (attn + mlp + 2 * h) + h)


def cost_summary(token_counts: list[int], n_params: float, epochs: float, prices: dict) -> dict:
    """What the notebook shows: cheapest managed option, self-hosted on each GPU, the table's date and age."""
    managed = managed_estimates(token_counts, prices, epochs or None)
    hosted = self_hosted_estimates(n_params, token_counts, epochs or 1, prices) if n_params else []
    return {"prices_as_of": prices["as_of"], "prices_age_days": table_age_days(prices),
            "prices_stale": table_age_days(prices) > STALE_DAYS, "managed": managed, "self_hosted": hosted,
            "training_tokens_per_epoch": int(sum(token_counts)), "n_params": n_params,
            "note": "Token counts use the base model's tokenizer; a provider's tokenizer differs (roughly +-20 %). "
                    "Prices are list prices on the table's date: re-check the sources before quoting."}


__all__ = ["load_prices", "auto_epochs", "billed_tokens", "managed_estimates", "self_hosted_estimates",
           "table_age_days", "params_from_config", "cost_summary"]
