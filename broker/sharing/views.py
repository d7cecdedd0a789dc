"""``GET /p/<token>``: a public link, answered with a redirect to a signed GET of its image.

No token is needed, so the budget is per client address (``BROKER_RATE_LIMIT_PUBLIC``). The
redirect may be cached by browsers and CDNs (``public``), never past the signed URL's expiry;
``no-referrer`` keeps the page that embeds the link from reaching the bucket's logs. Every error
is the contract's envelope and is never cached.
"""

from __future__ import annotations

from flask import Response, g, redirect
from werkzeug.wrappers import Response as WerkzeugResponse

from broker import domain, limits, schemas
from broker.extension import current_broker
from broker.http.payloads import query
from broker.limits import rate_limited
from broker.sharing import bp, service


@bp.before_request
def _link_request() -> None:
    # The token is a capability: the access log names the route, never the token itself.
    g.log_path = f"{domain.PUBLIC_LINK_PREFIX}/<token>"
    current_broker().db.indexes.ensure()


@bp.get("/<token>")
@rate_limited(limits.PUBLIC)
def follow(token: str) -> WerkzeugResponse:
    """Redirect to a signed GET of the public image this link names."""
    broker = current_broker()
    wanted = query(schemas.public_link_query)
    signed = service.follow_public_link(broker, token, wanted.get("variant"))
    max_age = service.redirect_max_age(broker, signed, domain.utcnow())
    response = redirect(signed.url, code=302)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.after_request
def _errors_are_not_cached(response: Response) -> Response:
    if response.status_code != 302:
        response.headers["Cache-Control"] = "no-store"
    return response
