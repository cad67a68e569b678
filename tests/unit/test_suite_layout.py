"""Helpers tests share live in tests/support/; a conftest only wires fixtures.

A helper imported from a conftest ties suites together through pytest's plugin machinery
(and imports that conftest a second time, as a plain module).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
    return modules


def test_no_test_module_imports_from_a_conftest():
    offenders = [
        f"{path.relative_to(TESTS)}: {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in imported_modules(path)
        if module.rpartition(".")[2] == "conftest"
    ]
    assert offenders == [], "import shared helpers from tests/support/ instead"
