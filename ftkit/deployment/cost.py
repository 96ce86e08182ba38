"""Monthly serving cost: self-hosted GPUs vs managed per-token pricing, and where they break even.

Self-hosted, always on: replicas x GPUs x hourly price x 730 h, with enough replicas for the volume.
Self-hosted, scale to zero: only the replica-hours the volume needs (volume / requests per replica-hour).
Managed: volume x (input tokens x input price + output tokens x output price) / 1e6.

Break-even (always on): the first replica is a fixed cost F = 730 x hourly, managed grows by c_m per request,
so they cross at V* = F / c_m, provided one replica can serve V* requests (i.e. self-hosting is cheaper per
request at full use: hourly / requests_per_hour < c_m). Otherwise managed is cheaper at every volume.

>>> ManagedPrice("m", "p", 1.0, 2.0).cost_per_request(1000, 500)
0.002
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ftkit.deployment.sizing import HOURS_PER_MONTH, Gpu, GpuOption, Workload, replicas_needed
from ftkit.errors import ConfigError

PRICES_FILE = "serving_prices.yaml"
IDLE_SHARE = 0.25  # an always-on GPU busier than this is worth keeping; less, suggest scale to zero or sharing


@dataclass(frozen=True)
class ManagedPrice:
    name: str
    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    as_of: str = ""
    source: str = ""
    note: str = ""  # what using it takes, e.g. "the fine-tune is redone on the provider's platform"

    def cost_per_request(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6


@dataclass
class PriceTable:
    gpus: list[Gpu]
    managed: list[ManagedPrice]
    path: Path

    def sources(self) -> list[dict]:
        """One row per price with its date and source, for the report's footnote."""
        rows = [{"item": f"GPU {g.name}", "price": f"${g.hourly_usd:g}/h", "provider": g.provider,
                 "as_of": g.as_of, "source": g.source} for g in self.gpus]
        rows += [{"item": m.name, "price": f"${m.input_usd_per_mtok:g} in / ${m.output_usd_per_mtok:g} out per 1M tokens",
                  "provider": m.provider, "as_of": m.as_of, "source": m.source} for m in self.managed]
        return rows


def default_prices_path(engagement_dir: str | Path | None = None) -> Path:
    """The engagement's own serving_prices.yaml when the consultant made one, else the shipped template."""
    from ftkit.resources import engagement_or_shipped

    return engagement_or_shipped(engagement_dir, PRICES_FILE)


def load_prices(path: str | Path | None = None) -> PriceTable:
    """Read and validate a price table; every problem (entry, field, value) is reported at once."""
    from ftkit.config import load_yaml

    path = Path(path) if path else default_prices_path()
    data = load_yaml(path) or {}
    problems: list[str] = []
    gpus = _entries(data, "gpus", Gpu, problems)
    managed = _entries(data, "managed", ManagedPrice, problems)
    if problems:
        raise ConfigError(problems, source=str(path))
    return PriceTable(gpus, managed, path)


def _entries(data: dict, key: str, cls, problems: list[str]) -> list:
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        problems.append(f"{key}: expected a non-empty list of entries")
        return []
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}] ({item.get('name', '?') if isinstance(item, dict) else '?'})"
        entry = _entry(item, cls, where, problems)
        if entry is not None:
            out.append(entry)
    return out


def _entry(item, cls, where: str, problems: list[str]):
    if not isinstance(item, dict):
        problems.append(f"{where}: expected a mapping, got {item!r}")
        return None
    before = len(problems)
    names = {f.name: f for f in fields(cls)}
    problems += [f"{where}.{k}: unknown field; valid: {', '.join(names)}" for k in item if k not in names]
    values = {}
    for name, fld in names.items():
        value = item.get(name)
        if fld.type in ("float", float):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                problems.append(f"{where}.{name}: expected a number >= 0, got {value!r}")
            else:
                values[name] = float(value)
        elif name == "source" and not str(value or "").startswith(("http://", "https://")):
            problems.append(f"{where}.source: every price needs the URL it was taken from, got {value!r}")
        elif (name in ("name", "as_of") or fld.default is MISSING) and not str(value or "").strip():
            problems.append(f"{where}.{name}: required ({'the date the price was read' if name == 'as_of' else 'text'})")
        else:
            values[name] = "" if value is None else str(value)  # YAML reads an unquoted 2025-06-01 as a date
    return cls(**values) if len(problems) == before else None


