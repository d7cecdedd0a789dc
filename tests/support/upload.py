"""The one upload flow: presign → a real HTTP PUT to the bucket with exactly the headers the
grant lists → confirm. Every suite uploads through it, the benchmarks too.

The broker's API is reached through anything with a Flask-test-client-shaped ``post`` (the
test client itself, or :class:`HttpApi` for a broker listening on a port); the PUT always goes
over HTTP to the bucket, as a browser's would. A step that does not answer as the contract
says raises :class:`UploadFailed` (an ``AssertionError``, so pytest reports it as one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.support.images import md5_b64, png_bytes
from tests.support.tokens import auth

HTTP_TIMEOUT = 10.0
# Every key the broker makes: <user segment>/<32 hex><allowlisted extension>. The user segment is
# the plain sub ([A-Za-z0-9_-]{1,64}) or "u." and a hex digest.
KEY_PATTERN = re.compile(
    r"^(?:[A-Za-z0-9_-]{1,64}|u\.[0-9a-f]{32})/[0-9a-f]{32}\.(?:jpg|png|gif|webp)$"
)


class Answer(Protocol):
    """What the flow reads of an API response."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    def get_json(self) -> Any:
        """The JSON body."""
        ...


A = TypeVar("A", bound=Answer, covariant=True)
R = TypeVar("R", bound=Answer)


class ApiClient(Protocol[A]):
    """A client of the broker's API: Flask's test client, or :class:`HttpApi`."""

    def post(self, path: str, *, json: Any, headers: Mapping[str, str]) -> A:
        """POST a JSON body."""
        ...


class UploadFailed(AssertionError):
    """A step of the flow answered other than the contract says."""

    def __init__(self, step: str, status: int, body: Any) -> None:
        super().__init__(f"{step} answered {status}: {str(body)[:500]}")
        self.step = step
        self.status = status


@dataclass(frozen=True)
class Uploaded:
    """What the whole flow produced: the grant, the confirmed image and the bytes sent."""

    grant: dict[str, Any]
    image: dict[str, Any]
    data: bytes


def presign_body(
    data: bytes | None = None,
    *,
    filename: str = "photo.png",
    filetype: str = "image/png",
    omit: tuple[str, ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A valid presign request for ``data`` (a small PNG by default): name, type, size and
    Content-MD5, plus any other ``fields`` (which may also replace those), less ``omit``."""
    data = png_bytes() if data is None else data
    body = {
        "filename": filename,
        "filetype": filetype,
        "size": len(data),
        "content_md5": md5_b64(data),
        **fields,
    }
    return {name: value for name, value in body.items() if name not in omit}


def presign(
    api: ApiClient[R],
    data: bytes | None = None,
    *,
    sub: str = "alice",
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> R:
    """``POST /images/presign-upload`` for ``data`` as ``sub`` (or with ``headers``); the answer."""
    return api.post(
        "/images/presign-upload",
        json=presign_body(data, **fields),
        headers=auth(sub) if headers is None else headers,
    )


def presigned(
    api: ApiClient[Answer],
    data: bytes | None = None,
    *,
    sub: str = "alice",
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The grant for ``data``; UploadFailed unless the broker granted it (201)."""
    answer = presign(api, data, sub=sub, headers=headers, **fields)
    if answer.status_code != 201:
        raise UploadFailed("presign", answer.status_code, answer.get_json())
    grant: dict[str, Any] = answer.get_json()
    return grant


def put(
    grant: Mapping[str, Any], data: bytes, *, url: str | None = None, **header_changes: str | None
) -> requests.Response:
    """PUT ``data`` to the bucket as a browser would: with exactly the grant's headers, changed
    as asked (``If_None_Match=None`` drops one, ``x_amz_meta_a="b"`` adds one)."""
    headers = dict(grant["headers"])
    for name, value in header_changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return _send(url or grant["url"], data, headers)


def _send(
    url: str,
    data: bytes,
    headers: Mapping[str, str],
    session: requests.Session | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> requests.Response:
    send = requests.put if session is None else session.put
    return send(url, data=data, headers=dict(headers), timeout=timeout)


def pending_upload(
    api: ApiClient[Answer],
    data: bytes | None = None,
    *,
    sub: str = "alice",
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Presign and PUT ``data``, leaving the upload to be confirmed; the grant."""
    data = png_bytes() if data is None else data
    grant = presigned(api, data, sub=sub, headers=headers, **fields)
    stored = put(grant, data)
    if stored.status_code != 200:
        raise UploadFailed("PUT", stored.status_code, stored.text)
    return grant


def confirm(
    api: ApiClient[R],
    key: str,
    *,
    sub: str = "alice",
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> R:
    """``POST /images`` for ``key`` as ``sub`` (or with ``headers``); the answer."""
    return api.post(
        "/images", json={"key": key, **fields}, headers=auth(sub) if headers is None else headers
    )


def upload(
    api: ApiClient[Answer],
    data: bytes | None = None,
    *,
    sub: str = "alice",
    headers: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = HTTP_TIMEOUT,
    **fields: Any,
) -> Uploaded:
    """The whole flow for ``data`` (a small PNG by default) and the presign ``fields``."""
    data = png_bytes() if data is None else data
    grant = presigned(api, data, sub=sub, headers=headers, **fields)
    stored = _send(grant["url"], data, grant["headers"], session, timeout)
    if stored.status_code != 200:
        raise UploadFailed("PUT", stored.status_code, stored.text)
    confirmed = confirm(api, grant["key"], sub=sub, headers=headers)
    if confirmed.status_code != 201:
        raise UploadFailed("confirm", confirmed.status_code, confirmed.get_json())
    image: dict[str, Any] = confirmed.get_json()["image"]
    assert image["key"] == grant["key"], (image, grant)
    return Uploaded(grant, image, data)


class Flow:
    """The flow on one app, through its test client; the app is at hand to look behind it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()

    def presign(self, data: bytes | None = None, **options: Any) -> Any:
        """:func:`presign` on this app."""
        return presign(self.client, data, **options)

    def pending(self, data: bytes | None = None, **options: Any) -> dict[str, Any]:
        """:func:`pending_upload` on this app."""
        return pending_upload(self.client, data, **options)

    def confirm(self, key: str, **options: Any) -> Any:
        """:func:`confirm` on this app."""
        return confirm(self.client, key, **options)

    def upload(self, data: bytes | None = None, **options: Any) -> Uploaded:
        """:func:`upload` on this app."""
        return upload(self.client, data, **options)


@dataclass(frozen=True)
class HttpAnswer:
    """A :class:`requests.Response` read the way the flow reads a test client's response."""

    response: requests.Response

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self.response.status_code

    def get_json(self) -> Any:
        """The JSON body (None when there is none)."""
        return self.response.json() if self.response.content else None


def loopback_session() -> requests.Session:
    """A keep-alive session that no proxy from the environment may carry (loopback only)."""
    session = requests.Session()
    session.trust_env = False
    return session


@dataclass
class HttpApi:
    """The API of a broker listening at ``base_url``, for the flow over real HTTP (through
    ``session`` when given: keep-alive, proxies as it says)."""

    base_url: str
    timeout: float = 30.0
    session: requests.Session | None = None

    def post(self, path: str, *, json: Any, headers: Mapping[str, str]) -> HttpAnswer:
        """POST a JSON body."""
        send = requests.post if self.session is None else self.session.post
        response = send(
            self.base_url + path, json=json, headers=dict(headers), timeout=self.timeout
        )
        return HttpAnswer(response)


# The ``upload`` fixture: ``Flow.upload`` of the app under test.
Uploader = Callable[..., Uploaded]
