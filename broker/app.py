"""The app factory: settings from the environment, the services, the blueprints, the hooks."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from broker import admin, extension, images, ops, sharing, uploads
from broker.auth import init_auth
from broker.errors import Unavailable
from broker.extension import Broker
from broker.http.cors import init_cors
from broker.http.errors import register_error_handlers
from broker.http.framework import BrokerFlask
from broker.http.request_head import check_request_head
from broker.observability import init_observability
from broker.settings import load_settings
from broker.variants import cli as variants

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from ``test_config`` alone when given."""
    # Named after the package: its static/ folder, and "broker" as the app's logger name.
    app = BrokerFlask("broker")
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
    if settings.trusted_proxies:
        # Only as many hops as the operator put there: a client cannot forge its address (the
        # per-address limit of public links) or the host public links are built on.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]
    services = Broker.from_settings(settings)
    extension.init_app(app, services)

    init_observability(app, settings)
    register_error_handlers(app)
    app.before_request(check_request_head)
    init_auth(app, settings)
    init_cors(app, settings)

    # Each feature package owns a blueprint: its routes and its (top-level) commands.
    for feature in (ops, uploads, images, sharing, admin, variants):
        app.register_blueprint(feature.bp)
    if settings.mode != "test":
        # Tests prepare their databases themselves.
        _create_indexes(services)
    return app


def _create_indexes(broker: Broker) -> None:
    # The broker creates its MongoDB indexes itself at start-up. Best effort: with MongoDB down
    # the app starts anyway, and the first /images request tries again (IndexBootstrap).
    try:
        broker.db.indexes.ensure()
    except Unavailable:
        log.warning("MongoDB indexes not created at start-up; the first /images request retries")
