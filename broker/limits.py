"""Per-user rate limits on the calls that cost the bucket or grant access (Flask-Limiter).

Presign, confirm and signed-URL issuance are limited per caller (the token's ``sub``), with a
moving window so bursts at a window edge cannot double the rate. The counters live in memory
for one process, or in MongoDB / Redis (``BROKER_RATE_LIMIT_STORAGE_URI``) when several
processes or hosts must share them. A breach answers 429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded

from broker.config import Settings
from broker.errors import RateLimited, error_response

F = TypeVar("F", bound=Callable[..., Any])

EXTENSION_KEY = "broker.limits"


def _caller() -> str:
    # The views below authenticate before the limit is checked, so the caller is known; an
    # unauthenticated request never reaches a limited view.
    principal = getattr(g, "principal", None)
    return f"user:{principal.sub}" if principal is not None else f"ip:{request.remote_addr}"


limiter = Limiter(
    key_func=_caller,
    strategy="moving-window",
    headers_enabled=True,
    # If the shared counter store is down, limiting must not take the API down with it.
    swallow_errors=True,
    in_memory_fallback_enabled=True,
    key_prefix="broker",
)


def _limit_for(name: str) -> Callable[[], str]:
    def current() -> str:
        settings: Settings = limiter_settings()
        return str(getattr(settings, name))

    return current


def limiter_settings() -> Settings:
    """The settings of the app handling this request."""
    from flask import current_app

    settings: Settings = current_app.extensions["broker.settings"]
    return settings


def _exempt(name: str) -> Callable[[], bool]:
    return lambda: not getattr(limiter_settings(), name)


def rate_limited(setting: str) -> Callable[[F], F]:
    """Limit a view per caller by the limit string in ``setting`` (empty: no limit).

    Views limited by the same setting share one budget (every way of signing a GET counts).
    """
    decorator = limiter.shared_limit(
        _limit_for(setting), scope=setting, exempt_when=_exempt(setting)
    )
    return cast(Callable[[F], F], decorator)


def init_limits(app: Flask, settings: Settings) -> None:
    """Bind the limiter to the app with the configured storage."""
    app.config["RATELIMIT_STORAGE_URI"] = settings.rate_limit_storage_uri
    limiter.init_app(app)

    def too_many(error: RateLimitExceeded) -> Response:
        reset_at = limiter.current_limit.reset_at if limiter.current_limit else time.time() + 1
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return error_response(
            RateLimited(f"too many requests: {error.description}", retry_after=retry_after)
        )

    app.register_error_handler(RateLimitExceeded, too_many)
