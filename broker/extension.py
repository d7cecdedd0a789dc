"""The container of the app's services and the one way to reach it.

:class:`Broker` holds everything a use case needs: the settings, the upload policy, the MongoDB
repositories, the bucket, the in-process caches and the rate limits' counters.
:meth:`Broker.from_settings` is the one place it is built, :func:`init_app` binds it to an app,
and :func:`current_broker` returns the current app's (as ``flask_sqlalchemy`` does for its
extension). Use cases take the container as their first argument; only views and commands call
:func:`current_broker`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from broker import db
from broker.caches import LookupCache, SignedUrlMemo, TokenCache
from broker.domain import UploadPolicy
from broker.ratelimiter import RateLimiter, rate_limiter
from broker.settings import Settings
from broker.storage import Bucket

_EXTENSION = "broker"


@dataclass(frozen=True)
class Broker:
    """Everything a use case needs: settings, policy, repositories, the bucket, caches, counters."""

    settings: Settings
    policy: UploadPolicy
    db: db.Repositories
    bucket: Bucket
    lookups: LookupCache
    urls: SignedUrlMemo
    tokens: TokenCache
    rate_limiter: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Broker:
        """Build the services the settings describe (connections open lazily, on first use)."""
        repositories = db.connect(settings)
        return cls(
            settings=settings,
            policy=UploadPolicy(
                allowed_types=settings.allowed_types,
                max_upload_bytes=settings.max_upload_bytes,
                kinds=settings.kinds,
                max_pixels=settings.max_pixels,
                min_width=settings.min_width,
                min_height=settings.min_height,
                max_width=settings.max_width,
                max_height=settings.max_height,
            ),
            db=repositories,
            bucket=Bucket(settings),
            lookups=LookupCache(settings.lookup_cache_size, settings.lookup_cache_ttl),
            urls=SignedUrlMemo(settings.lookup_cache_size, settings.signed_url_window),
            tokens=TokenCache(),
            rate_limiter=rate_limiter(settings, repositories),
        )


def init_app(app: Flask, broker: Broker) -> None:
    """Bind ``broker`` to ``app``: from then on :func:`current_broker` returns it there."""
    app.extensions[_EXTENSION] = broker


def current_broker() -> Broker:
    """The current app's services; RuntimeError outside an app context or before init_app."""
    try:
        extensions = current_app.extensions
    except RuntimeError:
        raise RuntimeError(
            "current_broker() needs an application context: call it while handling a request "
            "or a command, or inside 'with app.app_context():'"
        ) from None
    try:
        broker: Broker = extensions[_EXTENSION]
    except KeyError:
        raise RuntimeError(
            "the broker is not initialised on this app: the factory must call "
            "init_app(app, Broker.from_settings(settings))"
        ) from None
    return broker
