"""Sizing and cost arithmetic against hand-computed cases, and the dated price table."""
from __future__ import annotations

import pytest

from ftkit.deployment.cost import (ManagedPrice, PriceTable, break_even_requests, compare_costs, load_prices,
                                   managed_monthly, plot_break_even, self_hosted_monthly)
from ftkit.deployment.sizing import (GIB, Gpu, GpuOption, ModelShape, Workload, gpus_needed, memory_plan,
                                     model_shape_from_folder, size_deployment, throughput)
from ftkit.errors import ConfigError

# 1B parameters, 16 layers, 8 KV heads of 64 dims: 2 x 16 x 8 x 64 x 2 bytes = 32,768 bytes of KV per token.
SHAPE = ModelShape(parameters=1_000_000_000, layers=16, kv_heads=8, head_dim=64, max_context=4096)
GPU = Gpu("T", memory_gib=24, bandwidth_gb_s=1000, bf16_tflops=100, hourly_usd=2.0)
WORK = Workload(input_tokens=500, output_tokens=100, context_length=2048, concurrency=4, monthly_requests=1_000_000)
PRICE = ManagedPrice("m", "p", input_usd_per_mtok=1.0, output_usd_per_mtok=2.0, as_of="2025-01-01", source="https://x")

# By hand: a decoding step reads 2e9 bytes of bf16 weights + 4 sequences x 550 tokens (500 in + 100/2 out on
# average) x 32,768 bytes of KV = 2,072,089,600 bytes, at 60 % of 1000 GB/s -> 0.0034534827 s per step.
STEP_S = 2_072_089_600 / 6e11
PREFILL_S_PER_TOKEN = 2e9 / (100e12 * 0.4)  # 2 x parameters FLOPs at 40 % of 100 TFLOPS = 5e-5 s
REQUEST_S = 500 * PREFILL_S_PER_TOKEN + 100 * STEP_S / 4  # 0.1113370667 s of GPU time per request
PER_HOUR = 3600 / REQUEST_S  # 32,334.4 requests per GPU-hour


def test_kv_cache_of_a_real_model_config():
    """Llama-3.1-8B: 32 layers, 8 KV heads of 128 dims -> the well-known 128 KiB of fp16 KV per token."""
    config = {"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
              "max_position_embeddings": 131072, "vocab_size": 128256, "intermediate_size": 14336,
              "tie_word_embeddings": False}
    shape = ModelShape.from_config(config, parameters=8_030_261_248)
    assert shape.kv_bytes_per_token == 128 * 1024 and shape.head_dim == 128
    plan = memory_plan(shape, "bf16", context_length=8192, concurrency=16)
    assert plan.kv_cache_gib == pytest.approx(16.0)  # 128 KiB x 8192 x 16 = 16 GiB
    assert plan.weights_gib == pytest.approx(8_030_261_248 * 2 / GIB)


def test_memory_by_dtype_by_hand():
    plan = memory_plan(SHAPE, "bf16", 2048, 4)
    assert plan.weights_gib == pytest.approx(2e9 / 2 ** 30)  # 1.8626 GiB
    assert plan.kv_cache_gib == pytest.approx(0.25)  # 32,768 x 2048 x 4 bytes
    assert plan.total_gib == pytest.approx(2e9 / 2 ** 30 + 0.25 + 1.5)
    assert memory_plan(SHAPE, "int8", 2048, 4).weights_gib == pytest.approx(1e9 / 2 ** 30)
    # int4 with group size 128: half a byte per weight + an fp16 scale and zero per 128 weights
    assert memory_plan(SHAPE, "int4", 2048, 4).weights_gib == pytest.approx(1e9 * 0.53125 / 2 ** 30)
    with pytest.raises(ConfigError, match="serving_dtype"):
        memory_plan(SHAPE, "int3", 2048, 4)


def test_gpus_needed_uses_90_percent_and_tensor_parallel_steps():
    assert gpus_needed(21.6, GPU) == 1  # 0.9 x 24 = 21.6 GiB usable
    assert gpus_needed(21.7, GPU) == 2
    assert gpus_needed(50.0, GPU) == 4  # 3 GPUs would do, but tensor parallel goes 1, 2, 4, 8
    assert gpus_needed(200.0, GPU) is None


def test_throughput_by_hand():
    t = throughput(SHAPE, "bf16", GPU, 1, WORK)
    assert t.decode_step_s == pytest.approx(STEP_S)
    assert t.decode_tokens_per_s == pytest.approx(4 / STEP_S)
    assert t.prefill_tokens_per_s == pytest.approx(20_000)
    assert t.gpu_seconds_per_request == pytest.approx(REQUEST_S)
    assert t.requests_per_hour == pytest.approx(PER_HOUR)
    assert t.latency_s == pytest.approx(500 * PREFILL_S_PER_TOKEN + 100 * STEP_S)
    assert any("60%" in a for a in t.assumptions)
    # 2-way tensor parallel halves the step to 1.7 ms, below the 3 ms engine floor: the floor applies, and
    # prefill halves to 2.5e-5 s per token -> 500 x 2.5e-5 + 100 x 0.003 / 4 = 0.0875 s per request
    two = throughput(SHAPE, "bf16", GPU, 2, WORK)
    assert two.decode_step_s == pytest.approx(0.003)
    assert two.requests_per_hour == pytest.approx(3600 / 0.0875)


