"""The suite's own layout: helpers are shared through ``tests/support`` or fixtures, never by
importing a conftest module or another test module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support import REPO


def imported_modules(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, with ``from x import y`` giving both x and x.y."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def imports_of_the_suite() -> Iterator[tuple[str, str]]:
    """(file, imported module) for every Python file of tests/ and bench/."""
    for folder in ("tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for module in imported_modules(path):
                yield str(path.relative_to(REPO)), module


def test_no_module_imports_a_conftest() -> None:
    offenders = [
        (path, module)
        for path, module in imports_of_the_suite()
        if module.split(".")[-1] == "conftest"
    ]
    assert offenders == []


def test_no_module_imports_a_test_module() -> None:
    offenders = [
        (path, module)
        for path, module in imports_of_the_suite()
        if module.startswith("tests.") and module.split(".")[-1].startswith("test_")
    ]
    assert offenders == []


def test_the_checks_see_imports_of_every_form(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import tests.api.conftest\n"
        "from tests.hostile.conftest import Flow\n"
        "from tests.faults import conftest\n"
        "from tests.api import test_wsgi\n"
    )
    modules = set(imported_modules(probe))
    assert {"tests.api.conftest", "tests.hostile.conftest", "tests.faults.conftest"} <= modules
    assert "tests.api.test_wsgi" in modules
