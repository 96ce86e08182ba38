"""Findings: plain-language statements computed from a client's results, with a severity.

Every phase section ends with one or more findings; they land in results.json so the consolidated
report can list every finding and next step of the engagement in one place.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "blocking")


@dataclass(frozen=True)
class Finding:
    """One finding. ``message`` states what was found with the client's own numbers; ``next_step`` what to do.

    >>> Finding("warning", "too_long", "41 examples (6.8 %) exceed 2,048 tokens", "raise max_seq_length").severity
    'warning'
    """

    severity: str = field(metadata={"help": "info | warning | blocking"})
    code: str = field(metadata={"help": "stable machine-readable code, e.g. 'data.too_long'"})
    message: str = field(metadata={"help": "what was found, with numbers"})
    next_step: str = field(default="", metadata={"help": "what to do about it"})

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding.severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict:
        return asdict(self)
