"""Per-user rate limits on the calls that cost the bucket or grant access.

Presign, confirm, signed-URL issuance and the signing of multipart parts are limited per caller
(the token's ``sub``); public links, which need no token, per client address (behind
``BROKER_TRUSTED_PROXIES`` proxies, the address they forwarded). Each limited view counts its
request with the app's :class:`~broker.ratelimiter.RateLimiter` (counters all processes share,
by default a sliding window leased from MongoDB, see ``broker/ratelimiter.py``), with limits
parsed once; routes without a limit pay nothing. A breach answers 429 ``rate_limited`` with
``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from typing import Any, TypeVar, cast

from flask import g, request
from limits import RateLimitItem, parse_many

from broker.errors import RateLimited
from broker.extension import current_broker
from broker.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _caller() -> str:
    # The limited API views authenticate first, so the caller is known; the views that need no
    # token (public links) count per client address.
    principal = getattr(g, "principal", None)
    return f"user:{principal.sub}" if principal is not None else f"ip:{request.remote_addr}"


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
    broker = current_broker()
    items = _parsed(limit.limits(broker.settings))
    if not items:
        return
    caller = _caller()
    for item in items:
        retry_after = broker.rate_limiter.hit(item, limit.name, caller)
        if retry_after is not None:
            raise RateLimited(f"too many requests: {item}", retry_after=retry_after)


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