# -- the cost model ---------------------------------------------------------------------------------

def self_hosted_monthly(monthly_requests: float, option: GpuOption, always_on: bool = True) -> dict:
    """{replicas, gpu_hours, usd} per month for ``option`` (``n_gpus`` x one GPU type per replica)."""
    busy_replica_hours = monthly_requests / option.throughput.requests_per_hour
    if always_on:
        replicas = replicas_needed(monthly_requests, option)
        replica_hours = replicas * HOURS_PER_MONTH
    else:
        replicas = max(1, math.ceil(busy_replica_hours / HOURS_PER_MONTH - 1e-9))
        replica_hours = busy_replica_hours
    return {"replicas": replicas, "gpu_hours": replica_hours * option.n_gpus,
            "busy_share": busy_replica_hours / (replicas * HOURS_PER_MONTH),
            "usd": replica_hours * option.hourly_usd}


def managed_monthly(monthly_requests: float, price: ManagedPrice, workload: Workload) -> float:
    return monthly_requests * price.cost_per_request(workload.input_tokens, workload.output_tokens)


def break_even_requests(option: GpuOption, price: ManagedPrice, workload: Workload, always_on: bool = True) -> float | None:
    """Monthly requests above which self-hosting is cheaper; 0 = at any volume; None = never (see docstring)."""
    managed_per_request = price.cost_per_request(workload.input_tokens, workload.output_tokens)
    self_per_request = option.hourly_usd / option.throughput.requests_per_hour
    if self_per_request >= managed_per_request:
        return None
    if not always_on:
        return 0.0
    return HOURS_PER_MONTH * option.hourly_usd / managed_per_request


@dataclass
class CostComparison:
    volume: int
    self_hosted: dict  # self_hosted_monthly() + gpu label
    managed: list[dict]  # one row per managed price
    cheapest: str  # "self_hosted" or a managed price's name
    always_on: bool
    external_allowed: bool
    training: dict = field(default_factory=dict)  # deployment.training_cost.ownership(): training + a year of serving

    def to_dict(self) -> dict:
        return asdict(self)


def compare_costs(option: GpuOption, prices: PriceTable, workload: Workload, always_on: bool = True,
                  external_allowed: bool = True) -> CostComparison:
    """Self-hosted on ``option`` vs every managed price, at the workload's monthly volume."""
    volume = workload.monthly_requests
    own = {"gpu": option.label, **self_hosted_monthly(volume, option, always_on)}
    rows = []
    for price in prices.managed:
        be = break_even_requests(option, price, workload, always_on)
        rows.append({"name": price.name, "provider": price.provider, "usd": managed_monthly(volume, price, workload),
                     "usd_per_1k_requests": 1000 * price.cost_per_request(workload.input_tokens, workload.output_tokens),
                     "break_even_requests": be, "allowed": external_allowed, "as_of": price.as_of, "source": price.source,
                     "note": price.note})
    candidates = [("self_hosted", own["usd"])] + [(r["name"], r["usd"]) for r in rows if r["allowed"]]
    cheapest = min(candidates, key=lambda kv: kv[1])[0]
    return CostComparison(volume, own, rows, cheapest, always_on, external_allowed)


def volume_grid(volume: int, decades: int = 3, points_per_decade: int = 24) -> list[float]:
    """Monthly request volumes from volume / 10**decades to volume x 10**decades, evenly spaced in log."""
    centre = math.log10(max(1, volume))
    n = 2 * decades * points_per_decade
    return [10 ** (centre - decades + 2 * decades * i / n) for i in range(n + 1)]


