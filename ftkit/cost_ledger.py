"""What each run actually cost: the device it held, for how long, at a dated, sourced rate.

Every phase run made by ``ftkit run`` gets a ``cost.json`` in its run folder (written by the runner before the
manifest, so it is hashed like every output): device type and name, devices held, wall time, device-hours and
USD at the rate of ``templates/device_prices.yaml`` (or the engagement's own ``device_prices.yaml``). The training
search prices its trials with the same table. The consolidated report adds the ledger up against
``budget.total_usd``.

Cost = wall seconds / 3600 x devices x hourly rate. A GPU run is charged per GPU held; a CPU run at the table's
CPU-machine rate; a GPU the table does not know at its stated ``unknown_gpu`` rate (named, never silent).

>>> rate = DeviceRate("cpu", "CPU machine", 0.2, "2025-06-01", "https://example.com", True)
>>> run_cost(1800, rate)["cost_usd"], run_cost(1800, rate, devices=2)["device_hours"]
(0.1, 1.0)
>>> spend_finding(79.0, 100.0).severity, spend_finding(80.0, 100.0).severity, spend_finding(100.0, 100.0).severity
('info', 'warning', 'blocking')
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ftkit.errors import ConfigError
from ftkit.findings import Finding

PRICES_FILE = "device_prices.yaml"
COST_FILE = "cost.json"  # in every run folder made by `ftkit run`
SPEND_WARN_SHARE = 0.8  # share (0-1) of budget.total_usd spent at which the report warns
SPEND_OVER_SHARE = 1.0  # share (0-1) of budget.total_usd spent at which the report blocks (budget used up)


@dataclass(frozen=True)
class DeviceRate:
    """The rate a device is charged at, and where that rate comes from."""

    kind: str  # "gpu" or "cpu"
    name: str  # the table's entry
    hourly_usd: float  # per device
    as_of: str
    source: str
    in_table: bool  # False: a GPU no entry matched, charged at the stated unknown-GPU rate

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DevicePrices:
    gpus: list[dict]  # name, match (regexes), hourly_usd, as_of, source, ...
    unknown_gpu: dict
    cpu: dict
    as_of: str
    path: Path

    def rate_for(self, device_name: str) -> DeviceRate:
        """The rate of a device named as nvidia-smi names it ("NVIDIA H100 80GB HBM3"), or "cpu"."""
        if device_name.lower() == "cpu":
            return _rate("cpu", self.cpu, True)
        for entry in self.gpus:
            if any(re.search(pattern, device_name, re.IGNORECASE) for pattern in entry["match"]):
                return _rate("gpu", entry, True)
        return _rate("gpu", self.unknown_gpu, False)


def _rate(kind: str, entry: dict, in_table: bool) -> DeviceRate:
    return DeviceRate(kind, str(entry["name"]), float(entry["hourly_usd"]), str(entry["as_of"]), str(entry["source"]),
                      in_table)


def prices_path(engagement_dir: str | Path | None = None) -> Path:
    """The engagement's own device_prices.yaml when the consultant made one, else the shipped table."""
    from ftkit.resources import engagement_or_shipped

    return engagement_or_shipped(engagement_dir, PRICES_FILE)


def load_device_prices(path: str | Path | None = None) -> DevicePrices:
    """Read and check the table; every problem (entry, field, value) is reported at once."""
    from ftkit.config import load_yaml

    path = Path(path) if path else prices_path()
    data = load_yaml(path) or {}
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with gpus, unknown_gpu and cpu", source=str(path))
    gpus = data.get("gpus")
    if not isinstance(gpus, list):
        problems.append("gpus: expected a list of entries")
        gpus = []
    for i, entry in enumerate(gpus):
        where = f"gpus[{i}]"
        problems += _entry_problems(entry, where)
        match = entry.get("match") if isinstance(entry, dict) else None
        if not isinstance(match, list) or not match or not all(isinstance(m, str) for m in match):
            problems.append(f"{where}.match: expected a list of patterns, got {match!r}")
        else:
            for pattern in match:
                try:
                    re.compile(pattern)
                except re.error as err:
                    problems.append(f"{where}.match: {pattern!r} is not a regular expression ({err})")
    for key in ("unknown_gpu", "cpu"):
        problems += _entry_problems(data.get(key), key)
    if problems:
        raise ConfigError(problems, source=str(path))
    return DevicePrices(gpus, data["unknown_gpu"], data["cpu"], str(data.get("as_of", "")), path)


def _entry_problems(entry, where: str) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping with name, hourly_usd, as_of and source, got {entry!r}"]
    problems = []
    price = entry.get("hourly_usd")
    if not isinstance(price, (int, float)) or isinstance(price, bool) or price < 0:
        problems.append(f"{where}.hourly_usd: expected a number >= 0 (USD per device-hour), got {price!r}")
    if not str(entry.get("source") or "").startswith(("http://", "https://")):
        problems.append(f"{where}.source: every rate needs the URL it was taken from, got {entry.get('source')!r}")
    for name in ("name", "as_of"):
        if not str(entry.get(name) or "").strip():
            problems.append(f"{where}.{name}: required")
    return problems


def current_device() -> str:
    """The device this machine's runs hold: the first visible GPU's name (nvidia-smi), or "cpu". No torch import."""
    from ftkit.manifest import hardware

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = hardware().get("gpus") or []
    if not gpus or (visible is not None and visible.strip() in ("", "-1")):
        return "cpu"
    return str(gpus[0]["name"])


