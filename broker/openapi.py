"""The OpenAPI 3 document, generated from the marshmallow schemas with apispec.

Each operation below names its request and response schemas; the JSON Schemas come from the
same classes the views validate with, so the document cannot drift from the behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from broker import schemas
from broker.errors import BrokerError

API_VERSION = "1.1.0"

# Each status's contract code, from the error classes themselves.
_ERROR_CLASSES: tuple[type[BrokerError], ...] = (BrokerError, *BrokerError.__subclasses__())
_ERRORS = {error.status: error.code for error in _ERROR_CLASSES}


@dataclass(frozen=True)
class Operation:
    """One documented endpoint."""

    path: str
    method: str
    summary: str
    response: type[Schema] | None
    status: int = 200
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    extra_responses: dict[int, str] = field(default_factory=dict)
    # Headers of the success answer beyond its body (a redirect's Location is always there).
    headers: dict[str, str] = field(default_factory=dict)


# The path parameters, by name.
PATH_PARAMETERS = {
    "image_id": {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}},
    "token": {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "the public link's token (the last segment of an image's public_url)",
        "schema": {"type": "string"},
    },
    "upload_id": {
        "name": "upload_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    },
}
_MULTIPART = "/images/multipart/{upload_id}"
# Who may do what (the contract's ground rules): an image the caller cannot see answers 404,
# a change to one they can see but not change (a reader, someone else's public image) 403.
_CHANGE = (403, 404)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/images/presign-upload",
        "post",
        "Presign a direct PUT of one image (403 for a reader token: it changes nothing)",
        schemas.PresignUploadResponse,
        201,
        body=schemas.PresignUploadRequest,
        errors=(400, 403, 413, 415),
    ),
    Operation(
        "/images",
        "post",
        "Confirm an upload and record the image",
        schemas.ImageEnvelope,
        201,
        body=schemas.ConfirmUploadRequest,
        errors=(400, 403, 404, 409, 422),
        extra_responses={200: "already confirmed"},
    ),
    Operation(
        "/images/multipart",
        "post",
        "Start a multipart upload (the presign body; part_size optional; 403 for a reader)",
        schemas.MultipartUploadResponse,
        201,
        body=schemas.MultipartCreateRequest,
        errors=(400, 403, 413, 415),
    ),
    Operation(
        f"{_MULTIPART}/parts",
        "post",
        "Sign PUT URLs for up to 100 parts, each pinning the part's length and Content-MD5",
        schemas.SignedPartsResponse,
        body=schemas.SignPartsRequest,
        errors=(400, 403, 404, 409),
    ),
    Operation(
        f"{_MULTIPART}/parts",
        "get",
        "The parts the bucket holds so far (to resume)",
        schemas.StoredPartsResponse,
        errors=(403, 404, 409),
    ),
    Operation(
        f"{_MULTIPART}/complete",
        "post",
        "Join the parts, verify the object as confirm does and record the image",
        schemas.ImageEnvelope,
        201,
        body=schemas.CompleteMultipartRequest,
        errors=(400, 403, 404, 409, 422),
        extra_responses={200: "already completed"},
    ),
    Operation(
        _MULTIPART,
        "delete",
        "Abort a multipart upload: the bucket drops its parts",
        None,
        204,
        errors=(403, 404, 409),
    ),
    Operation(
        "/images",
        "get",
        "List images with cursor pagination: an admin or reader without owner sees everyone's, "
        "anyone else their own; owner naming someone else gives an admin or reader all of theirs, "
        "anyone else their public ones",
        schemas.ImagePage,
        query=schemas.ListImagesQuery,
        errors=(400,),
    ),
    Operation("/images/{image_id}", "get", "Get one image", schemas.ImageEnvelope, errors=(404,)),
    Operation(
        "/images/{image_id}",
        "patch",
        "Edit caption, kind, tags, primary or visibility (its owner or an admin)",
        schemas.ImageEnvelope,
        body=schemas.UpdateImageRequest,
        errors=(400, *_CHANGE),
    ),
    Operation(
        "/images/{image_id}",
        "delete",
        "Delete the object and the record (its owner or an admin)",
        None,
        204,
        errors=_CHANGE,
    ),
    Operation(
        "/images/{image_id}/usage",
        "post",
        "Count one use of the image (its owner or an admin)",
        schemas.ImageEnvelope,
        errors=(400, *_CHANGE),
    ),
    Operation(
        "/images/{image_id}/signed-url",
        "get",
        "A signed GET URL for one image",
        schemas.SignedUrlResponse,
        query=schemas.SignedUrlQuery,
        errors=(400, 404),
    ),
    Operation(
        "/images/signed-url",
        "get",
        "A signed GET URL looked up by key",
        schemas.SignedUrlResponse,
        query=schemas.SignedUrlByKeyQuery,
        errors=(400, 404),
    ),
    Operation(
        "/images/signed-urls",
        "post",
        "Signed GET URLs for up to 100 images",
        schemas.SignedUrlsResponse,
        body=schemas.SignedUrlsRequest,
        errors=(400,),
    ),
    Operation(
        "/images/{image_id}/content",
        "get",
        "Redirect to a fresh signed GET URL",
        None,
        302,
        query=schemas.SignedUrlQuery,
        errors=(400, 404),
    ),
    Operation(
        "/p/{token}",
        "get",
        "A public link: redirect (no token needed) to a signed GET of the public image; 404 once "
        "it turned private or was deleted. Parameters other than variant are ignored.",
        None,
        302,
        query=schemas.PublicLinkQuery,
        errors=(400, 404, 405, 503),
        public=True,
        headers={
            "Cache-Control": "public, max-age=N: N never reaches past the signed URL's expiry",
            "Referrer-Policy": "no-referrer",
        },
    ),
    Operation("/config", "get", "Upload limits for clients", schemas.ClientConfigResponse),
    Operation("/healthz", "get", "Liveness", schemas.StatusResponse, public=True),
    Operation(
        "/readyz",
        "get",
        "Readiness: MongoDB and S3 answer",
        schemas.StatusResponse,
        errors=(503,),
        public=True,
    ),
    Operation("/openapi.json", "get", "This document", None, public=True),
    Operation(
        "/metrics",
        "get",
        "Prometheus metrics (text exposition format); 404 without the metrics token",
        None,
        public=True,
        errors=(404,),
    ),
)


# Per-user rate limited (broker.limits): these may answer 429 with Retry-After.
RATE_LIMITED = {
    ("/images/presign-upload", "post"),
    ("/images", "post"),
    ("/images/multipart", "post"),
    (f"{_MULTIPART}/parts", "post"),
    (f"{_MULTIPART}/parts", "get"),
    (f"{_MULTIPART}/complete", "post"),
    ("/images/{image_id}/signed-url", "get"),
    ("/images/signed-url", "get"),
    ("/images/signed-urls", "post"),
    ("/images/{image_id}/content", "get"),
    # Per client address: the link needs no token.
    ("/p/{token}", "get"),
}
# Errors whose body extends the envelope: (path, method) → {status: component schema}.
ERROR_SCHEMAS = {("/readyz", "get"): {503: "ReadinessError"}}


def _operation_spec(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": op.summary, "responses": {}}
    parameters: list[dict[str, Any]] = [
        parameter for name, parameter in PATH_PARAMETERS.items() if f"{{{name}}}" in op.path
    ]
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if parameters:
        spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": op.body}},
        }
    success: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": op.response}}
    elif op.status == 302:
        success["headers"] = {"Location": {"schema": {"type": "string", "format": "uri"}}}
    elif op.path == "/openapi.json":
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif op.path == "/metrics":
        success["content"] = {"text/plain": {"schema": {"type": "string"}}}
    for name, description in op.headers.items():
        success.setdefault("headers", {})[name] = {
            "description": description,
            "schema": {"type": "string"},
        }
    spec["responses"][str(op.status)] = success
    for status, description in op.extra_responses.items():
        spec["responses"][str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": op.response}},
        }
    errors = set(op.errors) | {500}
    if not op.public:
        errors |= {401, 405, 503}
    # Any request line or header field over the limits (broker/http/request_head.py), and any
    # body over BROKER_MAX_BODY_BYTES, is refused before it is parsed.
    errors.add(413)
    if (op.path, op.method) in RATE_LIMITED:
        errors.add(429)
    error_schemas = ERROR_SCHEMAS.get((op.path, op.method), {})
    for status in sorted(errors):
        response: dict[str, Any] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": error_schemas.get(status, "ErrorResponse")}},
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        spec["responses"][str(status)] = response
    if not op.public:
        spec["security"] = [{"bearerAuth": []}]
    return spec


@cache
def _build(title: str) -> dict[str, Any]:
    spec = APISpec(
        title=title,
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Presigned-URL image broker: bytes go client ⇄ bucket, never here."},
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.schema("ErrorResponse", schema=schemas.ErrorResponse)
    spec.components.schema("ReadinessError", schema=schemas.ReadinessError)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation_spec(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document: dict[str, Any] = spec.to_dict()
    return document


def openapi_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document for ``app`` (built once per process)."""
    return _build(app.config.get("BROKER_API_TITLE", "Image broker"))
