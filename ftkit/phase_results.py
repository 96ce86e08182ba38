"""Typed results between phases: one dataclass per phase, written as ``results.json`` and read back typed.

Each phase module defines ``<Phase>Results(PhaseResults)`` whose fields are the keys of ``results.json``'s
``results`` object (with help and units in their metadata), a ``SCHEMA_VERSION`` and ``headline()``.
``PhaseRun.finish(results)`` writes it (the file keeps its shape: phase, run_id, headline, summary, results,
findings, tell_client, next_steps, inputs, plus ``schema``); ``PhaseRun.upstream(phase)`` and :func:`load`
read it back and fail with a :class:`~ftkit.errors.PhaseFailed` naming the phase to re-run when the file was
written before typed results, by an older schema version, or lacks a field.

Bump ``SCHEMA_VERSION`` when a field is added, removed or changes meaning: downstream phases then ask for a
re-run of that phase instead of reading a default.
"""
from __future__ import annotations

import importlib
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from ftkit.errors import PhaseFailed

# phase name -> "module:Class"; imported on first use so `ftkit --help` stays fast.
RESULT_TYPES = {
    "suitability": "ftkit.suitability_phase:SuitabilityResults",
    "data_audit": "ftkit.data.phase:DataAuditResults",
    "baseline": "ftkit.baseline.phase:BaselineResults",
    "training": "ftkit.training.phase:TrainingResults",
    "evaluation": "ftkit.evaluation.phase:EvaluationResults",
    "deployment_plan": "ftkit.deployment.phase:DeploymentPlanResults",
}


def described(help: str, unit: str = "", default: Any = MISSING, **kwargs):
    """A results field with its help text and unit (``field(metadata=...)`` in one call)."""
    from dataclasses import field

    meta = {"help": help, "unit": unit}
    if default is not MISSING:
        return field(default=default, metadata=meta, **kwargs)
    return field(metadata=meta, **kwargs)


@dataclass
class PhaseResults:
    """Base class. Subclasses are dataclasses; their fields are ``results.json``'s ``results`` keys, in order."""

    PHASE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    def headline_row(self) -> dict:
        """The few numbers ``ftkit status`` and the report's phase table show."""
        raise NotImplementedError

    def to_results(self) -> dict:
        """The ``results`` object of results.json: every field, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def schema(self) -> dict:
        return {"type": type(self).__name__, "version": self.SCHEMA_VERSION}

    @property
    def payload(self) -> dict:
        """The whole results.json this was read from (empty for results built in this process)."""
        return getattr(self, "_payload", {})

    @property
    def run_id(self) -> str:
        return str(self.payload.get("run_id", ""))

    @property
    def findings(self) -> list[dict]:
        return list(self.payload.get("findings", []))

    @classmethod
    def from_payload(cls, payload: dict, slug: str = "", where: str = "") -> "PhaseResults":
        """The typed results of a results.json ``payload``; PhaseFailed naming the phase to re-run."""
        rerun = f"Re-run it: `ftkit run {slug or '<client>'} --phase {cls.PHASE}`."
        where = where or f"the latest '{cls.PHASE}' run"
        schema = payload.get("schema") if isinstance(payload, dict) else None
        if not isinstance(schema, dict) or schema.get("type") != cls.__name__:
            raise PhaseFailed(f"The results of {where} were written by an older ftkit (no typed "
                              f"{cls.__name__} schema), so later phases cannot read them safely. {rerun}")
        version = schema.get("version")
        if not isinstance(version, int) or version < cls.SCHEMA_VERSION:
            raise PhaseFailed(f"The results of {where} have {cls.__name__} schema version {version}; this ftkit "
                              f"reads version {cls.SCHEMA_VERSION}. {rerun}")
        results = payload.get("results")
        results = results if isinstance(results, dict) else {}
        values, missing = {}, []
        for f in fields(cls):
            if f.name in results:
                values[f.name] = results[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                missing.append(f.name)
        if missing:
            raise PhaseFailed(f"The results of {where} lack {', '.join(missing)} "
                              f"({cls.__name__} schema {cls.SCHEMA_VERSION}). {rerun}")
        obj = cls(**values)
        object.__setattr__(obj, "_payload", payload)
        return obj


def result_type(phase: str) -> type[PhaseResults]:
    """The results dataclass of ``phase`` (a phase name from ftkit.phases)."""
    from ftkit.phases import get_phase

    module, _, name = RESULT_TYPES[get_phase(phase).name].partition(":")
    return getattr(importlib.import_module(module), name)


def load(phase: str, payload: dict, slug: str = "", where: str = "") -> PhaseResults:
    """Typed results of ``phase`` from a results.json payload (PhaseFailed naming the phase to re-run)."""
    return result_type(phase).from_payload(payload, slug, where)


def load_or_none(phase: str, payload: dict | None) -> PhaseResults | None:
    """For readers that show 'not run yet' instead of failing (the consolidated report): None when the
    phase has not run or its results are outdated."""
    if not payload:
        return None
    try:
        return load(phase, payload)
    except PhaseFailed:
        return None
