"""Operations: liveness, readiness and the OpenAPI document (no token needed)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, jsonify

from broker import schemas
from broker.errors import Unavailable
from broker.extension import current_broker
from broker.http.errors import error_response
from broker.openapi import openapi_document

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the process is up."""
    return jsonify(schemas.status_response.dump({"status": "ok"}))


@bp.get("/readyz")
def readyz() -> Response:
    """200 when MongoDB and S3 both answer, else 503 with what failed."""
    broker = current_broker()
    checks = {"mongodb": "ok", "s3": "ok"}
    # Both gateways report an unreachable dependency as Unavailable (and count it in metrics).
    for name, ping in (("mongodb", broker.db.ping), ("s3", broker.bucket.ping)):
        try:
            ping()
        except Unavailable as e:
            log.warning("readiness: %s unavailable: %s", name, e.message)
            checks[name] = "unavailable"
    if all(value == "ok" for value in checks.values()):
        return jsonify(schemas.status_response.dump({"status": "ok", "checks": checks}))
    # Not ready is an error like any other (the envelope), plus the per-dependency checks.
    response = error_response(Unavailable("not ready", details={"checks": checks}))
    body = response.get_json()
    response.set_data(json.dumps({**body, "status": "unavailable", "checks": checks}))
    return response


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of every endpoint."""
    return jsonify(openapi_document(current_app))
