"""The layers: the rules, the error taxonomy and the settings load no web, storage or database,
and importing the package itself loads nothing until the app factory is asked for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import broker

FRAMEWORKS = frozenset(
    {
        "flask",
        "werkzeug",
        "flask_jwt_extended",
        "jwt",
        "marshmallow",
        "pymongo",
        "bson",
        "boto3",
        "botocore",
        "prometheus_client",
    }
)

# Imports one broker module in a fresh interpreter and prints every module then loaded: the
# module, the package's __init__ and everything they import.
_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
print("\\n".join(sys.modules))
"""
REPO = Path(broker.__file__).resolve().parents[1]


def frameworks_loaded_by(module: str) -> set[str]:
    """The framework packages importing ``module`` loads."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return {name.partition(".")[0] for name in result.stdout.split()} & FRAMEWORKS


@pytest.mark.parametrize(
    "module",
    [
        "broker",
        "broker.domain",
        "broker.errors",
        "broker.settings",
        "broker.pagination",
        "broker.imageinfo",
        "broker.variants.spec",
        "broker.sliding_window",
    ],
)
def test_the_rules_import_no_framework(module: str) -> None:
    assert frameworks_loaded_by(module) == set()


def test_the_variant_renderer_loads_libvips_but_no_web_stack() -> None:
    # The render child process imports broker.variants.render: it pays for pyvips only.
    assert frameworks_loaded_by("broker.variants.render") == set()


def test_the_app_factory_is_there_when_asked_for() -> None:
    from broker import create_app
    from broker.app import create_app as factory

    assert create_app is factory


def test_the_probe_sees_a_framework_where_there_is_one() -> None:
    # The HTTP rendering of errors lives next to the views and does load the web stack.
    assert {"flask", "werkzeug", "marshmallow"} <= frameworks_loaded_by("broker.http.errors")


PACKAGE = REPO / "broker"


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module's own import statements name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


def importers_of(package: str) -> set[str]:
    """The broker modules (paths relative to the repository) that import ``package``."""
    return {
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        if package in imported_packages(path)
    }


def test_only_the_bucket_facade_imports_the_s3_client() -> None:
    assert importers_of("boto3") | importers_of("botocore") == {"broker/storage.py"}


def test_only_the_db_package_imports_the_mongodb_driver() -> None:
    # devservers.py only pings the embedded test server it starts for the demo and the tests.
    drivers = importers_of("pymongo") | importers_of("bson")
    assert {path for path in drivers if not path.startswith("broker/db/")} == {
        "broker/devservers.py"
    }


USE_CASES = sorted(
    {*PACKAGE.glob("*/service.py"), PACKAGE / "uploads" / "sweep.py"}
    | {PACKAGE / "images" / "downloads.py", PACKAGE / "quota.py"}
)


@pytest.mark.parametrize("path", USE_CASES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_use_cases_reach_the_web_and_the_drivers_only_through_the_container(path: Path) -> None:
    # They take the Broker as an argument and speak in domain dataclasses; views parse the
    # request and serialize the answer, the repositories and the bucket talk to the drivers.
    assert imported_packages(path) & FRAMEWORKS == set()
