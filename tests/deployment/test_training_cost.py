"""Managed or self-hosted with training counted: measured training cost beside managed fine-tuning, over a year."""
from __future__ import annotations

from ftkit.data.cost import load_prices, managed_estimates
from ftkit.deployment import training_cost as tc

COMPARISON = {"self_hosted": {"gpu": "L4", "usd": 600.0},
              "managed": [{"name": "gpt-4.1-nano (fine-tuned)", "provider": "OpenAI", "usd": 40.0, "allowed": True},
                          {"name": "Llama 3.1 8B + LoRA (serverless)", "provider": "Together AI", "usd": 35.0,
                           "allowed": True},
                          {"name": "4B-16B base + LoRA (serverless)", "provider": "Fireworks AI", "usd": 30.0,
                           "allowed": True}]}
MEASURED = {"run_id": "R1", "cost_usd": 1.5, "device_hours": 0.5, "device": "NVIDIA L4",
            "rate": {"name": "L4", "hourly_usd": 3.0, "as_of": "2025-06-01"}}


def managed_training(n_examples=500, tokens=400):
    return managed_estimates([tokens] * n_examples, load_prices(), 3)


def test_managed_serving_options_get_their_providers_fine_tuning_price():
    training = managed_training()
    nano = tc.managed_training_for(COMPARISON["managed"][0], training)
    assert nano["provider"] == "openai" and nano["model"].startswith("gpt-4.1-nano")
    together = tc.managed_training_for(COMPARISON["managed"][1], training)
    assert together["provider"] == "together"
    assert together["usd"] == min(r["usd"] for r in training if r["provider"] == "together")
    assert tc.managed_training_for(COMPARISON["managed"][2], training) is None  # no Fireworks fine-tuning price


def test_the_year_counts_measured_training_and_serving():
    o = tc.ownership(COMPARISON, managed_training(), [], MEASURED, retrain_every_months=3)
    own = o["rows"][0]
    assert own["measured"] and own["training_usd"] == 1.5 and "measured: training run R1" in own["training_source"]
    assert own["first_year_usd"] == 4 * 1.5 + 12 * 600.0  # 4 trainings, 12 months of serving
    nano = o["rows"][1]
    assert nano["first_year_usd"] == round(4 * nano["training_usd"] + 12 * 40.0, 2)
    assert o["rows"][3]["first_year_usd"] is None  # Fireworks: no training price, not a candidate
    assert o["cheapest"] == min((r for r in o["rows"] if r["first_year_usd"] is not None),
                                key=lambda r: r["first_year_usd"])["option"]
    f = tc.ownership_finding(o)
    assert f.code == "deployment.ownership" and "measured" in f.message and "cheaper over the year" in f.message


def test_expensive_managed_training_can_make_self_hosting_the_cheapest():
    big = managed_training(n_examples=200_000, tokens=2000)  # fine-tuning gets dear at this size
    cheap_serving = {**COMPARISON, "self_hosted": {"gpu": "L4", "usd": 30.0}}
    o = tc.ownership(cheap_serving, big, [], MEASURED, retrain_every_months=1)
    assert o["trainings_per_year"] == 12 and o["cheapest"] == "self-hosted L4"
    assert "cheapest allowed option once training is counted" in tc.ownership_finding(o).message


def test_without_a_measured_run_the_audit_estimate_is_used_and_said():
    estimates = [{"gpu": "L4", "usd": 2.0}, {"gpu": "H100-SXM", "usd": 3.0}]
    o = tc.ownership(COMPARISON, [], estimates, None, 3)
    assert o["rows"][0]["training_usd"] == 2.0 and "estimate" in o["rows"][0]["training_source"]
    none = tc.ownership(COMPARISON, [], [], None, 3)
    assert "No measured training run" in tc.ownership_finding(none).message
