"""The reference presigner: boto3's own ``generate_presigned_url``, slow but the yardstick.

:class:`Boto3Presigner` takes the same arguments as :class:`broker.signing.SigV4Presigner` and
gives the same URL byte for byte; :func:`boto3_call` maps those arguments (method, key,
headers, query) to the boto3 client call that presigns them. The client is handed in by
:mod:`broker.storage`, the only module that imports boto3.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

# How the reference signer expresses a presign request as a boto3 client call.
_METADATA_PREFIX: Final = "x-amz-meta-"

# Lower-cased header name -> (parameter, is_integer) for each client method.
_PUT_OBJECT_HEADERS: Final = {
    "cache-control": ("CacheControl", False),
    "content-disposition": ("ContentDisposition", False),
    "content-length": ("ContentLength", True),
    "content-md5": ("ContentMD5", False),
    "content-type": ("ContentType", False),
    "x-amz-checksum-sha256": ("ChecksumSHA256", False),
    "x-amz-tagging": ("Tagging", False),
    "x-amz-acl": ("ACL", False),
    "if-none-match": ("IfNoneMatch", False),
}
_UPLOAD_PART_HEADERS: Final = {
    "content-length": ("ContentLength", True),
    "content-md5": ("ContentMD5", False),
    "x-amz-checksum-sha256": ("ChecksumSHA256", False),
}
# Query parameter name (case-sensitive, as S3 defines it) -> (parameter, is_integer).
_READ_QUERY: Final = {
    "response-cache-control": ("ResponseCacheControl", False),
    "response-content-disposition": ("ResponseContentDisposition", False),
    "response-content-encoding": ("ResponseContentEncoding", False),
    "response-content-language": ("ResponseContentLanguage", False),
    "response-content-type": ("ResponseContentType", False),
    "versionId": ("VersionId", False),
    "partNumber": ("PartNumber", True),
}
_UPLOAD_PART_QUERY: Final = {
    "partNumber": ("PartNumber", True),
    "uploadId": ("UploadId", False),
}
_DELETE_QUERY: Final = {"versionId": ("VersionId", False)}

_NO_MAPPING: Final[dict[str, tuple[str, bool]]] = {}
# client method -> (header mapping, query mapping, accepts x-amz-meta-* headers)
_OPERATIONS: Final = {
    "get_object": (_NO_MAPPING, _READ_QUERY, False),
    "head_object": (_NO_MAPPING, _READ_QUERY, False),
    "put_object": (_PUT_OBJECT_HEADERS, _NO_MAPPING, True),
    "upload_part": (_UPLOAD_PART_HEADERS, _UPLOAD_PART_QUERY, False),
    "delete_object": (_NO_MAPPING, _DELETE_QUERY, False),
}


def _convert(name: str, value: str, is_integer: bool) -> str | int:
    """Convert a header/query string to the boto3 parameter type, refusing lossy cases."""
    if not is_integer:
        return value
    number = int(value)
    if str(number) != value:
        # botocore would serialise str(int(value)), i.e. a different string.
        raise ValueError(f"{name} must be a canonical decimal integer, not {value!r}")
    return number


def boto3_call(
    method: str,
    bucket: str,
    key: str,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Map ``SigV4Presigner.presign`` arguments to ``(ClientMethod, Params)`` for boto3."""
    verb = method.upper()
    query = dict(query or {})
    if verb == "GET":
        operation = "get_object"
    elif verb == "HEAD":
        operation = "head_object"
    elif verb == "DELETE":
        operation = "delete_object"
    elif verb == "PUT":
        operation = "upload_part" if "uploadId" in query or "partNumber" in query else "put_object"
    else:
        raise ValueError(f"unsupported method {method!r}")
    header_map, query_map, metadata_ok = _OPERATIONS[operation]
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    # Query parameters first, in the caller's order: botocore emits them in
    # the order of the Params dict.
    for name, value in query.items():
        if name not in query_map:
            raise ValueError(f"query parameter {name!r} is not supported for {operation}")
        param, is_integer = query_map[name]
        params[param] = _convert(name, value, is_integer)
    metadata: dict[str, str] = {}
    for name, value in (headers or {}).items():
        lname = name.lower()
        if metadata_ok and lname.startswith(_METADATA_PREFIX):
            metadata[name[len(_METADATA_PREFIX) :]] = value
            continue
        if lname not in header_map:
            raise ValueError(f"header {name!r} is not supported for {operation}")
        param, is_integer = header_map[lname]
        params[param] = _convert(name, value, is_integer)
    if metadata:
        params["Metadata"] = metadata
    return operation, params


class Boto3Presigner:
    """The reference signer: boto3's ``generate_presigned_url`` (slow, but the yardstick)."""

    # botocore always signs at the current time; there is no public way to choose the instant.
    pins_signing_time = False

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
        """Presign with boto3; the same inputs give the fast signer's URL byte for byte.

        ``now`` is taken, as the fast signer takes it, but cannot be honoured: botocore signs at
        the current instant (so ``pins_signing_time`` is False and callers do not rely on it).
        """
        operation, params = boto3_call(method, bucket, key, headers=headers, query=query)
        url: str = self._client.generate_presigned_url(
            operation, Params=params, ExpiresIn=expires_in
        )
        return url
