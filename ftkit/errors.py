"""ftkit's own exception types.

Every error a user can cause is one of these, with a message that names the file, line or field,
the bad value and what to do. The CLI turns them into a one-paragraph message and an exit code;
anything else is a bug in ftkit and is shown as one.
"""
from __future__ import annotations


class FtkitError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is what the CLI returns for it."""

    exit_code = 1


class UsageError(FtkitError):
    """The command line itself is wrong (unknown phase, malformed -p, bad client name)."""

    exit_code = 2


class ConfigError(FtkitError):
    """engagement.yaml or a parameter is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[str] | str, source: str = "engagement.yaml"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} has {len(self.problems)} problem(s):\n{lines}")


class DataError(FtkitError):
    """A data file cannot be read or used. Name the file (and line/field where known) and the fix."""


class PhaseFailed(FtkitError):
    """A phase notebook run did not succeed; the run folder keeps the partial notebook as evidence."""


class EngagementLocked(FtkitError):
    """Another ftkit process is running phases of the same engagement."""


class MissingDependency(FtkitError):
    """An optional package is needed for this path. The message carries the pip command."""

    def __init__(self, package: str, purpose: str, install: str | None = None):
        self.package = package
        hint = install or f"pip install {package}"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed. Install it with: {hint}")
