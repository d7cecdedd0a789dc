"""The bucket: the only module that imports boto3.

It signs URLs (with the fast signer or boto3's reference path), and performs the few control
calls the broker makes itself (HEAD, a ranged GET of at most 64 KiB, DELETE, CORS, readiness).
Every botocore failure is translated into the broker's own errors here (``raise … from e``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, current_app

from broker.config import Settings
from broker.domain import ObjectHead
from broker.errors import Unavailable

log = logging.getLogger(__name__)

EXTENSION_KEY = "broker.s3"

# Header name → boto3 parameter, for the reference signer.
_PUT_HEADER_PARAMS = {
    "Content-Type": "ContentType",
    "Content-Length": "ContentLength",
    "Content-MD5": "ContentMD5",
    "x-amz-checksum-sha256": "ChecksumSHA256",
}
_GET_QUERY_PARAMS = {
    "response-content-type": "ResponseContentType",
    "response-content-disposition": "ResponseContentDisposition",
}
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


class Presigner(Protocol):
    """Anything that presigns an S3 request for a bucket and key."""

    def presign(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        expires_in: int,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A presigned URL."""
        ...


class StorageNotFound(Exception):
    """The object (or bucket) does not exist."""


@dataclass(frozen=True)
class SignedRequest:
    """A presigned URL and the headers the client must send with it."""

    url: str
    method: str
    headers: dict[str, str]


class Boto3Presigner:
    """The reference signer: boto3's ``generate_presigned_url`` (slow, but the yardstick)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def presign(
        self,
        method: str,
        bucket: str,
        key: str,
        *,
        expires_in: int,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        """Presign with boto3; the same inputs give the fast signer's URL byte for byte."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        for name, value in (headers or {}).items():
            params[_PUT_HEADER_PARAMS[name]] = int(value) if name == "Content-Length" else value
        for name, value in (query or {}).items():
            params[_GET_QUERY_PARAMS[name]] = value
        client_method = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object"}[method]
        url: str = self._client.generate_presigned_url(
            client_method, Params=params, ExpiresIn=expires_in
        )
        return url


