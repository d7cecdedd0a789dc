"""``POST /images/presign-upload`` and ``POST /images``: parse, call the use case, serialize."""

from __future__ import annotations

from flask import Response

from broker import limits, schemas
from broker.auth import current_principal
from broker.extension import current_broker
from broker.http.guards import image_api_request
from broker.http.payloads import NO_STORE, body, json_response
from broker.limits import rate_limited
from broker.uploads import bp, service

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
        "expires_at": presigned.expires_at,
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
