"""Bearer-token authentication with Flask-JWT-Extended: HS256 by default, RS256 with a public key.

Tokens come from the identity provider of the deployment (or ``flask create-token``): ``sub`` is
the user, ``roles`` containing ``admin`` makes an admin, ``reader`` a reader (sees and signs
every image, changes nothing). Every JWT failure becomes a 401 in the
contract's envelope.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from flask import Flask, g, request
from flask_jwt_extended import JWTManager, create_access_token, decode_token
from flask_jwt_extended.exceptions import JWTExtendedException, NoAuthorizationError
from jwt import ExpiredSignatureError, InvalidSignatureError, PyJWTError

from broker.domain import Principal
from broker.errors import Unauthorized
from broker.extension import current_broker
from broker.settings import Settings

jwt = JWTManager()

ADMIN_ROLE = "admin"
READER_ROLE = "reader"


def init_auth(app: Flask, settings: Settings) -> None:
    """Configure token verification from the settings."""
    algorithm = settings.jwt_algorithm
    app.config.update(
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ALGORITHM=algorithm,
        # Only the configured algorithm is accepted: no "none", no HS/RS confusion.
        JWT_DECODE_ALGORITHMS=[algorithm],
        JWT_SECRET_KEY=settings.jwt_secret,
        JWT_PUBLIC_KEY=settings.jwt_public_key,
        JWT_PRIVATE_KEY=settings.jwt_private_key,
        JWT_IDENTITY_CLAIM="sub",
        JWT_DECODE_AUDIENCE=settings.jwt_audience,
        JWT_ENCODE_AUDIENCE=settings.jwt_audience,
        JWT_DECODE_ISSUER=settings.jwt_issuer,
        JWT_ENCODE_ISSUER=settings.jwt_issuer,
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(hours=1),
        JWT_ERROR_MESSAGE_KEY="message",
    )
    jwt.init_app(app)


def bearer_token() -> str:
    """The token of ``Authorization: Bearer <token>`` (the scheme is case-insensitive)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if not scheme:
        raise Unauthorized("missing bearer token")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate() -> Principal | None:
    """Verify the request's bearer token and remember the caller on ``g``.

    A CORS preflight (OPTIONS) carries no token by design and reaches no view: it passes.
    """
    if request.method == "OPTIONS":
        return None
    token = bearer_token()
    broker = current_broker()
    known = broker.tokens.get(token)
    if known is not None:
        g.principal = known
        return known
    try:
        claims = decode_token(token)
    except (JWTExtendedException, PyJWTError) as e:
        raise Unauthorized(_reason(e)) from e
    sub = claims.get("sub")
    roles = claims.get("roles", [])
    # A token that never expires is a credential that can never be taken back.
    if "exp" not in claims:
        raise Unauthorized("the token has no expiry (exp)")
    _check_token_kind(claims)
    _check_lifetime(claims, broker.settings.jwt_max_ttl)
    if not isinstance(sub, str) or not sub.strip() or not _storable(sub) or not _printable(sub):
        raise Unauthorized("the token has no usable subject")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("the token's roles claim must be a list of strings")
    principal = Principal(sub=sub, is_admin=ADMIN_ROLE in roles, is_reader=READER_ROLE in roles)
    if isinstance(claims["exp"], int | float):
        broker.tokens.put(token, principal, float(claims["exp"]))
    g.principal = principal
    return principal


def _check_token_kind(claims: dict[str, Any]) -> None:
    """Refuse refresh tokens: they are for the token endpoint of their issuer, not for APIs.

    Flask-JWT-Extended marks its tokens ``"type": "access" | "refresh"`` and Keycloak writes
    ``"typ": "Refresh"``; a ``type`` other than ``access`` is refused too (an ID token, say).
    Tokens that say nothing about their kind are taken as access tokens.
    """
    kind = claims.get("type")
    if kind is not None and kind != "access":
        raise Unauthorized("only access tokens are accepted")
    if str(claims.get("typ", "")).lower() in ("refresh", "offline"):
        raise Unauthorized("only access tokens are accepted")


def _check_lifetime(claims: dict[str, Any], max_ttl: int) -> None:
    """Refuse tokens issued for longer than ``max_ttl`` seconds (``exp - iat``).

    A token without ``iat`` is judged by what it has left (``exp - now``): it cannot claim an
    issue time, but it must not stay usable for longer than a compliant token could.
    """
    # PyJWT has checked both read as integers (numeric strings included), exp in the future.
    exp = _seconds(claims["exp"])
    iat = _seconds(claims.get("iat"))
    if exp is None:
        raise Unauthorized("the token's expiry (exp) is not a time")
    if exp - (iat if iat is not None else time.time()) > max_ttl:
        raise Unauthorized(f"the token lives longer than the {max_ttl} seconds allowed")


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _printable(text: str) -> bool:
    # Control characters (NUL, CR, LF), format characters (bidi overrides, zero-width joiners)
    # and line separators in a subject spoof names where it is shown (the admin UI, logs).
    return not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text)


def _storable(text: str) -> bool:
    # The subject becomes a key prefix and a MongoDB string: it must be valid UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def current_principal() -> Principal:
    """The caller authenticated for this request."""
    principal: Principal = g.principal
    return principal


def _reason(error: Exception) -> str:
    # Say what kind of problem it is, never echo the token or key material.
    if isinstance(error, NoAuthorizationError):
        return "missing bearer token"
    if isinstance(error, ExpiredSignatureError):
        return "the token has expired"
    if isinstance(error, InvalidSignatureError):
        return "the token's signature is invalid"
    return "invalid token"


def create_token(
    user: str,
    *,
    admin: bool = False,
    roles: Sequence[str] = (),
    ttl: timedelta = timedelta(hours=1),
) -> str:
    """Issue a token for ``user`` (development and operations; needs the signing key)."""
    claims: dict[str, Any] = {"roles": [ADMIN_ROLE, *roles] if admin else list(roles)}
    token: str = create_access_token(identity=user, additional_claims=claims, expires_delta=ttl)
    return token
