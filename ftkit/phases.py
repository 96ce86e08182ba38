"""The phase registry: name -> number, notebook and upstream phases.

A registry (not if/elif chains) so an unknown name can list the valid ones, and a consultant can see
the whole workflow in one table.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.errors import UsageError


@dataclass(frozen=True)
class Phase:
    name: str
    number: int
    title: str
    upstream: tuple[str, ...]
    headline_keys: tuple[str, ...] = ()  # results.json headline keys shown by `ftkit status`

    @property
    def folder(self) -> str:
        """'01_suitability': the folder under phases/ and the notebook's stem."""
        return f"{self.number:02d}_{self.name}"

    @property
    def notebook(self) -> str:
        return f"{self.folder}.ipynb"


PHASES: dict[str, Phase] = {p.name: p for p in (
    Phase("suitability", 1, "Suitability", (), ("recommendation", "method", "hosting")),
    Phase("data_audit", 2, "Data audit", (), ("verdict", "n_valid", "n_train", "n_test")),
    Phase("baseline", 3, "Baseline", ("data_audit",), ("model", "headline_metric", "headline_value")),
    Phase("training", 4, "Training", ("data_audit",), ("method", "final_val_loss", "train_minutes")),
    Phase("evaluation", 5, "Evaluation", ("baseline", "training"), ("verdict", "headline_metric", "delta")),
    Phase("deployment_plan", 6, "Deployment plan", ("training", "evaluation"), ("serving", "monthly_cost_usd")),
)}


def get_phase(name: str) -> Phase:
    """Look a phase up by name, folder name ('02_data_audit') or number ('2')."""
    key = name.strip().lower().replace("-", "_")
    for phase in PHASES.values():
        if key in (phase.name, phase.folder, str(phase.number), f"{phase.number:02d}"):
            return phase
    raise UsageError(f"Unknown phase '{name}'. Valid phases, in order: {', '.join(PHASES)}.")


def ordered(names: list[str] | None = None) -> list[Phase]:
    """The named phases (all by default) in workflow order."""
    if not names:
        return sorted(PHASES.values(), key=lambda p: p.number)
    return sorted({get_phase(n).name: get_phase(n) for n in names}.values(), key=lambda p: p.number)
