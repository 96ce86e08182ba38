"""The cost ledger: the device price table, each run's cost.json (hashed), spend against budget.total_usd."""
from __future__ import annotations

import pytest

from ftkit import cost_ledger
from ftkit.errors import ConfigError
from ftkit.fsutil import read_json


def test_shipped_table_is_dated_sourced_and_matches_nvidia_names():
    prices = cost_ledger.load_device_prices()
    assert prices.as_of and all(g["source"].startswith("https://") for g in prices.gpus)
    cases = {"NVIDIA H100 80GB HBM3": "H100", "NVIDIA A100-SXM4-80GB": "A100-80GB", "NVIDIA A100-SXM4-40GB": "A100-40GB",
             "NVIDIA A10G": "A10G", "NVIDIA A10": "A10", "NVIDIA L4": "L4", "NVIDIA L40S": "L40S"}
    for device, entry in cases.items():
        rate = prices.rate_for(device)
        assert (rate.name, rate.kind, rate.in_table) == (entry, "gpu", True), device
    unknown = prices.rate_for("NVIDIA H200")
    assert not unknown.in_table and unknown.hourly_usd == max(g["hourly_usd"] for g in prices.gpus)
    cpu = prices.rate_for("cpu")
    assert cpu.kind == "cpu" and 0 < cpu.hourly_usd < min(g["hourly_usd"] for g in prices.gpus)


def test_a_broken_table_names_every_entry_and_field(tmp_path):
    bad = tmp_path / "device_prices.yaml"
    bad.write_text("gpus:\n  - {name: X, match: ['(('], hourly_usd: -1, as_of: '2025-01-01', source: 'shop'}\n"
                   "cpu: {name: cpu, hourly_usd: 0.1, as_of: '2025-01-01', source: https://example.com}\n")
    with pytest.raises(ConfigError) as err:
        cost_ledger.load_device_prices(bad)
    text = str(err.value)
    assert "gpus[0].hourly_usd" in text and "-1" in text and "gpus[0].source" in text
    assert "gpus[0].match" in text and "unknown_gpu: expected a mapping" in text


def test_run_cost_is_wall_time_times_devices_times_rate():
    rate = cost_ledger.DeviceRate("gpu", "H100", 3.0, "2025-06-01", "https://x", True)
    c = cost_ledger.run_cost(1200, rate, devices=2)
    assert c["device_hours"] == pytest.approx(2 / 3) and c["cost_usd"] == pytest.approx(2.0)


@pytest.mark.parametrize("spent, severity, code", [(0.0, "info", "budget.spend"), (79.99, "info", "budget.spend"),
                                                   (80.0, "warning", "budget.nearly_spent"),
                                                   (99.99, "warning", "budget.nearly_spent"),
                                                   (100.0, "blocking", "budget.exceeded"),
                                                   (130.0, "blocking", "budget.exceeded")])
def test_spend_findings_at_80_and_100_percent(spent, severity, code):
    f = cost_ledger.spend_finding(spent, 100.0)
    assert (f.severity, f.code) == (severity, code)
    assert cost_ledger.spend_finding(spent, 0).code == "budget.not_set"


def test_every_run_gets_a_hashed_cost_json_and_the_report_totals_them(make_engagement, monkeypatch):
    from engagement_helpers import fork_notebook
    from ftkit import yamlio
    from ftkit.reports import build_engagement_report
    from ftkit.runner import run_phases
    from ftkit.verify import verify_engagement

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # priced as a CPU machine, whatever this host has
    engagement = make_engagement()
    data = yamlio.safe_load(engagement.config_path.read_text())
    data.setdefault("budget", {})["total_usd"] = 1e-9  # any run at all uses this budget up
    engagement.config_path.write_text(yamlio.dump(data))
    fork_notebook(engagement, "01_suitability", ["from ftkit.phase_run import PhaseRun\n"
                  "run = PhaseRun.open('suitability', engagement_dir, run_dir)\nrun.finish({'ok': 1})"])
    outcomes = run_phases(engagement, ["suitability"], progress=False)
    for o in outcomes:
        entry = read_json(o.run_dir / "cost.json")
        assert entry["device"] == "cpu" and entry["rate"]["kind"] == "cpu" and entry["devices"] == 1
        assert entry["cost_usd"] == pytest.approx(entry["wall_seconds"] / 3600 * entry["rate"]["hourly_usd"], abs=1e-8)
        assert "cost.json" in read_json(o.run_dir / "manifest.json")["outputs"]
    assert verify_engagement(engagement)[0] == []
    (engagement.runs_dir("suitability") / "20000101T000000Z-before").mkdir()  # a run from before the ledger
    book = cost_ledger.ledger(engagement)
    assert [r["run_id"] for r in book["rows"]] == [outcomes[0].run_id]
    assert book["total_usd"] == pytest.approx(read_json(outcomes[0].run_dir / "cost.json")["cost_usd"])
    assert book["unpriced"] == [{"phase": "suitability", "run_id": "20000101T000000Z-before"}]
    html = build_engagement_report(engagement).read_text()
    assert 'id="summary-spend"' in html and "budget.exceeded" in html
