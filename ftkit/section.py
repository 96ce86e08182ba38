"""The phase-module contract: what one notebook section gets back from its library function.

A section function (``ftkit.<phase>.phase.<section>(inputs...)``) computes everything a notebook section shows
and decides: its tables, its figures and its findings (severity, code, message, fix), plus the values later
sections need (``value``). The notebook cell only calls it and hands it to ``run.record(section)``, which shows
the tables and notes, saves the figures and records the findings, in that order. Severities, thresholds and
finding sentences therefore live in the library, where tests reach them (``tests/<phase>/test_phase.py``).

>>> s = Section(findings=[finding("info", "demo.ok", "all good")])
>>> [f.code for f in s.findings], s.severities()
(['demo.ok'], ['info'])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ftkit.findings import Finding


def finding(severity: str, code: str, message: str, next_step: str = "") -> Finding:
    """One finding (validated severity). Section functions build their findings with this."""
    return Finding(severity, code, message, next_step)


def as_findings(items: Iterable) -> list[Finding]:
    """Findings from ``Finding`` objects or ``(severity, code, message[, next_step])`` tuples; None skipped."""
    return [i if isinstance(i, Finding) else Finding(*i) for i in items if i]


@dataclass
class Table:
    """A table to show: rows (dicts), optional column order and caption."""

    rows: list[dict]
    columns: list[str] | None = None
    caption: str = ""


@dataclass
class Section:
    """What one notebook section shows and records. ``value``: what later cells of the notebook need."""

    findings: list[Finding] = field(default_factory=list, metadata={"help": "recorded in results.json, in order"})
    tables: list[Table] = field(default_factory=list, metadata={"help": "shown in order"})
    figures: list[tuple[str, Any]] = field(default_factory=list,
                                           metadata={"help": "(name, matplotlib figure): saved as figures/<name>.png"})
    notes: list[str] = field(default_factory=list, metadata={"help": "plain lines printed under the tables"})
    value: Any = field(default=None, metadata={"help": "the section's result, for the next sections"})

    def table(self, rows: list[dict], columns: list[str] | None = None, caption: str = "") -> "Section":
        self.tables.append(Table(list(rows), columns, caption))
        return self

    def add(self, *items) -> "Section":
        """Append findings (``Finding`` or tuples); None is skipped so optional rules can return None."""
        self.findings.extend(as_findings(items))
        return self

    def severities(self) -> list[str]:
        return [f.severity for f in self.findings]

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def by_code(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)