def run_cost(seconds: float, rate: DeviceRate, devices: int = 1) -> dict:
    """Device-hours and USD of ``seconds`` of wall time on ``devices`` devices at ``rate``, computed from the
    recorded (rounded) wall seconds so that an auditor re-performs the figures from cost.json alone."""
    seconds = round(max(0.0, seconds), 3)
    hours = seconds / 3600 * max(1, devices)
    return {"wall_seconds": seconds, "devices": max(1, devices), "device_hours": round(hours, 9),
            "cost_usd": round(hours * rate.hourly_usd, 9), "rate": rate.to_dict()}


def record_run_cost(run_dir: Path, engagement_dir: Path, phase: str, status: str, seconds: float,
                    devices: int = 1) -> dict:
    """Write ``cost.json`` for one run (atomically) and return it."""
    from ftkit.fsutil import atomic_write_json

    device = current_device()
    path = prices_path(engagement_dir)
    rate = load_device_prices(path).rate_for(device)
    try:
        table = Path(path).resolve().relative_to(Path(engagement_dir).resolve()).as_posix()
    except ValueError:
        table = f"ftkit: templates/{PRICES_FILE}"
    entry = {"phase": phase, "run_id": Path(run_dir).name, "status": status, "device": device,
             **run_cost(seconds, rate, devices), "prices_table": table}
    search = _search_spend(Path(run_dir))
    if search:
        entry["search"] = search  # part of this run's cost, not on top of it
    atomic_write_json(Path(run_dir) / COST_FILE, entry)
    return entry


def _search_spend(run_dir: Path) -> dict | None:
    """The training search's share of a run (search/search_summary.json), or None when no search ran."""
    from ftkit.fsutil import read_json

    path = run_dir / "search" / "search_summary.json"
    try:
        summary = read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None
    if not summary:
        return None
    spent = summary.get("spent") or {}
    return {"trials": summary.get("finished"), "cost_usd": spent.get("cost_usd"),
            "device_hours": spent.get("device_hours")}


def devices_held(run_dir: Path, phase: str) -> int:
    """Devices a run held: training's processes per machine (one GPU each), else 1."""
    if phase != "training":
        return 1
    from ftkit.fsutil import read_json

    try:
        settings = read_json(Path(run_dir) / "results.json")["results"]["settings"]
        return max(1, int(settings.get("num_processes", 1)))
    except (OSError, ValueError, KeyError, TypeError):
        return 1


# -- the engagement's ledger -------------------------------------------------------------------------------

def ledger(engagement) -> dict:
    """Every run of every phase with its cost (runs before the ledger existed: listed, not priced), and totals."""
    from ftkit.fsutil import read_json
    from ftkit.phases import ordered

    rows, unpriced = [], []
    for phase in ordered():
        for run_id in engagement.run_ids(phase):
            path = engagement.runs_dir(phase) / run_id / COST_FILE
            if not path.is_file():
                unpriced.append({"phase": phase.name, "run_id": run_id})
                continue
            try:
                entry = read_json(path)
            except (OSError, ValueError):
                unpriced.append({"phase": phase.name, "run_id": run_id})
                continue
            rows.append({"phase": entry.get("phase", phase.name), "run_id": run_id, "status": entry.get("status", ""),
                         "device": entry.get("device", ""), "device_hours": entry.get("device_hours", 0.0),
                         "cost_usd": entry.get("cost_usd", 0.0), "rate": (entry.get("rate") or {}).get("name", ""),
                         "hourly_usd": (entry.get("rate") or {}).get("hourly_usd"),
                         "as_of": (entry.get("rate") or {}).get("as_of", ""),
                         "search_usd": (entry.get("search") or {}).get("cost_usd")})
    by_phase: dict[str, float] = {}
    for r in rows:
        by_phase[r["phase"]] = by_phase.get(r["phase"], 0.0) + float(r["cost_usd"] or 0.0)
    return {"rows": rows, "unpriced": unpriced, "total_usd": round(sum(by_phase.values()), 9),
            "device_hours": round(sum(float(r["device_hours"] or 0.0) for r in rows), 9),
            "by_phase": {k: round(v, 9) for k, v in by_phase.items()}}


def measured_training_cost(engagement, run_id: str | None = None) -> dict | None:
    """cost.json of a training run (default: the latest succeeded one), or None when it has none."""
    from ftkit.fsutil import read_json

    run_id = run_id or engagement.latest_run_id("training")
    path = engagement.runs_dir("training") / run_id / COST_FILE if run_id else None
    if path is None or not path.is_file():
        return None
    return read_json(path)


def spend_finding(total_usd: float, budget_usd: float) -> Finding:
    """The engagement's spend against budget.total_usd: warning from SPEND_WARN_SHARE, blocking from SPEND_OVER_SHARE."""
    if budget_usd <= 0:
        return Finding("info", "budget.not_set", f"The runs so far cost ${total_usd:,.2f}; budget.total_usd is not "
                       f"set, so there is nothing to compare with.", "Set budget.total_usd in engagement.yaml.")
    share = total_usd / budget_usd
    text = f"The runs so far cost ${total_usd:,.2f}, {100 * share:.0f} % of the ${budget_usd:,.2f} budget."
    if share >= SPEND_OVER_SHARE:
        return Finding("blocking", "budget.exceeded", text + " The budget is used up.",
                       "Agree more budget with the client before the next run, or stop here.")
    if share >= SPEND_WARN_SHARE:
        return Finding("warning", "budget.nearly_spent", text + f" Less than {100 * (1 - SPEND_WARN_SHARE):.0f} % is left.",
                       "Plan the remaining runs against what is left (training.search.budget_usd caps a search).")
    return Finding("info", "budget.spend", text, "")