def test_small_models_hit_the_engine_overhead_floor():
    small = ModelShape(parameters=1_000_000, layers=2, kv_heads=1, head_dim=16)
    t = throughput(small, "bf16", GPU, 1, WORK)
    assert t.decode_step_s == pytest.approx(0.003)  # 2 MB of weights would take 3 us: the 3 ms floor applies
    assert t.per_stream_tokens_per_s == pytest.approx(1 / 0.003)


def test_gpu_choice_is_the_cheapest_that_fits():
    small = Gpu("small", memory_gib=4, bandwidth_gb_s=300, bf16_tflops=50, hourly_usd=0.5)  # 3.6 GiB usable
    big = Gpu("big", memory_gib=8, bandwidth_gb_s=600, bf16_tflops=100, hourly_usd=0.8)
    tiny = Gpu("tiny", memory_gib=0.2, bandwidth_gb_s=100, bf16_tflops=10, hourly_usd=0.1)
    plan = size_deployment(SHAPE, "bf16", WORK, [small, big, tiny])  # needs 3.61 GiB
    assert (plan.chosen.gpu.name, plan.chosen.n_gpus) == ("big", 1)  # $0.80/h beats 2 x small = $1.00/h
    assert plan.too_small == ["tiny"]
    assert [o.label for o in plan.options] == ["big", "2 x small"]
    assert size_deployment(SHAPE, "bf16", WORK, [small, big], preferred="SMALL").chosen.label == "2 x small"
    with pytest.raises(ConfigError, match="big, small"):
        size_deployment(SHAPE, "bf16", WORK, [small, big], preferred="H200")


def test_model_shape_from_the_tiny_model_folder(tiny_model_dir):
    shape = model_shape_from_folder(tiny_model_dir)
    assert (shape.layers, shape.kv_heads, shape.head_dim) == (2, 2, 16)
    assert 100_000 < shape.parameters < 400_000


def option() -> GpuOption:
    return GpuOption(GPU, 1, throughput(SHAPE, "bf16", GPU, 1, WORK))


def test_self_hosted_and_managed_monthly_cost_by_hand():
    always = self_hosted_monthly(1_000_000, option(), always_on=True)
    assert always["replicas"] == 1 and always["usd"] == pytest.approx(730 * 2.0)  # 1e6 / 32,334 = 31 busy hours
    assert always["busy_share"] == pytest.approx(1_000_000 / PER_HOUR / 730)
    scaled = self_hosted_monthly(1_000_000, option(), always_on=False)
    assert scaled["usd"] == pytest.approx(1_000_000 / PER_HOUR * 2.0)  # $61.85
    assert self_hosted_monthly(3e9, option())["replicas"] == 128  # 3e9 / 32,334 / 730 = 127.1 -> 128
    assert managed_monthly(1_000_000, PRICE, WORK) == pytest.approx(700.0)  # (500 x $1 + 100 x $2) / 1e6 x 1e6


def test_break_even_by_hand():
    # one always-on GPU costs 730 x $2 = $1,460 a month; managed costs $0.0007 a request
    assert break_even_requests(option(), PRICE, WORK) == pytest.approx(1460 / 0.0007)
    assert break_even_requests(option(), PRICE, WORK, always_on=False) == 0.0
    dear = GpuOption(Gpu("dear", 24, 1000, 100, hourly_usd=1000.0), 1, option().throughput)
    assert break_even_requests(dear, PRICE, WORK) is None  # $0.031 a request even at full use


def test_compare_costs_picks_the_cheapest_allowed_option():
    table = PriceTable([GPU], [PRICE], path=None)
    assert compare_costs(option(), table, WORK).cheapest == "m"  # $700 managed vs $1,460 always-on
    assert compare_costs(option(), table, WORK, always_on=False).cheapest == "self_hosted"
    assert compare_costs(option(), table, WORK, external_allowed=False).cheapest == "self_hosted"


def test_break_even_chart_draws_every_option():
    table = PriceTable([GPU], [PRICE, ManagedPrice("n", "q", 0.1, 0.1, "2025-01-01", "https://y")], path=None)
    fig = plot_break_even(option(), table, WORK)
    assert len(fig.axes[0].get_lines()) == 1 + 2 + 1  # self-hosted, two managed, the client's volume
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_the_shipped_price_table_is_dated_and_sourced():
    table = load_prices()
    assert len(table.gpus) >= 4 and len(table.managed) >= 3
    for row in table.sources():
        assert row["as_of"][:2] == "20" and row["source"].startswith("https://")


def test_a_bad_price_table_reports_every_problem(tmp_path):
    path = tmp_path / "serving_prices.yaml"
    path.write_text("gpus:\n  - {name: X, memory_gib: 24, bandwidth_gb_s: 300, bf16_tflops: 100, hourly_usd: -1,"
                    " as_of: 2025-01-01, source: ''}\nmanaged:\n  - {name: Y, provider: P, input_usd_per_mtok: 1,"
                    " output_usd_per_mtok: 2, as_of: '', source: 'https://p', colour: red}\n")
    with pytest.raises(ConfigError) as info:
        load_prices(path)
    text = "\n".join(info.value.problems)
    assert "gpus[0] (X).hourly_usd" in text and "gpus[0] (X).source" in text
    assert "managed[0] (Y).as_of" in text and "managed[0] (Y).colour: unknown field" in text
