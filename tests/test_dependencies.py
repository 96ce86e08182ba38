"""pyproject.toml declares what ftkit imports, and nothing it does not (read from the package, not guessed).

Before: ``datasets`` (which pulls pyarrow and pandas) was declared and never imported, ``datasketch`` was declared
for the package though only tests use it, while numpy, tqdm, tokenizers, nbclient and scipy were imported and
not declared.
"""
from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

import ftkit

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(ftkit.__file__).resolve().parent

# Declared and needed at run time, but run rather than imported (the reason is the comment in pyproject.toml).
RUN_NOT_IMPORTED = {"accelerate", "ipykernel", "jupyterlab"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[(]", spec.strip(), maxsplit=1)[0])


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def imported_top_level(folder: Path) -> dict[str, set[str]]:
    """Third-party top-level module -> files of ``folder`` that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for file in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (name := _dynamic_import(node)) is not None:
                names = [name]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "ftkit" and top != "__future__":
                    found.setdefault(top, set()).add(file.relative_to(folder).as_posix())
    return found


# Lazy imports by name: importlib.import_module("x") and ftkit.data.reader's _require("x", purpose)
DYNAMIC_IMPORTERS = {"import_module", "_require"}


def _dynamic_import(node: ast.AST) -> str | None:
    """The module a call imports by a literal name (or an f-string's literal prefix such as "stdnum.")."""
    if not (isinstance(node, ast.Call) and node.args):
        return None
    func = node.func
    if (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) not in DYNAMIC_IMPORTERS:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".") or None
    return None


def _distributions(modules) -> dict[str, str]:
    mapping = metadata.packages_distributions()
    out = {}
    for module in modules:
        dists = mapping.get(module)
        assert dists, f"no installed distribution provides the module '{module}'"
        out[module] = _norm(dists[0])
    return out


def test_every_import_of_the_package_is_declared():
    project = _pyproject()
    declared = {_requirement_name(s) for s in project["dependencies"]}
    extras = {_requirement_name(s) for specs in project["optional-dependencies"].values() for s in specs}
    imports = imported_top_level(PACKAGE)
    missing = {m: sorted(imports[m]) for m, dist in _distributions(imports).items()
               if dist not in declared and dist not in extras}
    assert missing == {}, f"imported by ftkit but not declared in pyproject.toml: {missing}"


def test_nothing_is_declared_that_the_package_does_not_use():
    project = _pyproject()
    used = set(_distributions(imported_top_level(PACKAGE)).values()) | RUN_NOT_IMPORTED
    unused = sorted(_requirement_name(s) for s in project["dependencies"] if _requirement_name(s) not in used)
    assert unused == [], f"declared in [project.dependencies] but never imported by ftkit: {unused}"


def test_test_only_libraries_are_not_runtime_dependencies():
    declared = {_requirement_name(s) for s in _pyproject()["dependencies"]}
    assert not declared & {"datasets", "datasketch", "pyyaml", "jsonschema", "pytest"}


def test_what_the_tests_import_is_in_the_test_extra_or_the_runtime():
    project = _pyproject()
    available = {_requirement_name(s) for s in project["dependencies"] + project["optional-dependencies"]["test"]}
    local = {p.stem for p in (REPO / "tests").rglob("*.py")}
    imports = {m: f for m, f in imported_top_level(REPO / "tests").items() if m not in local}
    dists = _distributions(imports)
    transitive = {"torch", "transformers", "peft", "huggingface-hub", "nbformat"}  # declared anyway; listed for clarity
    missing = {m: sorted(imports[m]) for m, d in dists.items() if d not in available and d not in transitive}
    assert missing == {}, f"imported by tests but not declared for them: {missing}"


def test_the_manifest_short_package_table_covers_every_declared_dependency():
    from ftkit.manifest import KEY_PACKAGES

    declared = {_requirement_name(s) for s in _pyproject()["dependencies"]}
    assert declared <= {_norm(k) for k in KEY_PACKAGES}
