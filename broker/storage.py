"""The bucket facade: the only module that imports boto3.

:class:`Bucket` signs URLs (with the fast signer of :mod:`broker.signing`, or the reference
signer of :mod:`broker.signing_reference`, which it hands its boto3 client), performs the few
calls the broker makes itself (HEAD, a ranged GET of at most 64 KiB, DELETE, tagging,
readiness) and the bucket set-up calls (CORS, lifecycle, policy, public-access block). Every
botocore failure is translated into the broker's own errors here (``raise … from e``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import IO, Any, Final, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

from broker.domain import ObjectHead
from broker.errors import Unavailable
from broker.metrics import DEPENDENCY_ERRORS
from broker.settings import Settings
from broker.signing import Credentials, SigV4Presigner, valid_until
from broker.signing_reference import Boto3Presigner

log = logging.getLogger(__name__)

# The signers a bucket can use: the fast one, or boto3's own as the reference.
Presigner = SigV4Presigner | Boto3Presigner

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


# Header a client can store on an object without the URL signing it -> the HEAD response
# fields that carry it (botocore parses Expires; the raw value is in ExpiresString).
_STORED_HEADERS: Final = {
    "Content-Encoding": ("ContentEncoding",),
    "Cache-Control": ("CacheControl",),
    "Content-Disposition": ("ContentDisposition",),
    "Content-Language": ("ContentLanguage",),
    "Expires": ("ExpiresString", "Expires"),
    "x-amz-website-redirect-location": ("WebsiteRedirectLocation",),
}


class StorageNotFound(Exception):
    """The object (or bucket, or multipart upload) does not exist."""


class PartsRefused(Exception):
    """The bucket refused to complete a multipart upload with the parts listed (its S3 code)."""


@dataclass(frozen=True)
class StoredPart:
    """A part the bucket holds for a multipart upload."""

    number: int
    etag: str
    size: int


class ObjectChanged(Exception):
    """The object is not the one asked for: its ETag differs (a conditional GET answered 412)."""


class ObjectTooLarge(Exception):
    """The object is larger than the caller agreed to read."""


@dataclass(frozen=True)
class StoredObject:
    """One object of a listing: its key, size and when it was written."""

    key: str
    size: int
    last_modified: datetime


# Bytes read from the bucket at a time when streaming an object to a file.
DOWNLOAD_CHUNK = 1 << 20


@dataclass(frozen=True)
class SignedRequest:
    """A presigned URL, the headers the client must send with it, and when it stops working."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


