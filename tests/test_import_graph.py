"""The package's import graph, read statically (ast) from every module: no cycles, and ``ftkit.models`` stays
below the phases. Imports inside functions count too: a lazy import that closes a circle is still a circle
(it only moves the failure from import time to whichever call happens first)."""
from __future__ import annotations

import ast
from pathlib import Path

import ftkit

PACKAGE = Path(ftkit.__file__).parent
# ftkit.models loads and describes base models; the phases' machinery sits above it.
MODELS_MUST_NOT_IMPORT = ("ftkit.generation", "ftkit.metrics", "ftkit.evaluation", "ftkit.deployment")
MODELS_LAYER_EXCEPTIONS: set[str] = set()  # baseline selection moved to ftkit/baseline/


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the ftkit modules it imports anywhere in its source (``from a import b`` names module a.b when
    that is a module, else a). Importing a submodule also runs its package's ``__init__``; that implicit
    parent import is not an edge (Python initialises parents first, it cannot close a circle)."""
    mods = modules(root)

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {owner(a.name) for a in node.names if a.name.split(".")[0] == "ftkit"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                if base.split(".")[0] != "ftkit":
                    continue
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else owner(base) for a in node.names}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert found == [], "import cycles (each a set of modules that import each other): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_models_do_not_import_from_the_phases_above_them():
    graph = import_graph()
    wrong = {m: sorted(t for t in targets if t.startswith(MODELS_MUST_NOT_IMPORT))
             for m, targets in graph.items()
             if m.startswith("ftkit.models") and m not in MODELS_LAYER_EXCEPTIONS}
    assert {m: t for m, t in wrong.items() if t} == {}


def test_the_cycle_check_finds_a_lazy_circle(tmp_path):
    # The shape ftkit.models had: resolve imports tiny inside a function, tiny imports loading at top level
    # (for one helper) and loading imports resolve: a circle only through a lazy import.
    pkg = tmp_path / "ftkit"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "models" / "resolve.py").write_text("def f():\n    from ftkit.models.tiny import build\n")
    (pkg / "models" / "tiny.py").write_text("from ftkit.models.loading import quiet\n")
    (pkg / "models" / "loading.py").write_text("from ftkit.models import resolve\nfrom . import other\n")
    (pkg / "models" / "other.py").write_text("import ftkit.errors\n")
    graph = import_graph(pkg)
    assert graph["ftkit.models.loading"] == {"ftkit.models.resolve", "ftkit.models.other"}
    assert cycles(graph) == [["ftkit.models.loading", "ftkit.models.resolve", "ftkit.models.tiny"]]
