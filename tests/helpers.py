"""Helpers shared by the test suites: tokens as an identity provider issues them, image bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from flask import Flask

from broker.extension import Broker, current_broker

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


def auth(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    """Authorization header for a user (or an admin)."""
    return {"Authorization": f"Bearer {make_token(sub, roles=['admin'] if admin else [])}"}


def broker_of(app: Flask) -> Broker:
    """The services of ``app`` (any app a test built), reached as its views reach them."""
    with app.app_context():
        return current_broker()


# ---- image bytes ------------------------------------------------------------------------------


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A valid PNG of the given size."""
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(width: int = 8, height: int = 6) -> bytes:
    """A minimal baseline JPEG header with the given size (enough for magic and dimensions)."""
    sof = (
        b"\xff\xc0"
        + struct.pack(">HBHHB", 17, 8, height, width, 3)
        + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return (
        b"\xff\xd8\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + sof
        + b"\xff\xd9"
    )


def md5_b64(data: bytes) -> str:
    """Content-MD5 of the bytes."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def presign_body(
    data: bytes, filename: str = "a.png", filetype: str = "image/png"
) -> dict[str, Any]:
    """The presign declaration of ``data``: name, type, size and Content-MD5."""
    return {
        "filename": filename,
        "filetype": filetype,
        "size": len(data),
        "content_md5": md5_b64(data),
    }


# ---- the demo ---------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
# Variables that would point the demo at other services or another identity: it must start
# its own embedded MongoDB and S3.
_FOREIGN_ENV = re.compile(r"^(BROKER_|MONGODB_URI$|AWS_)")


def start_demo(port: int, state: Path, log_path: Path, **settings: str) -> subprocess.Popen[str]:
    """``python -m broker.demo`` as ``make run`` starts it, from a clean environment.

    It runs in its own session, so it and what it starts form one process group to clean up
    (never more); stdout is a text pipe (the banner), stderr goes to ``log_path``.
    """
    env = {name: value for name, value in os.environ.items() if not _FOREIGN_ENV.match(name)}
    env.update(BROKER_PORT=str(port), BROKER_DEMO_DIR=str(state), PYTHONUNBUFFERED="1")
    env.update(settings)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "broker.demo"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
            preexec_fn=_as_from_a_terminal,
        )


def _as_from_a_terminal() -> None:
    # A shell starting a background job makes it ignore SIGINT, and the demo (rightly) keeps
    # ignoring it then; tests start it as from an interactive terminal instead.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