# Some S3 implementations (RGW among them) apply an x-amz-acl header the URL did not sign; with
# IgnorePublicAcls a "public-read" smuggled into a presigned PUT grants nothing. BlockPublicAcls
# stays off: RGW 16 then refuses every PutObject, even private ones, and ignoring public ACLs
# already keeps every object private. BlockPublicPolicy refuses policies that *grant* public
# access; the broker's own policy only denies, which it leaves alone.
PUBLIC_ACCESS_BLOCK: Final = {
    "BlockPublicAcls": False,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


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
        self._object_acl = settings.s3_object_acl or None
        # The host is part of the signature, so URLs for browsers are signed for the public
        # endpoint, which can differ from the one the broker itself reaches.
        public_endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self._signing_client = session.client("s3", endpoint_url=public_endpoint, config=config)
        self.presigner: Presigner
        self._credentials = credentials_source(session)
        if settings.signer == "fast":
            self.presigner = SigV4Presigner(
                endpoint_url=public_endpoint or self._signing_client.meta.endpoint_url,
                region=settings.s3_region,
                addressing=settings.s3_addressing,
                credentials=self._credentials,
            )
        else:
            self.presigner = Boto3Presigner(self._signing_client)

    def access_key_id(self) -> str:
        """The access key URLs are signed with now (it changes when credentials rotate)."""
        return self._credentials().access_key

    @cached_property
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
        tagging: str | None,
        acl: str | None,
        cache_control: str,
        expires_in: int,
        now: datetime | None = None,
    ) -> SignedRequest:
        """A write-once PUT URL pinning type, length, checksums, caching, tags and the ACL,
        signed at ``now`` when the signer can pin the instant.

        ``If-None-Match: *`` is signed too: the bucket refuses (412) a PUT under a key that
        already holds an object, so no replay of the URL can replace or re-tag what confirm
        verified. RGW 16 checks it when the write completes, so even two PUTs racing each
        other store one object.
        """
        signed = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            "Cache-Control": cache_control,
        }
        if content_md5:
            signed["Content-MD5"] = content_md5
        if checksum_sha256:
            signed["x-amz-checksum-sha256"] = checksum_sha256
        if tagging:
            signed["x-amz-tagging"] = tagging
        if acl:
            signed["x-amz-acl"] = acl
        signed["If-None-Match"] = "*"
        url = self._sign("PUT", key, expires_in=expires_in, headers=signed, now=now)
        # Browsers refuse to set Content-Length themselves and always send the body's length.
        client_headers = {name: value for name, value in signed.items() if name != "Content-Length"}
        return SignedRequest(url, "PUT", client_headers, valid_until(url))

    def create_multipart(
        self,
        key: str,
        *,
        content_type: str,
        cache_control: str,
        tagging: str | None,
        acl: str | None,
    ) -> str:
        """Start a multipart upload whose object gets this type, caching, tags and ACL; its id.

        Parts cannot carry any of these, so they are set here, by the broker, once. (RGW 16
        ignores the tags: see ``tests/rgw/test_multipart_on_rgw.py``.)
        """
        options: dict[str, Any] = {"ContentType": content_type, "CacheControl": cache_control}
        if tagging:
            options["Tagging"] = tagging
        if acl:
            options["ACL"] = acl
        with _translated("create multipart upload"):
            response = self.client.create_multipart_upload(Bucket=self.name, Key=key, **options)
        upload_id: str = response["UploadId"]
        return upload_id

    def presign_part(
        self,
        key: str,
        bucket_upload_id: str,
        part_number: int,
        *,
        content_md5: str,
        length: int,
        expires_in: int,
        now: datetime | None = None,
    ) -> SignedRequest:
        """A PUT URL for one part, pinning its exact length and its bytes (Content-MD5), signed
        at ``now`` when the signer can pin the instant.

        A part may be PUT again until the upload is completed or aborted; after that the bucket
        refuses every part (NoSuchUpload), so no part URL can change a finished object.
        """
        signed = {"Content-Length": str(length), "Content-MD5": content_md5}
        query = {"partNumber": str(part_number), "uploadId": bucket_upload_id}
        url = self._sign("PUT", key, expires_in=expires_in, headers=signed, query=query, now=now)
        return SignedRequest(url, "PUT", {"Content-MD5": content_md5}, valid_until(url))

    def list_parts(self, key: str, bucket_upload_id: str) -> list[StoredPart]:
        """Every part the bucket holds for the upload; StorageNotFound when it is gone."""
        parts: list[StoredPart] = []
        marker = 0
        while True:
            with _translated("list parts"):
                response = self.client.list_parts(
                    Bucket=self.name, Key=key, UploadId=bucket_upload_id, PartNumberMarker=marker
                )
            for part in response.get("Parts", []):
                parts.append(
                    StoredPart(int(part["PartNumber"]), str(part["ETag"]), int(part["Size"]))
                )
            next_marker = int(response.get("NextPartNumberMarker") or 0)
            if not response.get("IsTruncated") or next_marker <= marker:
                return parts
            marker = next_marker

    def complete_multipart(
        self, key: str, bucket_upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        """Join the parts, ``(number, ETag)`` in order, into the object.

        PartsRefused when the bucket holds other bytes for a part (or none); StorageNotFound
        when the upload is gone (completed or aborted before).
        """
        listed = [{"PartNumber": number, "ETag": f'"{etag}"'} for number, etag in parts]
        with _translated("complete multipart upload", refused=_PART_REFUSALS):
            self.client.complete_multipart_upload(
                Bucket=self.name,
                Key=key,
                UploadId=bucket_upload_id,
                MultipartUpload={"Parts": listed},
            )

    def abort_multipart(self, key: str, bucket_upload_id: str) -> None:
        """Abort the upload and drop its parts; one that is already gone is fine."""
        try:
            with _translated("abort multipart upload"):
                self.client.abort_multipart_upload(
                    Bucket=self.name, Key=key, UploadId=bucket_upload_id
                )
        except StorageNotFound:
            return

    def presign_get(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str,
        disposition: str,
        cache_control: str,
        now: datetime | None = None,
    ) -> str:
        """A GET URL whose response type, disposition and caching are fixed by the signature."""
        query = {
            "response-cache-control": cache_control,
            "response-content-type": content_type,
            "response-content-disposition": disposition,
        }
        return self._sign("GET", key, expires_in=expires_in, query=query, now=now)

    def _sign(self, method: str, key: str, **kwargs: Any) -> str:
        try:
            return self.presigner.presign(method, self.name, key, **kwargs)
        except (BotoCoreError, ClientError) as e:
            raise _unavailable(e, "sign") from e

    def head(self, key: str) -> ObjectHead | None:
        """The object's size, type, ETag and stored headers, or None when it does not exist."""
        try:
            with _translated("head"):
                response = self.client.head_object(Bucket=self.name, Key=key)
        except StorageNotFound:
            return None
        return _object_head(response, int(response["ContentLength"]))

    def read_head(self, key: str, length: int) -> tuple[ObjectHead, bytes] | None:
        """What :meth:`head` says of the object, and at most its first ``length`` bytes, from
        one ranged GET: a GET answers every header a HEAD does, and its Content-Range the whole
        size. None when the object does not exist.

        RGW answers 500 UnknownError to a GET of an object whose tags another request sets
        meanwhile (its data read finds the object changed, ECANCELED), as concurrent confirms
        of one key do; botocore's one retry can meet the next tagging, so such a read is
        tried again as a refused tagging is.
        """
        return _retrying_races("read", lambda: self._read_head_once(key, length))

    def _read_head_once(self, key: str, length: int) -> tuple[ObjectHead, bytes] | None:
        try:
            with _translated("read", transient=_READ_RACES):
                try:
                    response = self.client.get_object(
                        Bucket=self.name, Key=key, Range=f"bytes=0-{length - 1}"
                    )
                except ClientError as e:
                    if e.response.get("Error", {}).get("Code") != "InvalidRange":
                        raise
                    # An empty object has no first byte to read: only a HEAD describes it.
                    head = self.head(key)
                    return (head, b"") if head is not None else None
                body = response["Body"]
                try:
                    data: bytes = body.read(length)
                finally:
                    body.close()
        except StorageNotFound:
            return None
        # "bytes 0-65535/262144": the total after the slash. A server that answered the whole
        # object (no Content-Range) sent its length.
        total = str(response.get("ContentRange") or "").rpartition("/")[2]
        size = int(total) if total.isdigit() else int(response["ContentLength"])
        return _object_head(response, size), data

    def download(
        self,
        key: str,
        into: IO[bytes],
        *,
        etag: str | None,
        max_bytes: int,
        progress: Callable[[], None] | None = None,
    ) -> int:
        """Stream the object into ``into`` (a file), only if its ETag is ``etag``; its length.

        Reads a chunk at a time (memory stays flat whatever the size) and calls ``progress``
        between chunks. StorageNotFound when it is gone, ObjectChanged when it is another
        object than the one recorded, ObjectTooLarge past ``max_bytes``.
        """
        options: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if etag:
            options["IfMatch"] = f'"{etag.strip(chr(34))}"'
        with _translated("get", changed=True):
            response = self.client.get_object(**options)
            if int(response.get("ContentLength") or 0) > max_bytes:
                response["Body"].close()
                raise ObjectTooLarge(key)
            body = response["Body"]
            written = 0
            try:
                while chunk := body.read(DOWNLOAD_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise ObjectTooLarge(key)
                    into.write(chunk)
                    if progress is not None:
                        progress()
            except OSError as e:  # the connection broke mid-body (urllib3 errors are OSErrors)
                raise _unavailable(e, "get") from e
            finally:
                body.close()
        return written

    def put_derived(self, key: str, data: bytes, *, content_type: str, cache_control: str) -> None:
        """Store an object the broker made itself (a variant): its type and caching, no tags.

        No tag, so the lifecycle rule that expires unconfirmed uploads never touches it; the
        Content-MD5 makes the bucket refuse bytes damaged on the way.
        """
        options: dict[str, Any] = {
            "Bucket": self.name,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
            "CacheControl": cache_control,
            "ContentMD5": base64.b64encode(hashlib.md5(data).digest()).decode("ascii"),
        }
        if self._object_acl:
            options["ACL"] = self._object_acl
        try:
            with _translated("put"):
                self.client.put_object(**options)
        except StorageNotFound as e:
            raise Unavailable("the bucket does not exist") from e

    def list_keys(self, prefix: str, *, after: str = "", limit: int = 1000) -> list[StoredObject]:
        """Up to ``limit`` objects under ``prefix`` in key order, starting after ``after``."""
        found: list[StoredObject] = []
        options: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
        if after:
            options["StartAfter"] = after
        while len(found) < limit:
            options["MaxKeys"] = min(1000, limit - len(found))
            try:
                with _translated("list"):
                    page = self.client.list_objects_v2(**options)
            except StorageNotFound:
                break
            found += [
                StoredObject(item["Key"], int(item.get("Size") or 0), item["LastModified"])
                for item in page.get("Contents", [])
            ]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            options = {"Bucket": self.name, "Prefix": prefix, "ContinuationToken": token}
        return found

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object succeeds (S3 semantics)."""
        try:
            with _translated("delete"):
                self.client.delete_object(Bucket=self.name, Key=key)
        except StorageNotFound:
            return

    def tag(self, key: str, tags: Mapping[str, str]) -> None:
        """Replace the object's tags, riding out another writer tagging it at the same moment.

        RGW answers 409 OperationAborted to simultaneous tagging of one object (concurrent
        confirms of one key all tag it), which botocore does not retry. Such a refusal is
        retried a few times with a short jittered backoff, and is success at once when the
        object already carries exactly these tags (the other writer set them).
        """
        tag_set = [{"Key": name, "Value": value} for name, value in tags.items()]

        def put() -> None:
            with _translated("tag", transient=_TAG_CONFLICTS):
                self.client.put_object_tagging(
                    Bucket=self.name, Key=key, Tagging={"TagSet": tag_set}
                )

        _retrying_races("tag", put, settled=lambda: self._tags(key) == dict(tags))

    def _tags(self, key: str) -> dict[str, str]:
        with _translated("get tags"):
            response = self.client.get_object_tagging(Bucket=self.name, Key=key)
        return {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}

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

    def apply_lifecycle(self, rules: list[dict[str, Any]]) -> None:
        """Replace the bucket's lifecycle rules."""
        with _translated("put lifecycle"):
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.name, LifecycleConfiguration={"Rules": rules}
            )

    def get_lifecycle(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules (empty when none are set)."""
        try:
            with _translated("get lifecycle"):
                response = self.client.get_bucket_lifecycle_configuration(Bucket=self.name)
        except StorageNotFound:
            return []
        rules: list[dict[str, Any]] = response.get("Rules", [])
        return rules

    def block_public_access(self) -> None:
        """Make public ACLs and policies ineffective on the bucket, whatever a PUT asks for."""
        with _translated("put public access block"):
            self.client.put_public_access_block(
                Bucket=self.name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK
            )

    def get_public_access_block(self) -> dict[str, bool]:
        """The bucket's public-access block (empty when none is set)."""
        try:
            with _translated("get public access block"):
                response = self.client.get_public_access_block(Bucket=self.name)
        except StorageNotFound:
            return {}
        block: dict[str, bool] = response.get("PublicAccessBlockConfiguration", {})
        return block

    def get_policy(self) -> dict[str, Any] | None:
        """The bucket policy as a JSON object, or None when the bucket has none."""
        try:
            with _translated("get bucket policy"):
                response = self.client.get_bucket_policy(Bucket=self.name)
        except StorageNotFound:
            return None
        try:
            policy: dict[str, Any] = json.loads(response["Policy"])
        except (KeyError, TypeError, ValueError):
            return None
        return policy

    def put_policy(self, policy: Mapping[str, Any] | None) -> None:
        """Replace the bucket policy (None: remove it)."""
        with _translated("put bucket policy"):
            if policy is None:
                self.client.delete_bucket_policy(Bucket=self.name)
            else:
                self.client.put_bucket_policy(Bucket=self.name, Policy=json.dumps(policy))

    def takes_a_plain_put(self) -> bool:
        """Whether the bucket stores a plain PutObject (a probe object, deleted at once)."""
        probe = f"broker-setup-probe/{uuid.uuid4().hex}"
        try:
            with _translated("probe put"):
                self.client.put_object(Bucket=self.name, Key=probe, Body=b"")
        except Unavailable:
            return False
        self.delete(probe)
        return True

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


def credentials_source(session: boto3.session.Session) -> Callable[[], Credentials]:
    """A callable giving current credentials, so refreshing ones (instance roles) keep working."""

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
    DEPENDENCY_ERRORS.labels("s3").inc()
    return Unavailable("the storage is unavailable, retry later")


# Tagging refused because another request tags the same object (RGW: 409 OperationAborted;
# AWS documents ConcurrentModification and OperationAborted), or throttled.
_TAG_CONFLICTS: Final = frozenset({"OperationAborted", "ConcurrentModification", "SlowDown"})
# A read aborted because another request changed the object meanwhile (RGW: 500 UnknownError,
# its answer to ECANCELED; see Bucket.read_head).
_READ_RACES: Final = frozenset({"UnknownError"})
# Tries of a call refused because of a concurrent request, and the first pause between them.
RACE_ATTEMPTS = 6
RACE_BACKOFF_SECONDS = 0.05
_T = TypeVar("_T")


class _Transient(Exception):
    """S3 refused a call because of a concurrent one; the caller may retry it."""


def _retrying_races(
    operation: str, call: Callable[[], _T], settled: Callable[[], bool] | None = None
) -> _T | None:
    """What ``call`` returns, tried again after a short jittered backoff (doubled each time)
    while S3 refuses it because of a concurrent request, at most RACE_ATTEMPTS times; None at
    once when ``settled`` says the concurrent request did this call's work. Unavailable when
    every try was refused."""
    attempt = 0
    while True:
        try:
            return call()
        except _Transient:
            if settled is not None and settled():
                return None
            attempt += 1
            if attempt == RACE_ATTEMPTS:
                raise _unavailable(
                    RuntimeError(f"{operation} kept being refused"), operation
                ) from None
            time.sleep(RACE_BACKOFF_SECONDS * 2 ** (attempt - 1) * (0.5 + random.random()))


# Completing refused because of the parts listed: one is missing in the bucket or holds other
# bytes, the list is out of order, or a part before the last is under 5 MiB.
_PART_REFUSALS: Final = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall"})


def _object_head(response: Mapping[str, Any], size: int) -> ObjectHead:
    """What a HEAD or GET response says of the object stored (its size given apart: a ranged
    GET's Content-Length is the range's)."""
    stored = {}
    for header, fields in _STORED_HEADERS.items():
        value = next((response[f] for f in fields if response.get(f) not in (None, "")), None)
        if value is not None:
            stored[header] = str(value)
    return ObjectHead(
        size=size,
        content_type=response.get("ContentType"),
        etag=response.get("ETag"),
        stored_headers=stored,
        metadata=dict(response.get("Metadata") or {}),
    )


@contextmanager
def _translated(
    operation: str,
    transient: frozenset[str] = frozenset(),
    refused: frozenset[str] = frozenset(),
    *,
    changed: bool = False,
) -> Iterator[None]:
    """Turn botocore failures into StorageNotFound, Unavailable, or (for the codes given)
    _Transient or PartsRefused; with ``changed``, a failed precondition (412) into
    ObjectChanged."""
    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND_CODES or status == 404:
            raise StorageNotFound(operation) from e
        if changed and (code == "PreconditionFailed" or status == 412):
            raise ObjectChanged(operation) from e
        if code in transient:
            log.info("S3 %s refused for now (%s), retrying", operation, code)
            raise _Transient(code) from e
        if code in refused:
            raise PartsRefused(code) from e
        raise _unavailable(e, operation) from e
    except BotoCoreError as e:
        raise _unavailable(e, operation) from e
