"""The ceiling of the HTTP benchmarks: a bare Flask app answering a small JSON object.

``make bench`` runs it under the same gunicorn as the broker (``bench.bare_app:app``, same
workers, worker class and ``gunicorn.conf.py``) in the same run, so every endpoint's requests/s
can be read as a share of what Flask itself can answer on this machine at that moment: no
hooks, no extensions, no logs, no metrics, one ``jsonify``.

``shaped_app`` (a second app, so that the ceiling's stays one route) answers a route of the
shape of the broker's signed URL without its work (bench/profile_worker.py compares them): a
path parameter, a bearer token required but not verified, and a JSON answer as long as a
signed URL's with ``Cache-Control: no-store``. What it costs above ``/bare`` is what a route of
that shape costs Flask and gunicorn, whatever the route does.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)

PATH = "/bare"


@app.get(PATH)
def bare() -> Response:
    """A small JSON object, as ``/healthz`` answers."""
    return jsonify(status="ok")


# An answer as long as the broker's signed URL: a SigV4 query of the same parameters and lengths.
_SIGNED_URL = (
    "http://127.0.0.1:9/broker-images/users/signer-000/2026-11-30/{image_id}.png"
    "?response-cache-control=private%2C%20max-age%3D3900%2C%20immutable"
    "&response-content-disposition=inline%3B%20filename%3D%22image.png%22"
    "&response-content-type=image%2Fpng&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=bench-access-key%2F20261130%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261130T120000Z&X-Amz-Expires=3900&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=" + "0" * 64
)


shaped_app = Flask(__name__)
# /bare too, for the readiness checks of the server running it.
shaped_app.add_url_rule(PATH, view_func=bare)


def shaped_path(image_id: str) -> str:
    """The path of the signed URL's shape for ``image_id``."""
    return f"{PATH}/{image_id}/signed-url"


@shaped_app.get(shaped_path("<image_id>"))
def signed_url_shape(image_id: str) -> Response | tuple[Response, int]:
    """The signed URL's shape without its work (see the module)."""
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return jsonify(error={"code": "unauthorized", "message": "missing bearer token"}), 401
    response = jsonify(
        url=_SIGNED_URL.format(image_id=image_id),
        expires_at="2026-11-30T13:05:00Z",
        variant="original",
    )
    response.headers["Cache-Control"] = "no-store"
    return response
