"""One way to reach the app's services: ``current_broker()``, with a clear error when it cannot."""

from __future__ import annotations

import pytest
from flask import Flask

from broker.extension import Broker, current_broker, init_app
from broker.settings import load_settings

# Connections open on first use, so building the services here touches no server.
SETTINGS = {
    "BROKER_ENV": "test",
    "MONGODB_URI": "mongodb://127.0.0.1:1/unit",
    "BROKER_S3_BUCKET": "unit",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def test_the_bound_services_are_the_current_apps() -> None:
    app = Flask(__name__)
    broker = Broker.from_settings(load_settings(SETTINGS))
    init_app(app, broker)
    with app.app_context():
        assert current_broker() is broker


def test_outside_an_app_context_it_says_so() -> None:
    with pytest.raises(RuntimeError, match="needs an application context"):
        current_broker()


def test_an_app_without_the_broker_says_how_to_bind_it() -> None:
    with Flask(__name__).app_context(), pytest.raises(RuntimeError, match="not initialised"):
        current_broker()


def test_each_app_reaches_its_own() -> None:
    first, second = Flask("first"), Flask("second")
    init_app(first, Broker.from_settings(load_settings(SETTINGS)))
    init_app(second, Broker.from_settings(load_settings({**SETTINGS, "BROKER_S3_BUCKET": "two"})))
    with first.app_context():
        assert current_broker().bucket.name == "unit"
    with second.app_context():
        assert current_broker().bucket.name == "two"
