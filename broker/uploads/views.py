"""``POST /images/presign-upload``, ``POST /images`` and the multipart routes
(``/images/multipart…``): parse, call the use case, serialize."""

from __future__ import annotations

from flask import Response, request

from broker import limits, multipart, schemas
from broker.auth import current_principal
from broker.extension import current_broker
from broker.http.guards import image_api_request
from broker.http.payloads import NO_STORE, body, json_response
from broker.limits import rate_limited
from broker.multipart import normalise_etag
from broker.uploads import bp, service
from broker.uploads import multipart as multipart_service

bp.before_request(image_api_request)


@bp.post("/presign-upload")
@rate_limited(limits.PRESIGN)
def presign_upload() -> Response:
    """Grant a presigned PUT for one image."""
    presigned = service.presign_upload(
        current_broker(), current_principal(), body(schemas.presign_upload_request)
    )
    payload = {
        "upload_id": presigned.upload_id,
        "key": presigned.key,
        "url": presigned.request.url,
        "method": presigned.request.method,
        "headers": presigned.request.headers,
        "expires_at": presigned.request.expires_at,
    }
    return json_response(schemas.presign_upload_response, payload, 201, NO_STORE)


@bp.post("")
@rate_limited(limits.CONFIRM)
def confirm_upload() -> Response:
    """Verify an uploaded object and record the image (201, or 200 when already recorded)."""
    image, created = service.confirm_upload(
        current_broker(), current_principal(), body(schemas.confirm_upload_request)
    )
    return json_response(schemas.image_envelope, {"image": image}, 201 if created else 200)


# ---- multipart uploads ----------------------------------------------------------------------

# Complete lists every part, up to 10,000 of them: its body may exceed BROKER_MAX_BODY_BYTES
# (about 60 bytes a part), never this.
COMPLETE_BODY_BYTES = multipart.MAX_PARTS * 100


@bp.post("/multipart")
@rate_limited(limits.PRESIGN)
def create_multipart_upload() -> Response:
    """Start a multipart upload (the presign body, plus an optional part size)."""
    created = multipart_service.create(
        current_broker(), current_principal(), body(schemas.multipart_create_request)
    )
    return json_response(schemas.multipart_upload_response, created, 201, NO_STORE)


@bp.post("/multipart/<upload_id>/parts")
@rate_limited(limits.PARTS)
def sign_parts(upload_id: str) -> Response:
    """Sign a PUT URL for each part asked for (at most 100), pinning its length and MD5."""
    request_body = body(schemas.sign_parts_request)
    signed = multipart_service.sign_parts(
        current_broker(), current_principal(), upload_id, request_body["parts"]
    )
    payload = {
        "parts": [
            {
                "part_number": part.part_number,
                "url": part.request.url,
                "headers": part.request.headers,
                "expires_at": part.request.expires_at,
            }
            for part in signed
        ]
    }
    return json_response(schemas.signed_parts_response, payload, 200, NO_STORE)


@bp.get("/multipart/<upload_id>/parts")
@rate_limited(limits.PARTS)
def list_parts(upload_id: str) -> Response:
    """The parts the bucket holds for the upload so far."""
    stored = multipart_service.stored_parts(current_broker(), current_principal(), upload_id)
    payload = {
        "parts": [
            {"part_number": part.number, "etag": normalise_etag(part.etag), "size": part.size}
            for part in stored
        ]
    }
    return json_response(schemas.stored_parts_response, payload, 200, NO_STORE)


@bp.post("/multipart/<upload_id>/complete")
@rate_limited(limits.CONFIRM)
def complete_multipart_upload(upload_id: str) -> Response:
    """Join the parts, verify the object and record the image (201, or 200 when done before)."""
    settings = current_broker().settings
    request.max_content_length = max(settings.max_body_bytes, COMPLETE_BODY_BYTES)
    parts = body(schemas.complete_multipart_request)["parts"]
    image, created = multipart_service.complete(
        current_broker(), current_principal(), upload_id, parts
    )
    return json_response(schemas.image_envelope, {"image": image}, 201 if created else 200)


@bp.delete("/multipart/<upload_id>")
def abort_multipart_upload(upload_id: str) -> Response:
    """Abort the upload: the bucket drops its parts (204)."""
    multipart_service.abort(current_broker(), current_principal(), upload_id)
    return Response(status=204)
