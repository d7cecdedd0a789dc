"""``/images`` library routes: each parses (schemas), calls (use cases), serializes (schemas)."""

from __future__ import annotations

from flask import Response, redirect
from werkzeug.wrappers import Response as WerkzeugResponse

from broker import limits, schemas
from broker.auth import current_principal
from broker.extension import current_broker
from broker.http.guards import image_api_request
from broker.http.payloads import (
    NO_STORE,
    body,
    json_answer,
    json_response,
    optional_body,
    query,
)
from broker.images import bp, downloads, service
from broker.limits import rate_limited

bp.before_request(image_api_request)


@bp.get("")
def list_images() -> Response:
    """A page of images with the cursor of the next (each with a signed GET when ``sign=1``)."""
    wanted = query(schemas.list_images_query)
    page = service.list_images(current_broker(), current_principal(), wanted)
    return json_answer(schemas.dump_image_page, page, headers=NO_STORE if wanted["sign"] else None)


@bp.get("/<image_id>")
def get_image(image_id: str) -> Response:
    """One image."""
    image = service.get_image(current_broker(), current_principal(), image_id)
    return json_response(schemas.image_envelope, {"image": image})


@bp.patch("/<image_id>")
def update_image(image_id: str) -> Response:
    """Edit caption, kind, tags, the primary flag or the visibility."""
    changes = body(schemas.update_image_request)
    image = service.update_image(current_broker(), current_principal(), image_id, changes)
    return json_response(schemas.image_envelope, {"image": image})


@bp.delete("/<image_id>")
def delete_image(image_id: str) -> Response:
    """Delete the object and the record."""
    service.delete_image(current_broker(), current_principal(), image_id)
    return Response(status=204)


@bp.post("/<image_id>/usage")
def record_usage(image_id: str) -> Response:
    """Count one use of the image."""
    optional_body(schemas.empty_request)
    image = service.record_usage(current_broker(), current_principal(), image_id)
    return json_response(schemas.image_envelope, {"image": image})


@bp.get("/<image_id>/signed-url")
@rate_limited(limits.SIGN)
def signed_url(image_id: str) -> Response:
    """A signed GET URL for one image."""
    return json_answer(schemas.dump_signed_url, _signed(image_id), headers=NO_STORE)


@bp.get("/signed-url")
@rate_limited(limits.SIGN)
def signed_url_by_key() -> Response:
    """A signed GET URL for the image stored under ``key``."""
    wanted = query(schemas.signed_url_by_key_query)
    broker = current_broker()
    signed = downloads.sign_by_key(
        broker,
        current_principal(),
        wanted["key"],
        variant=downloads.requested_variant(broker, wanted.get("variant")),
        expires_in=wanted.get("expires_in"),
        disposition=wanted["disposition"],
    )
    return json_answer(schemas.dump_signed_url, signed, headers=NO_STORE)


@bp.post("/signed-urls")
@rate_limited(limits.SIGN)
def signed_urls() -> Response:
    """Signed GET URLs for up to 100 images; ids the caller cannot see are absent."""
    wanted = body(schemas.load_signed_urls_request)
    broker = current_broker()
    variant = downloads.requested_variant(broker, wanted.get("variant"))
    urls = downloads.sign_many(broker, current_principal(), wanted["ids"], variant=variant)
    return json_answer(schemas.dump_signed_urls, urls, headers=NO_STORE)


@bp.get("/<image_id>/content")
@rate_limited(limits.SIGN)
def content(image_id: str) -> WerkzeugResponse:
    """Redirect to a fresh signed GET URL."""
    response = redirect(_signed(image_id).url, code=302)
    response.headers.update(NO_STORE)
    return response


def _signed(image_id: str) -> downloads.SignedUrl:
    """The signed GET the query of ``/signed-url`` or ``/content`` asks for."""
    wanted = query(schemas.signed_url_query)
    broker = current_broker()
    return downloads.sign_image(
        broker,
        current_principal(),
        image_id,
        variant=downloads.requested_variant(broker, wanted.get("variant")),
        expires_in=wanted.get("expires_in"),
        disposition=wanted["disposition"],
    )
