"""What the layers of DESIGN.md leave to each other, checked on the source: the library returns data
and only the command line prints; the centralized baseline is named in one place."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "simcode"


def _modules() -> dict[str, ast.Module]:
    return {str(path.relative_to(PACKAGE)): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def test_only_the_command_line_prints():
    printing = sorted(name for name, tree in _modules().items() if name != "cli.py"
                      for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print")
    assert printing == []


def test_centralized_is_named_once():
    """`code.name: centralized` is one constant (simcode.codes.CENTRALIZED), not a string in every module."""
    naming = sorted(name for name, tree in _modules().items() for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and node.value == "centralized")
    assert naming == ["codes/__init__.py"]
