"""Operations routes: liveness, readiness, metrics and the OpenAPI document (no token needed),
and ``GET /config``, the limits a client checks before uploading (token needed)."""

from __future__ import annotations

import json

from flask import Response, current_app, jsonify

from broker import schemas
from broker.auth import authenticate
from broker.errors import Unavailable
from broker.extension import current_broker
from broker.http.errors import error_response
from broker.http.payloads import json_document
from broker.observability import metrics_response
from broker.openapi import openapi_document
from broker.ops import bp, service

# What StatusResponse dumps for a live process: the same answer every time.
_UP = schemas.status_response.dump({"status": "ok"})


@bp.get("/healthz")
def healthz() -> Response:
    """200 while the process is up."""
    return json_document(_UP)


@bp.get("/readyz")
def readyz() -> Response:
    """200 when MongoDB and S3 both answer, else 503 with what failed."""
    checks = service.readiness(current_broker())
    if all(value == "ok" for value in checks.values()):
        return jsonify(schemas.status_response.dump({"status": "ok", "checks": checks}))
    # Not ready is an error like any other (the envelope), plus the per-dependency checks.
    response = error_response(Unavailable("not ready", details={"checks": checks}))
    body = response.get_json()
    response.set_data(json.dumps({**body, "status": "unavailable", "checks": checks}))
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics (404 unless the metrics token is presented, or in demo and test)."""
    broker = current_broker()
    return metrics_response(broker.settings, lambda: service.variant_queue_metrics(broker))


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 document of every endpoint."""
    return jsonify(openapi_document(current_app))


@bp.get("/config")
def config() -> Response:
    """What the broker accepts, so browsers can refuse a file before presigning it."""
    authenticate()
    return jsonify(schemas.client_config_response.dump(service.client_config(current_broker())))
