"""docs/internals.md stays true: its module map names every module of the package, and every name it cites
(a function, class or constant of a module, an attribute of ``PhaseRun``) exists where the map says.

Read statically (ast): no module is imported, so heavy libraries stay out and a broken module still reports.
Map rows: ``| `ftkit/x.py` | job ... |`` (the backticked names are attributes of ftkit.x; several paths in one
row share the names) or ``| `ftkit/pkg/` | ... |`` (a backticked word is a module of the package, and
``module.name`` an attribute of it). A backticked text with a space, or starting with a non-identifier, is
prose (a command, a file), not a name.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ftkit

PACKAGE = Path(ftkit.__file__).parent
DOC = PACKAGE.parent / "docs" / "internals.md"
_ROW = re.compile(r"^\|\s*(?P<where>`ftkit/[^|]*)\|(?P<job>.*)\|\s*$")
_FILE = re.compile(r"\.(?:html|json|jsonl|yaml|yml|md|ipynb|csv|png|txt|log|py)$")  # `report.html` is a file
_NAME = re.compile(r"^\.?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?=\(|$|\s*->|\s*:)")


def all_modules() -> set[str]:
    """'ftkit/x.py', 'ftkit/pkg/y.py' for every module ('ftkit/pkg/__init__.py' as the package 'ftkit/pkg/';
    the top-level 'ftkit/__init__.py' as itself)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        found.add(rel[: -len("__init__.py")] if path.name == "__init__.py" and path.parent != PACKAGE else rel)
    return found


def defined_names(path: Path) -> dict[str, set[str]]:
    """Top-level names of a module file; ``Class`` -> the names its body defines (methods, fields)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    members |= {t.id for t in item.targets if isinstance(t, ast.Name)}
            names[node.name] = members
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update({t.id: set() for t in targets if isinstance(t, ast.Name)})
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update({(a.asname or a.name).split(".")[0]: set() for a in node.names})
    return names


def cited_names(text: str) -> list[str]:
    """The names in a map cell: `load_config(path)` -> load_config; `PhaseRun.open` -> PhaseRun.open."""
    names = []
    for token in re.findall(r"`([^`]+)`", text):
        match = _NAME.match(token.strip())
        if match and " " not in token.strip().split("(")[0] and not _FILE.search(match.group(0)):
            names.append(match.group(0))
    return names


def map_rows(doc: str) -> list[tuple[list[str], str]]:
    return [(re.findall(r"`(ftkit/[^`]*)`", m["where"]), m["job"]) for line in doc.splitlines()
            if (m := _ROW.match(line))]


def problems_in(doc: str) -> list[str]:
    problems, mapped = [], set()
    for paths, job in map_rows(doc):
        for where in paths:
            if not (PACKAGE.parent / where).exists():
                problems.append(f"{where}: no such module")
        existing = [p for p in paths if (PACKAGE.parent / p).exists()]
        mapped |= set(existing)
        for name in cited_names(job):
            if not any(_exists(where, name, mapped) for where in existing):
                problems.append(f"{', '.join(paths)}: cites `{name}`, which none of them defines")
    problems += [f"{m}: missing from the module map" for m in sorted(all_modules() - mapped)]
    phase_run = defined_names(PACKAGE / "phase_run.py").get("PhaseRun", set())
    api = doc.split("`PhaseRun` API", 1)[1].split("\n\n", 1)[0] if "`PhaseRun` API" in doc else ""
    problems += [f"PhaseRun API: `{n}` is not an attribute of PhaseRun" for n in cited_names(api)
                 if n.startswith(".") and n[1:].split(".")[0] not in phase_run]
    return problems


def _exists(where: str, name: str, mapped: set[str]) -> bool:
    """``name`` (maybe dotted) in module ``where``; in a package row a first part may name a submodule."""
    if where.endswith("/"):
        head, _, rest = name.partition(".")
        sub = PACKAGE.parent / where / f"{head}.py"
        if sub.is_file():
            mapped.add(f"{where}{head}.py")
            return not rest or _exists(f"{where}{head}.py", rest, mapped)
        if (PACKAGE.parent / where / head / "__init__.py").is_file():
            mapped.add(f"{where}{head}/")
            return not rest or _exists(f"{where}{head}/", rest, mapped)
        path = PACKAGE.parent / where / "__init__.py"
    else:
        path = PACKAGE.parent / where
    names = defined_names(path)
    head, _, rest = name.lstrip(".").partition(".")
    return head in names and (not rest or rest.split(".")[0] in names[head])


def test_the_module_map_names_every_module_and_only_names_that_exist():
    assert problems_in(DOC.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("row, expected", [
    ("| `ftkit/nowhere.py` | nothing |", "ftkit/nowhere.py: no such module"),
    ("| `ftkit/engagement.py` | `create_engagement()` |", "cites `create_engagement`, which none of them defines"),
    ("| `ftkit/data/` | `reader`, `nonsense` (made up) |", "ftkit/data/: cites `nonsense`"),
    ("| `ftkit/data/` | `reader.no_such_function()` |", "cites `reader.no_such_function`"),
])
def test_the_checks_catch_a_wrong_map(row, expected):
    doc = DOC.read_text(encoding="utf-8")
    assert any(expected in p for p in problems_in(doc + "\n" + row + "\n")), expected


def test_the_checks_catch_a_missing_module_and_a_wrong_phase_run_attribute():
    doc = DOC.read_text(encoding="utf-8")
    without = "\n".join(line for line in doc.splitlines() if not line.startswith("| `ftkit/lab.py`"))
    assert "ftkit/lab.py: missing from the module map" in problems_in(without)
    wrong = doc.replace("`PhaseRun` API (see `ftkit/phase_run.py`): ", "`PhaseRun` API (see `ftkit/phase_run.py`): `.nope`, ")
    assert "PhaseRun API: `.nope` is not an attribute of PhaseRun" in problems_in(wrong)
