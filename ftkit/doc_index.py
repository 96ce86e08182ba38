"""The documentation index: what auditors ask for, mapped to where an engagement keeps the evidence.

The mapping is data (``templates/report/documentation_index.yaml``: model card headings, Datasheets-for-Datasets
question groups, EU AI Act Annex IV points, NIST AI RMF functions) so it can be extended without code. This
module validates it and resolves each row against one engagement: links to the files that exist, and a status
that says honestly why evidence is missing (phase not run yet, file not produced) or out of ftkit's scope.

>>> row = {"scope": "client", "client_part": "signs it", "evidence": []}
>>> resolve_row(row, lambda at, files: ("not_run", None, files[0]))["status"]
'out_of_scope'
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Callable

from ftkit.errors import ConfigError
from ftkit.resources import templates_dir

INDEX_FILE = "documentation_index.yaml"
SCOPES = ("ftkit", "shared", "client")
PLACES = ("engagement", "report")  # besides phase names

STATUS_LABELS = {"present": "present", "missing": "missing", "out_of_scope": "out of scope: client's responsibility"}


def index_path() -> Path:
    return templates_dir() / "report" / INDEX_FILE


def load_index(path: str | Path | None = None) -> list[dict]:
    """The frameworks of the index, validated; every problem is reported at once (ConfigError)."""
    from ftkit.yamlio import YAMLSyntaxError, safe_load

    path = Path(path) if path else index_path()
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLSyntaxError) as err:
        raise ConfigError([f"cannot read the documentation index: {err}"], source=str(path)) from err
    frameworks = (data or {}).get("frameworks") if isinstance(data, dict) else None
    if not isinstance(frameworks, list) or not frameworks:
        raise ConfigError(["'frameworks' must be a non-empty list"], source=str(path))
    problems = [p for i, fw in enumerate(frameworks) for p in _framework_problems(fw, f"frameworks[{i}]")]
    keys = [fw.get("key") for fw in frameworks if isinstance(fw, dict)]
    problems += [f"framework key {k!r} is used twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    if problems:
        raise ConfigError(problems, source=str(path))
    return [_normalise(fw) for fw in frameworks]


def _framework_problems(fw, where: str) -> list[str]:
    if not isinstance(fw, dict):
        return [f"{where} must be a mapping with key, title, source, rows"]
    problems = [f"{where}.{k} is missing or empty" for k in ("key", "title", "source") if not fw.get(k)]
    rows = fw.get("rows")
    if not isinstance(rows, list) or not rows:
        return problems + [f"{where}.rows must be a non-empty list"]
    for i, row in enumerate(rows):
        problems += _row_problems(row, f"{where}.rows[{i}]")
    return problems


def _row_problems(row, where: str) -> list[str]:
    from ftkit.phases import PHASES

    if not isinstance(row, dict):
        return [f"{where} must be a mapping"]
    problems = [f"{where}.{k} is missing or empty" for k in ("ref", "requirement") if not row.get(k)]
    if row.get("scope") not in SCOPES:
        problems.append(f"{where}.scope is {row.get('scope')!r}; use one of {', '.join(SCOPES)}")
    if row.get("scope") in ("shared", "client") and not row.get("client_part"):
        problems.append(f"{where}.client_part must say what the client provides (scope {row.get('scope')})")
    evidence = row.get("evidence")
    if not isinstance(evidence, list):
        return problems + [f"{where}.evidence must be a list (may be empty for scope client)"]
    if not evidence and row.get("scope") != "client":
        problems.append(f"{where}.evidence is empty: only scope 'client' rows may have no evidence")
    for j, item in enumerate(evidence):
        at = item.get("at") if isinstance(item, dict) else None
        if at not in PLACES and at not in PHASES:
            problems.append(f"{where}.evidence[{j}].at is {at!r}; use {', '.join(PLACES)} or a phase "
                            f"({', '.join(PHASES)})")
            continue
        problems += [f"{where}.evidence[{j}].file {f!r}: {why}" for f in _files(item) for why in _file_problems(at, f)]
    return problems


def _file_problems(at: str, file) -> list[str]:
    if not isinstance(file, str) or not file:
        return ["must be a non-empty string (or a list of them)"]
    if at == "report":
        return [] if file.startswith("#") else ["a report anchor must start with '#'"]
    parts = PurePosixPath(file).parts
    if PurePosixPath(file).is_absolute() or ".." in parts:
        return ["must be relative, inside the folder (no leading '/' or '..')"]
    return []


def _files(item: dict) -> list:
    files = item.get("file")
    return list(files) if isinstance(files, list) else [files]


def _normalise(fw: dict) -> dict:
    rows = [{"ref": str(r["ref"]), "requirement": " ".join(str(r["requirement"]).split()), "scope": r["scope"],
             "client_part": str(r.get("client_part") or ""),
             "evidence": [{"at": e["at"], "files": _files(e), "what": str(e.get("what") or "")} for e in r["evidence"]]}
            for r in fw["rows"]]
    return {"key": fw["key"], "title": fw["title"], "source": " ".join(str(fw["source"]).split()), "rows": rows}


# A locator answers, for one evidence item (at, candidate files): (state, href, label) with state "found",
# "absent" (its phase ran but did not write the file) or "not_run" (its phase has no succeeded run yet).
Locator = Callable[[str, list], "tuple[str, str | None, str]"]


def resolve_row(row: dict, locate: Locator) -> dict:
    """Links and status for one row: present, missing (why), or out of scope (client's responsibility)."""
    links, not_run, absent = [], [], []
    for item in row["evidence"]:
        state, href, label = locate(item["at"], item["files"])
        if state == "not_run":
            not_run.append(item["at"])
        elif state == "absent":
            absent.append(label)
        links.append({"href": href, "label": label, "what": item["what"],
                      "note": {"not_run": "not run yet", "absent": "not produced"}.get(state, "")})
    if row["scope"] == "client":
        status, reason = "out_of_scope", ""
    elif not_run:
        status, reason = "missing", "phase not run yet: " + ", ".join(dict.fromkeys(not_run))
    elif absent:
        status, reason = "missing", "not produced by the latest run: " + ", ".join(absent)
    else:
        status, reason = "present", ""
    return {**row, "links": links, "status": status, "status_label": STATUS_LABELS[status], "reason": reason}


def engagement_locator(engagement, report_dir: Path) -> Locator:
    """Resolve evidence against ``engagement``; hrefs are relative to ``report_dir`` (where index.html lives)."""
    import os

    from ftkit.phases import get_phase

    def locate(at: str, files: list):
        if at == "report":
            return "found", files[0], files[0]
        if at == "engagement":
            base, prefix = engagement.path, ""
        else:
            base, prefix = engagement.latest_run_dir(get_phase(at)), get_phase(at).folder + "/"
            if base is None:
                return "not_run", None, prefix + files[0]
        for rel in files:
            if (base / rel).exists():
                return "found", os.path.relpath(base / rel, report_dir).replace(os.sep, "/"), prefix + rel
        return "absent", None, prefix + files[0]

    return locate


def documentation_index(engagement, report_dir: Path, path: str | Path | None = None) -> list[dict]:
    """Every framework of the index with its rows resolved against ``engagement``, plus status counts."""
    locate = engagement_locator(engagement, report_dir)
    resolved = []
    for fw in load_index(path):
        rows = [resolve_row(r, locate) for r in fw["rows"]]
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUS_LABELS}
        resolved.append({**fw, "rows": rows, "counts": counts})
    return resolved
