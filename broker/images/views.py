"""``/images``: presign, confirm, read, list, sign, edit, delete.

Each view only parses (schemas), calls (service) and serializes (schemas).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request
from marshmallow import Schema
from werkzeug.wrappers import Response as WerkzeugResponse

from broker import schemas
from broker.auth import authenticate, current_principal
from broker.extension import current_broker
from broker.http import request_body
from broker.limits import rate_limited
from broker.uploads import service

bp = Blueprint("images", __name__, url_prefix="/images")

# Signed URLs and upload grants are credentials: no cache may keep them.
NO_STORE = {"Cache-Control": "no-store"}


@bp.before_request
def _authenticate() -> None:
    authenticate()
    # The unique indexes hold confirm's invariants: the first request of a process makes them.
    current_broker().db.indexes.ensure()


def _body(schema: Schema) -> dict[str, Any]:
    """The JSON object body, validated by ``schema``."""
    loaded: dict[str, Any] = schema.load(request_body.json_object())
    return loaded


def _optional_body(schema: Schema) -> dict[str, Any]:
    """An optional JSON object body (empty is fine)."""
    if not request_body.has_body():
        return {}
    return _body(schema)


def _query(schema: Schema) -> dict[str, Any]:
    loaded: dict[str, Any] = schema.load(request.args.to_dict())
    return loaded


def _json(
    schema: Schema, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    response = jsonify(schema.dump(data))
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.post("/presign-upload")
@rate_limited("rate_limit_presign")
def presign_upload() -> Response:
    """Grant a presigned PUT for one image."""
    presigned = service.presign_upload(
        current_broker(), current_principal(), _body(schemas.presign_upload_request)
    )
    payload = {
        "upload_id": presigned.upload_id,
        "key": presigned.key,
        "url": presigned.request.url,
        "method": presigned.request.method,
        "headers": presigned.request.headers,
        "expires_at": presigned.expires_at,
    }
    return _json(schemas.presign_upload_response, payload, 201, NO_STORE)


@bp.post("")
@rate_limited("rate_limit_confirm")
def confirm_upload() -> Response:
    """Verify an uploaded object and record the image (201, or 200 when already recorded)."""
    image, created = service.confirm_upload(
        current_broker(), current_principal(), _body(schemas.confirm_upload_request)
    )
    return _json(schemas.image_envelope, {"image": image}, 201 if created else 200)


@bp.get("")
def list_images() -> Response:
    """A page of images with the cursor of the next."""
    query = _query(schemas.list_images_query)
    broker = current_broker()
    page = service.list_images(broker, current_principal(), query)
    if not query["sign"]:
        return _json(schemas.image_page, page)
    images = []
    for image in page.images:
        signed = service.sign_download(broker, image)
        # A shallow view of the record: asdict would deep-copy every field of every image.
        images.append({**vars(image), "url": signed.url, "expires_at": signed.expires_at})
    return _json(
        schemas.image_page, {"images": images, "next_cursor": page.next_cursor}, headers=NO_STORE
    )


@bp.get("/<image_id>")
def get_image(image_id: str) -> Response:
    """One image."""
    image = service.get_image(current_broker(), current_principal(), image_id)
    return _json(schemas.image_envelope, {"image": image})


@bp.patch("/<image_id>")
def update_image(image_id: str) -> Response:
    """Edit caption, kind, tags or the primary flag."""
    changes = _body(schemas.update_image_request)
    image = service.update_image(current_broker(), current_principal(), image_id, changes)
    return _json(schemas.image_envelope, {"image": image})


@bp.delete("/<image_id>")
def delete_image(image_id: str) -> Response:
    """Delete the object and the record."""
    service.delete_image(current_broker(), current_principal(), image_id)
    return Response(status=204)


@bp.post("/<image_id>/usage")
def record_usage(image_id: str) -> Response:
    """Count one use of the image."""
    _optional_body(schemas.empty_request)
    image = service.record_usage(current_broker(), current_principal(), image_id)
    return _json(schemas.image_envelope, {"image": image})


@bp.get("/<image_id>/signed-url")
@rate_limited("rate_limit_sign")
def signed_url(image_id: str) -> Response:
    """A signed GET URL for one image."""
    return _json(schemas.signed_url_response, _signed_by_id(image_id), headers=NO_STORE)


def _signed_by_id(image_id: str) -> service.SignedUrl:
    """Parse the signed-URL query and sign the image (from the lookup cache when possible)."""
    query = _query(schemas.signed_url_query)
    broker = current_broker()
    target = service.signing_target(broker, current_principal(), image_id)
    return service.sign_download(
        broker, target, expires_in=query.get("expires_in"), disposition=query["disposition"]
    )


@bp.get("/signed-url")
@rate_limited("rate_limit_sign")
def signed_url_by_key() -> Response:
    """A signed GET URL for the image stored under ``key``."""
    query = _query(schemas.signed_url_by_key_query)
    broker = current_broker()
    image = service.get_image_by_key(broker, current_principal(), query["key"])
    signed = service.sign_download(
        broker, image, expires_in=query.get("expires_in"), disposition=query["disposition"]
    )
    return _json(schemas.signed_url_response, signed, headers=NO_STORE)


@bp.post("/signed-urls")
@rate_limited("rate_limit_sign")
def signed_urls() -> Response:
    """Signed GET URLs for up to 100 images; ids the caller cannot see are absent."""
    ids = _body(schemas.signed_urls_request)["ids"]
    urls = service.sign_many(current_broker(), current_principal(), ids)
    return _json(schemas.signed_urls_response, {"urls": urls}, headers=NO_STORE)


@bp.get("/<image_id>/content")
@rate_limited("rate_limit_sign")
def content(image_id: str) -> WerkzeugResponse:
    """Redirect to a fresh signed GET URL."""
    response = redirect(_signed_by_id(image_id).url, code=302)
    response.headers.update(NO_STORE)
    return response
