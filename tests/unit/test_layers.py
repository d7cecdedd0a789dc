"""The layers: the rules, the error taxonomy and the settings load no web, storage or database."""

from __future__ import annotations

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

# Imports one broker module in a fresh interpreter and prints every module then loaded. The
# package's own __init__ is the app factory (which of course loads Flask), so it is replaced by
# an empty package: what is measured is the module and everything it imports.
_PROBE = """
import importlib, sys, types
package = types.ModuleType("broker")
package.__path__ = [sys.argv[1]]
sys.modules["broker"] = package
importlib.import_module(sys.argv[2])
print("\\n".join(sys.modules))
"""


def frameworks_loaded_by(module: str) -> set[str]:
    """The framework packages importing ``module`` loads."""
    package_dir = str(Path(broker.__file__).parent)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, package_dir, module],
        capture_output=True,
        text=True,
        check=True,
    )
    return {name.partition(".")[0] for name in result.stdout.split()} & FRAMEWORKS


@pytest.mark.parametrize("module", ["broker.domain", "broker.errors", "broker.settings"])
def test_the_rules_import_no_framework(module: str) -> None:
    assert frameworks_loaded_by(module) == set()


def test_the_probe_sees_a_framework_where_there_is_one() -> None:
    # The HTTP rendering of errors lives next to the views and does load the web stack.
    assert {"flask", "werkzeug", "marshmallow"} <= frameworks_loaded_by("broker.views.errors")
