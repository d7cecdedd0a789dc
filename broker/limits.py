"""Per-user rate limits on the calls that cost the bucket or grant access.

Presign, confirm, signed-URL issuance and the signing of multipart parts are limited per caller
(the token's ``sub``); public links, which need no token, per client address (behind
``BROKER_TRUSTED_PROXIES`` proxies, the address they forwarded). Each uses a moving window so
bursts at a window edge cannot double the rate. Flask-Limiter owns the storage: in memory for
one process, or MongoDB / Redis (``BROKER_RATE_LIMIT_STORAGE_URI``) when several processes or
hosts must share the counters. The check itself goes straight to its rate-limiting strategy
with limits parsed once: these views need none of Flask-Limiter's per-request resolution of
scopes and exemptions. A breach answers 429 ``rate_limited`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, TypeVar, cast

from flask import Flask, g, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many

from broker.errors import RateLimited
from broker.extension import current_broker
from broker.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)


def _caller() -> str:
    # The limited API views authenticate first, so the caller is known; the views that need no
    # token (public links) count per client address.
    principal = getattr(g, "principal", None)
    return f"user:{principal.sub}" if principal is not None else f"ip:{request.remote_addr}"


limiter = Limiter(
    key_func=_caller,
    strategy="moving-window",
    # If the shared counter store is down, limiting must not take the API down with it.
    swallow_errors=True,
    in_memory_fallback_enabled=True,
    key_prefix="broker",
)


@dataclass(frozen=True)
class Limit:
    """One per-caller budget: the name its counters are kept under, and its limits' setting."""

    name: str
    limits: Callable[[Settings], str]


# Every way of signing a GET shares one budget. (The names are the counters' keys in a shared
# store, kept as they were so an upgrade does not reset them.)
PRESIGN = Limit("rate_limit_presign", lambda settings: settings.rate_limit_presign)
CONFIRM = Limit("rate_limit_confirm", lambda settings: settings.rate_limit_confirm)
SIGN = Limit("rate_limit_sign", lambda settings: settings.rate_limit_sign)
# Signing and listing a multipart upload's parts: many calls per upload, each one cheap.
PARTS = Limit("rate_limit_parts", lambda settings: settings.rate_limit_parts)
# Public links: per client address, apart from the signing budget of any user.
PUBLIC = Limit("rate_limit_public", lambda settings: settings.rate_limit_public)


@cache
def _parsed(limits: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limits)) if limits else ()


def check_rate(limit: Limit) -> None:
    """Count this request against the caller's budget of ``limit``; RateLimited when over."""
    items = _parsed(limit.limits(current_broker().settings))
    if not items:
        return
    caller = _caller()
    try:
        for item in items:
            if not limiter.limiter.hit(item, limit.name, caller):
                reset_at = limiter.limiter.get_window_stats(item, limit.name, caller).reset_time
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise RateLimited(f"too many requests: {item}", retry_after=retry_after)
    except RateLimited:
        raise
    except Exception as e:  # the counter store failed: serve rather than refuse everyone
        log.warning("rate limit storage unavailable, not limiting: %s", e)


def rate_limited(limit: Limit) -> Callable[[F], F]:
    """Limit a view per caller by ``limit`` (an empty setting: no limit).

    Views limited by the same Limit share one budget (every way of signing a GET counts).
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            check_rate(limit)
            return view(*args, **kwargs)

        return cast(F, limited)

    return decorator


def init_limits(app: Flask, settings: Settings) -> None:
    """Bind the limiter (and so its counter storage) to the app."""
    app.config["RATELIMIT_STORAGE_URI"] = settings.rate_limit_storage_uri
    limiter.init_app(app)
