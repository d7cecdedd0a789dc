"""Tokens as an identity provider issues them, signed with the secret every test app trusts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def make_token(
    sub: str | None = "alice",
    *,
    roles: list[str] | None = None,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    expires_in: int = 3600,
    **claims: Any,
) -> str:
    """A token as an identity provider would issue it."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {"iat": now, "exp": now + timedelta(seconds=expires_in), **claims}
    if sub is not None:
        payload["sub"] = sub
    if roles is not None:
        payload["roles"] = roles
    return jwt.encode(payload, secret, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header presenting ``token``."""
    return {"Authorization": f"Bearer {token}"}


def auth(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    """Authorization header for a user (or an admin)."""
    return bearer(make_token(sub, roles=["admin"] if admin else []))


def reader_auth(sub: str = "app-backend") -> dict[str, str]:
    """Authorization header for a reader (an application's backend: sees all, changes nothing)."""
    return bearer(make_token(sub, roles=["reader"]))
