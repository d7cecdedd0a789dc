"""The admin UI at ``/admin/`` and the headers of every static file.

The UI is static: ``/admin/`` serves ``broker/static/admin/index.html``, and its scripts, styles
and icon are static files (``/static/admin/…``, next to the browser module ``/static/broker.js``).
None of it needs a token, and none of it holds data: the page reads a JWT from the URL fragment
or a form, keeps it in sessionStorage and sends it only in ``Authorization`` headers.

Every response here and from the static route carries a strict Content-Security-Policy (no
inline script or style; images and connections only to this origin and the bucket), plus
``nosniff`` and ``no-referrer``. ``/admin/uppy`` (Uppy's Dashboard uploading through the
broker, an example for frontends) also allows ``connect-src data:``: @uppy/aws-s3 reads S3's
XML answers for the steps the broker does itself, and broker.js hands them over as data: URLs,
which carry nothing off the page. Files are served with ``Cache-Control: no-cache``: their names
carry no content hash, so browsers revalidate (a cheap 304 with the ETag) rather than keep a
stale copy after an upgrade.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Response, request, send_from_directory

from broker.admin import bp
from broker.extension import current_broker

ADMIN_DIR = Path(__file__).resolve().parent.parent / "static" / "admin"
CACHE_CONTROL = "no-cache"


UPPY_PAGE = "admin.uppy_example"


def content_security_policy(*, connect_data: bool = False) -> str:
    """The admin pages' CSP: scripts and styles from here, images also from the bucket
    (``connect_data``: fetching data: URLs too, which the Uppy page needs)."""
    return _policy_allowing(current_broker().bucket.public_origin, connect_data)


@cache
def _policy_allowing(bucket: str, connect_data: bool) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' blob: data: {bucket}",
            f"connect-src 'self' {bucket}" + (" data:" if connect_data else ""),
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _harden(response: Response) -> Response:
    connect_data = request.endpoint == UPPY_PAGE
    response.headers["Content-Security-Policy"] = content_security_policy(connect_data=connect_data)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# ``/admin`` (no slash) redirects here: Werkzeug's strict-slashes rule answers it with a 308.
@bp.get("/")
def index() -> Response:
    """The admin UI's page."""
    response = send_from_directory(ADMIN_DIR, "index.html")
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


@bp.get("/uppy")
def uppy_example() -> Response:
    """Uppy's Dashboard uploading through the broker (single and multipart), as an example."""
    response = send_from_directory(ADMIN_DIR, "uppy.html")
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response


@bp.after_request
def _admin_headers(response: Response) -> Response:
    return _harden(response)


@bp.after_app_request
def _static_headers(response: Response) -> Response:
    # The static route serves the admin UI's assets and /static/broker.js; an HTML file opened
    # straight from /static/ gets the same policy as /admin/.
    if request.endpoint == "static":
        _harden(response)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = CACHE_CONTROL
    return response
