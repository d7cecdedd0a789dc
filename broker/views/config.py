"""``GET /config``: the limits clients check before uploading (types, size, kinds, lifetimes)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from broker import schemas
from broker.auth import authenticate
from broker.extension import current_broker
from broker.uploads.service import client_config

bp = Blueprint("config", __name__)


@bp.before_request
def _authenticate() -> None:
    authenticate()


@bp.get("/config")
def config() -> Response:
    """What the broker accepts, so browsers can refuse a file before presigning it."""
    return jsonify(schemas.client_config_response.dump(client_config(current_broker())))
