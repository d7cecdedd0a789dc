"""What runs before every request of the image API (``/images…``), whichever feature serves it."""

from __future__ import annotations

from broker.auth import authenticate
from broker.extension import current_broker


def image_api_request() -> None:
    """Authenticate the caller, then make sure the indexes exist (once per process)."""
    authenticate()
    # The unique indexes hold confirm's and the primary flag's invariants; the app factory
    # tries to create them at start-up, and until it or a request has, this request does.
    current_broker().db.indexes.ensure()