def _client_config(settings: Settings) -> botocore.config.Config:
    return botocore.config.Config(
        signature_version="s3v4",
        region_name=settings.s3_region,
        s3={"addressing_style": settings.s3_addressing},
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        # Newer botocore adds CRC32 checksums to every upload by default, which several
        # S3-compatible stores (RGW among them) refuse; the broker only needs them when asked.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


class Bucket:
    """Every S3 operation the broker performs on its one private bucket."""

    def __init__(self, settings: Settings, session: boto3.session.Session | None = None) -> None:
        self.name = settings.s3_bucket
        session = session or boto3.session.Session(
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
        )
        config = _client_config(settings)
        self.client = session.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)
        # The host is part of the signature, so URLs for browsers are signed for the public
        # endpoint, which can differ from the one the broker itself reaches.
        public_endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self._signing_client = session.client("s3", endpoint_url=public_endpoint, config=config)
        self.presigner: Presigner
        if settings.signer == "fast":
            from broker.signing import SigV4Presigner

            self.presigner = SigV4Presigner(
                endpoint_url=public_endpoint or self._signing_client.meta.endpoint_url,
                region=settings.s3_region,
                addressing=settings.s3_addressing,
                credentials=_credentials_source(session),
            )
        else:
            self.presigner = Boto3Presigner(self._signing_client)

    @property
    def public_origin(self) -> str:
        """The scheme://host[:port] browsers reach the bucket at (for CSP and CORS checks)."""
        probe = urlsplit(self.presigner.presign("GET", self.name, "probe", expires_in=60))
        return f"{probe.scheme}://{probe.netloc}"

    def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        size: int,
        content_md5: str | None,
        checksum_sha256: str | None,
        expires_in: int,
    ) -> SignedRequest:
        """A PUT URL whose signature pins the type, the length and (when given) the checksums."""
        signed = {"Content-Type": content_type, "Content-Length": str(size)}
        if content_md5:
            signed["Content-MD5"] = content_md5
        if checksum_sha256:
            signed["x-amz-checksum-sha256"] = checksum_sha256
        url = self._sign("PUT", key, expires_in=expires_in, headers=signed)
        # Browsers refuse to set Content-Length themselves and always send the body's length.
        client_headers = {name: value for name, value in signed.items() if name != "Content-Length"}
        return SignedRequest(url=url, method="PUT", headers=client_headers)

    def presign_get(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str,
        disposition: str,
        now: datetime | None = None,
    ) -> str:
        """A GET URL whose response headers are fixed by the signature (type, disposition)."""
        query = {"response-content-type": content_type, "response-content-disposition": disposition}
        return self._sign("GET", key, expires_in=expires_in, query=query, now=now)

    def _sign(self, method: str, key: str, **kwargs: Any) -> str:
        try:
            return self.presigner.presign(method, self.name, key, **kwargs)
        except (BotoCoreError, ClientError) as e:
            raise _unavailable(e, "sign") from e

    def head(self, key: str) -> ObjectHead | None:
        """The object's size, type and ETag, or None when it does not exist."""
        try:
            with _translated("head"):
                response = self.client.head_object(Bucket=self.name, Key=key)
        except StorageNotFound:
            return None
        return ObjectHead(
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType"),
            etag=response.get("ETag"),
        )

    def read_prefix(self, key: str, length: int) -> bytes:
        """At most the first ``length`` bytes of the object (a ranged GET)."""
        with _translated("read"):
            response = self.client.get_object(
                Bucket=self.name, Key=key, Range=f"bytes=0-{length - 1}"
            )
            body = response["Body"]
            try:
                data: bytes = body.read(length)
            finally:
                body.close()
        return data

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object succeeds (S3 semantics)."""
        try:
            with _translated("delete"):
                self.client.delete_object(Bucket=self.name, Key=key)
        except StorageNotFound:
            return

    def ping(self) -> None:
        """Raise Unavailable unless the bucket answers."""
        try:
            with _translated("ping"):
                self.client.head_bucket(Bucket=self.name)
        except StorageNotFound as e:
            raise Unavailable("the bucket does not exist") from e

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (demo and tests; operators create their own)."""
        try:
            self.ping()
        except Unavailable:
            with _translated("create bucket"):
                self.client.create_bucket(Bucket=self.name)

    def apply_cors(self, rules: list[dict[str, Any]]) -> None:
        """Set the bucket's CORS rules."""
        with _translated("put cors"):
            self.client.put_bucket_cors(Bucket=self.name, CORSConfiguration={"CORSRules": rules})

    def get_cors(self) -> list[dict[str, Any]]:
        """The bucket's CORS rules (empty when none are set)."""
        try:
            with _translated("get cors"):
                rules: list[dict[str, Any]] = self.client.get_bucket_cors(Bucket=self.name)[
                    "CORSRules"
                ]
        except StorageNotFound:
            return []
        return rules


def _credentials_source(session: boto3.session.Session) -> Callable[[], Any]:
    """A callable giving current credentials, so refreshing ones (instance roles) keep working."""
    from broker.signing import Credentials

    def current() -> Credentials:
        resolved = session.get_credentials()
        if resolved is None:
            raise Unavailable("no S3 credentials are configured")
        frozen = resolved.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    return current


def _unavailable(error: Exception, operation: str) -> Unavailable:
    # The detail (endpoint, bucket, request id) goes to the log only, never to the client.
    log.warning("S3 %s failed: %s", operation, error)
    return Unavailable("the storage is unavailable, retry later")


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Turn botocore failures into StorageNotFound or Unavailable."""
    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND_CODES or status == 404:
            raise StorageNotFound(operation) from e
        raise _unavailable(e, operation) from e
    except BotoCoreError as e:
        raise _unavailable(e, operation) from e


class S3:
    """Flask extension binding a :class:`Bucket` to an app (``app.extensions['broker.s3']``)."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, settings: Settings | None = None) -> None:
        """Create the app's bucket gateway from its settings."""
        settings = settings or app.extensions["broker.settings"]
        app.extensions[EXTENSION_KEY] = Bucket(settings)

    def bucket_for(self, app: Flask) -> Bucket:
        """The bucket gateway bound to ``app``."""
        try:
            bucket: Bucket = app.extensions[EXTENSION_KEY]
        except KeyError:
            raise RuntimeError(
                "S3 is not initialised on this app: call s3.init_app(app) in the factory"
            ) from None
        return bucket

    @property
    def bucket(self) -> Bucket:
        """The current app's bucket gateway."""
        return self.bucket_for(current_app)