def plot_break_even(option: GpuOption, prices: PriceTable, workload: Workload, always_on: bool = True):
    """Monthly cost against monthly requests (log-log): self-hosted steps vs managed lines; the client's
    volume marked. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt  # no matplotlib.use(): the kernel's inline backend stays active

    grid = volume_grid(workload.monthly_requests)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(grid, [max(self_hosted_monthly(v, option, always_on)["usd"], 1e-3) for v in grid], lw=2.5, color="black",
            label=f"self-hosted, {option.label} ({'always on' if always_on else 'scale to zero'})")
    for price in prices.managed:
        ax.plot(grid, [max(managed_monthly(v, price, workload), 1e-3) for v in grid], lw=1.2,
                label=f"{price.provider} {price.name}")
    ax.axvline(workload.monthly_requests, color="grey", ls="--", lw=1)
    ax.text(workload.monthly_requests, 0.03, f" this client: {workload.monthly_requests:,}/month ", rotation=90,
            va="bottom", ha="right", fontsize=8, color="grey", transform=ax.get_xaxis_transform())
    ax.set(xscale="log", yscale="log", xlabel="requests per month", ylabel="USD per month",
           title=f"Serving cost: {workload.input_tokens:.0f} in + {workload.output_tokens:.0f} out tokens per request")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def cost_rows(comparison: CostComparison) -> list[dict]:
    """The cost table: self-hosted first, then each managed option, at the client's monthly volume."""
    own = comparison.self_hosted
    rows = [{"option": f"self-hosted {own['gpu']} ({'always on' if comparison.always_on else 'scale to zero'})",
             "usd_per_month": round(own["usd"], 2), "detail": f"{own['replicas']} replica(s), {own['gpu_hours']:.0f} GPU-hours, "
             f"{own['busy_share']:.1%} busy", "break_even_requests": "", "allowed": True}]
    for r in comparison.managed:
        be = r["break_even_requests"]
        rows.append({"option": f"{r['provider']} {r['name']}", "usd_per_month": round(r["usd"], 2),
                     "detail": f"${r['usd_per_1k_requests']:.4f} per 1,000 requests (prices of {r['as_of']})",
                     "break_even_requests": "never" if be is None else f"{be:,.0f}", "allowed": r["allowed"]})
    return rows


def cost_sentence(comparison: CostComparison) -> str:
    """The cost finding: self-hosted cost and utilisation, the cheapest managed alternative and what it takes,
    and where self-hosting breaks even."""
    own = comparison.self_hosted
    text = (f"At {comparison.volume:,} requests a month, self-hosting on {own['gpu']} costs ${own['usd']:,.0f}/month "
            f"({own['busy_share']:.1%} busy).")
    if comparison.always_on and own["busy_share"] < IDLE_SHARE:
        text += (" The GPU would mostly sit idle: scale to zero (deployment.always_on: false) or share it with other "
                 "adapters (vLLM multi-LoRA).")
    allowed = [r for r in comparison.managed if r["allowed"]]
    if not allowed:
        return text + " Managed providers are excluded (compliance.allow_external_providers: false)."
    best = min(allowed, key=lambda r: r["usd"])
    text += f" The cheapest managed alternative, {best['provider']} {best['name']}, would cost ${best['usd']:,.0f}/month"
    text += f" ({best['note']})" if best["note"] else ""
    be = best["break_even_requests"]
    if be is None:
        return text + "; it is cheaper at every volume, since self-hosting costs more per request even when fully used."
    if be == 0:
        return text + "; self-hosting with scale to zero is cheaper at any volume."
    side = "above" if comparison.volume >= be else "below"
    return text + f"; self-hosting breaks even at {be:,.0f} requests a month (this client is {side} it)."
