"""No policy in notebooks: every phase notebook is a thin driver of its phase module (ftkit/<phase>/phase.py).

Parses every notebook's code cells and fails on what would freeze policy in a consultant's fork: a literal
severity, a comparison with a numeric literal (a threshold), a finding written in a cell, too many code lines or
too large a share of decision lines (if / else / comparisons / boolean logic).
"""
from __future__ import annotations

import ast
import json

import pytest

from ftkit.findings import SEVERITIES
from ftkit.resources import notebooks_dir

NOTEBOOKS = sorted(notebooks_dir().glob("*.ipynb"))
MAX_CODE_LINES = 80  # non-blank, non-comment code lines per notebook
MAX_DECISION_SHARE = 0.10  # share of code lines that hold a decision
DECISION_NODES = (ast.If, ast.IfExp, ast.Compare, ast.BoolOp, ast.While, ast.Match)


def code_cells(path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def code_lines(source: str) -> list[int]:
    return [i for i, line in enumerate(source.splitlines(), 1) if line.strip() and not line.strip().startswith("#")]


def decision_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, DECISION_NODES):
            lines.add(node.lineno)
        elif isinstance(node, ast.comprehension) and node.ifs:
            lines.update(n.lineno for n in node.ifs)
    return lines


def is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def policy_problems(source: str) -> list[str]:
    """What in one code cell is policy: severities, numeric thresholds, findings written inline."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in SEVERITIES:
            problems.append(f"line {node.lineno}: literal severity {node.value!r}")
        if isinstance(node, ast.Compare) and any(is_number(n) for side in [node.left, *node.comparators]
                                                 for n in ast.walk(side)):
            problems.append(f"line {node.lineno}: comparison with a numeric literal (a threshold)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "finding":
            problems.append(f"line {node.lineno}: a finding written in the cell (return it from the phase module)")
    return problems


def test_the_checker_catches_policy():
    """The checks above fail on the kind of cell the redesign removed (so a pass means something)."""
    bad = ('run.finding("info" if rate <= 0.02 else "warning", "evaluation.runaways", f"{n} ran on")\n'
           'if len(regs) > 0.05 * n:\n    sev = "blocking"\n')
    problems = policy_problems(bad)
    assert any("literal severity 'info'" in p for p in problems)
    assert any("'blocking'" in p for p in problems)
    assert sum("numeric literal" in p for p in problems) == 2
    assert any("finding written" in p for p in problems)
    assert policy_problems("run.record(evaluation.stopping(c, prompts, new_preds))") == []
    assert decision_lines(ast.parse("x = 1\nif x:\n    y = [a for a in b if a]\n")) == {2, 3}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_policy_in_notebook_cells(path):
    problems = [f"cell {i}: {p}" for i, src in enumerate(code_cells(path)) for p in policy_problems(src)]
    assert problems == [], f"{path.name} holds policy; move it into the phase module:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_short_and_mostly_calls(path):
    n_code = n_decisions = 0
    for src in code_cells(path):
        n_code += len(code_lines(src))
        n_decisions += len(decision_lines(ast.parse(src)))
    assert n_code <= MAX_CODE_LINES, f"{path.name}: {n_code} code lines (at most {MAX_CODE_LINES})"
    assert n_decisions / n_code < MAX_DECISION_SHARE, f"{path.name}: {n_decisions} of {n_code} lines decide"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_without_a_stray_repr(path):
    """The last cell's last statement is not an expression whose value would print (e.g. a PosixPath)."""
    last = ast.parse(code_cells(path)[-1]).body[-1]
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        func = last.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        assert name in ("finish", "close", "record"), f"{path.name} ends with {name}(...), which may print a repr"
