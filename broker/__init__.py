"""Presigned-URL image broker: browsers PUT straight into a private bucket and display through
short-lived signed GETs; the broker signs, verifies and records, and never carries the bytes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_cors import CORS

from broker.auth import init_auth
from broker.db import Mongo
from broker.limits import init_limits
from broker.caches import LookupCache, SignedUrlMemo
from broker.observability import init_observability
from broker.service import Broker, policy_from_settings
from broker.settings import Settings, load_settings
from broker.storage import S3
from broker.views.errors import register_error_handlers
from broker.views.request_head import check_request_head

mongo = Mongo()
s3 = S3()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from ``test_config`` alone when given."""
    app = Flask(__name__)
    source: Mapping[str, Any] = (
        os.environ if test_config is None else {"BROKER_ENV": "test", **test_config}
    )
    settings = load_settings(source)
    app.config.update(
        TESTING=settings.mode == "test",
        # Bodies are small JSON documents; anything bigger is refused before it is parsed.
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the contract's field order
    app.extensions["broker.settings"] = settings

    init_observability(app, settings)
    register_error_handlers(app)
    app.before_request(check_request_head)
    init_auth(app, settings)
    mongo.init_app(app, settings)
    s3.init_app(app, settings)
    app.extensions["broker"] = Broker(
        settings=settings,
        policy=policy_from_settings(settings),
        db=mongo.repositories_for(app),
        bucket=s3.bucket_for(app),
        lookups=LookupCache(settings.lookup_cache_size, settings.lookup_cache_ttl),
        urls=SignedUrlMemo(settings.lookup_cache_size, settings.signed_url_window),
    )
    _init_cors(app, settings)
    init_limits(app, settings)

    from broker import cli
    from broker.views import admin, config, images, ops

    app.register_blueprint(ops.bp)
    app.register_blueprint(config.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(admin.bp)
    cli.register(app)
    return app


def _init_cors(app: Flask, settings: Settings) -> None:
    # Tokens travel in the Authorization header, never cookies, so credentials stay off.
    CORS(
        app,
        origins=list(settings.cors_origins),
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["Retry-After", "X-Request-ID"],
        methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        max_age=600,
        supports_credentials=False,
    )
