"""Presigned-URL image broker: browsers PUT straight into a private bucket and display through
short-lived signed GETs; the broker signs, verifies and records, and never carries the bytes.

``from broker import create_app`` gives the app factory (:mod:`broker.app`). It is loaded on
first use, so importing a pure module (``broker.domain``, ``broker.variants.spec``) does not
load Flask, boto3 and pymongo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from broker.app import create_app

        return create_app
    raise AttributeError(f"module 'broker' has no attribute {name!r}")
