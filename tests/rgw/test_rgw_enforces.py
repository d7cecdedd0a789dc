"""What a real S3 (Ceph RGW 16) enforces on presigned URLs.

The broker never sees image bytes: everything it wants checked on an upload
must be in the signature of the presigned PUT, and the bucket must refuse a
request that differs. These tests sign with plain boto3 and send with plain
``requests``, so they pin down S3's behaviour, not the broker's.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import boto3
import pytest
import requests
from botocore.config import Config

from tests.support.images import md5_b64
from tests.support.s3 import S3Endpoint, object_exists, s3_error, signed_headers

pytestmark = pytest.mark.s3

ORIGIN = "http://localhost:8000"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
HTTP_TIMEOUT = 10
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


# ---------------------------------------------------------------- helpers
def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = query(url)
    params.update(changes)
    return urlunsplit(parts._replace(query=urlencode(params)))


def presign_put(s3: Any, bucket: str, key: str, expires: int = 60, **params: Any) -> str:
    url: str = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=expires
    )
    return url


def assert_refused(resp: requests.Response, status: int, code: str) -> None:
    assert s3_error(resp) == (status, code), resp.text[:300]


# ---------------------------------------------------------------- what botocore signs
def test_botocore_signs_exactly_the_headers_given_as_params() -> None:
    # No network: signing only. This is what decides what the bucket can check.
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKID",
        aws_secret_access_key="SECRET",
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    try:
        assert signed_headers(presign_put(client, "b", "k")) == ["host"]
        assert signed_headers(presign_put(client, "b", "k", ContentType="image/png")) == [
            "content-type",
            "host",
        ]
        full = presign_put(
            client,
            "b",
            "k",
            ContentType="image/png",
            ContentLength=len(PNG),
            ContentMD5=md5_b64(PNG),
        )
        assert signed_headers(full) == ["content-length", "content-md5", "content-type", "host"]
        q = query(full)
        # values live in the headers the client must send, not in the URL
        assert "Content-MD5" not in q and "content-md5" not in q
        assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"

        extras = presign_put(
            client,
            "b",
            "k",
            ContentType="image/png",
            Tagging="state=pending",
            ACL="private",
            ChecksumSHA256=b64_sha256(PNG),
        )
        assert signed_headers(extras) == [
            "content-type",
            "host",
            "x-amz-acl",
            "x-amz-checksum-sha256",
            "x-amz-tagging",
        ]
    finally:
        client.close()


# ---------------------------------------------------------------- (a) content type
def test_put_with_signed_content_type(s3: Any, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "u/a.png", ContentType="image/png")

    wrong = requests.put(
        url, data=PNG, headers={"Content-Type": "image/jpeg"}, timeout=HTTP_TIMEOUT
    )
    assert_refused(wrong, 403, "SignatureDoesNotMatch")
    missing = requests.put(url, data=PNG, timeout=HTTP_TIMEOUT)
    assert_refused(missing, 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, "u/a.png")

    ok = requests.put(url, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT)
    assert ok.status_code == 200, ok.text
    head = s3.head_object(Bucket=rgw_bucket, Key="u/a.png")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(PNG)
    assert ok.headers["ETag"].strip('"') == hashlib.md5(PNG).hexdigest()


# ---------------------------------------------------------------- (b) tampering
def test_tampered_signature_is_refused(s3: Any, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "u/b.png", ContentType="image/png")
    sig = query(url)["X-Amz-Signature"]
    forged = with_query(url, **{"X-Amz-Signature": sig[:-1] + ("0" if sig[-1] != "0" else "1")})
    resp = requests.put(
        forged, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT
    )
    assert_refused(resp, 403, "SignatureDoesNotMatch")

    # stretching the lifetime is tampering too
    longer = with_query(url, **{"X-Amz-Expires": "604800"})
    resp = requests.put(
        longer, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT
    )
    assert_refused(resp, 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, "u/b.png")


# ---------------------------------------------------------------- (c) expiry
def test_expired_url_is_refused(s3: Any, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "u/c.png", expires=1, ContentType="image/png")
    signed_at = calendar.timegm(time.strptime(query(url)["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    # X-Amz-Date has 1 s resolution: wait until signed_at + 1 s is surely past
    time.sleep(max(0.0, signed_at + 2.2 - time.time()))
    resp = requests.put(url, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT)
    assert_refused(resp, 403, "AccessDenied")
    assert not object_exists(s3, rgw_bucket, "u/c.png")


# ---------------------------------------------------------------- (d) other key
def test_signature_does_not_carry_over_to_another_key(s3: Any, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "alice/d.png", ContentType="image/png")
    parts = urlsplit(url)
    other = urlunsplit(parts._replace(path=parts.path.replace("alice/d.png", "bob/d.png")))
    assert other != url
    resp = requests.put(
        other, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT
    )
    assert_refused(resp, 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, "bob/d.png")

    # nor to a GET of the same key
    resp = requests.get(url, timeout=HTTP_TIMEOUT)
    assert_refused(resp, 403, "SignatureDoesNotMatch")


# ---------------------------------------------------------------- (e) private bucket
def test_private_bucket_refuses_unsigned_requests(
    s3: Any, rgw: S3Endpoint, rgw_bucket: str
) -> None:
    s3.put_object(Bucket=rgw_bucket, Key="u/e.png", Body=PNG, ContentType="image/png")
    base = f"{rgw.endpoint_url}/{rgw_bucket}"

    assert_refused(requests.get(f"{base}/u/e.png", timeout=HTTP_TIMEOUT), 403, "AccessDenied")
    assert requests.head(f"{base}/u/e.png", timeout=HTTP_TIMEOUT).status_code == 403
    assert_refused(requests.get(base, timeout=HTTP_TIMEOUT), 403, "AccessDenied")  # listing
    resp = requests.put(
        f"{base}/u/new.png", data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT
    )
    assert_refused(resp, 403, "AccessDenied")
    assert_refused(requests.delete(f"{base}/u/e.png", timeout=HTTP_TIMEOUT), 403, "AccessDenied")
    assert not object_exists(s3, rgw_bucket, "u/new.png")
    assert object_exists(s3, rgw_bucket, "u/e.png")


# ---------------------------------------------------------------- (f) signed GET
def test_presigned_get_returns_bytes_and_signed_response_headers(s3: Any, rgw_bucket: str) -> None:
    s3.put_object(
        Bucket=rgw_bucket, Key="u/f.png", Body=PNG, ContentType="application/octet-stream"
    )
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": rgw_bucket,
            "Key": "u/f.png",
            "ResponseContentType": "image/png",
            "ResponseContentDisposition": 'inline; filename="f.png"',
        },
        ExpiresIn=60,
    )
    resp = requests.get(url, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200
    assert resp.content == PNG
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["Content-Disposition"] == 'inline; filename="f.png"'

    altered = with_query(
        url, **{"response-content-disposition": 'attachment; filename="evil.html"'}
    )
    assert_refused(requests.get(altered, timeout=HTTP_TIMEOUT), 403, "SignatureDoesNotMatch")
    retyped = with_query(url, **{"response-content-type": "text/html"})
    assert_refused(requests.get(retyped, timeout=HTTP_TIMEOUT), 403, "SignatureDoesNotMatch")
    # an override added to a URL that signed none
    plain = s3.generate_presigned_url(
        "get_object", Params={"Bucket": rgw_bucket, "Key": "u/f.png"}, ExpiresIn=60
    )
    assert requests.get(plain, timeout=HTTP_TIMEOUT).status_code == 200
    added = with_query(plain, **{"response-content-type": "text/html"})
    assert_refused(requests.get(added, timeout=HTTP_TIMEOUT), 403, "SignatureDoesNotMatch")


# ---------------------------------------------------------------- (g) Content-MD5
def test_signed_content_md5_refuses_other_bytes(s3: Any, rgw_bucket: str) -> None:
    md5 = md5_b64(PNG)
    url = presign_put(
        s3, rgw_bucket, "u/g.png", ContentType="image/png", ContentLength=len(PNG), ContentMD5=md5
    )
    headers = {"Content-Type": "image/png", "Content-MD5": md5}

    # same length, other bytes: the signature holds, the digest does not
    other = bytes(reversed(PNG))
    assert len(other) == len(PNG)
    assert_refused(
        requests.put(url, data=other, headers=headers, timeout=HTTP_TIMEOUT), 400, "BadDigest"
    )
    # leaving the header out breaks the signature
    resp = requests.put(url, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT)
    assert_refused(resp, 403, "SignatureDoesNotMatch")
    # sending the digest of the other bytes breaks it too
    resp = requests.put(
        url, data=other, headers={**headers, "Content-MD5": md5_b64(other)}, timeout=HTTP_TIMEOUT
    )
    assert_refused(resp, 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, "u/g.png")

    ok = requests.put(url, data=PNG, headers=headers, timeout=HTTP_TIMEOUT)
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"].strip('"') == hashlib.md5(PNG).hexdigest()


def test_content_md5_is_checked_even_when_not_signed(s3: Any, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "u/g2.png", ContentType="image/png")
    resp = requests.put(
        url,
        data=PNG,
        headers={"Content-Type": "image/png", "Content-MD5": md5_b64(b"other")},
        timeout=HTTP_TIMEOUT,
    )
    assert_refused(resp, 400, "BadDigest")
    assert not object_exists(s3, rgw_bucket, "u/g2.png")


# ---------------------------------------------------------------- (h) Content-Length
def test_signed_content_length_refuses_other_sizes(s3: Any, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "u/h.png", ContentType="image/png", ContentLength=len(PNG))
    headers = {"Content-Type": "image/png"}
    for body in (PNG[:-1], PNG + b"\0", PNG * 3, b""):
        resp = requests.put(url, data=body, headers=headers, timeout=HTTP_TIMEOUT)
        assert_refused(resp, 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, rgw_bucket, "u/h.png")

    ok = requests.put(url, data=PNG, headers=headers, timeout=HTTP_TIMEOUT)
    assert ok.status_code == 200, ok.text
    assert s3.head_object(Bucket=rgw_bucket, Key="u/h.png")["ContentLength"] == len(PNG)


def test_unsigned_content_length_lets_any_size_through(s3: Any, rgw_bucket: str) -> None:
    # why the broker must pass ContentLength when it signs
    url = presign_put(s3, rgw_bucket, "u/h2.png", ContentType="image/png")
    big = PNG * 64
    resp = requests.put(url, data=big, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert s3.head_object(Bucket=rgw_bucket, Key="u/h2.png")["ContentLength"] == len(big)


# ---------------------------------------------------------------- tagging
def test_signed_tagging_header_sets_tags_and_cannot_be_changed(s3: Any, rgw_bucket: str) -> None:
    tags = "state=pending&owner=alice"
    url = presign_put(s3, rgw_bucket, "u/t.png", ContentType="image/png", Tagging=tags)
    assert "x-amz-tagging" in signed_headers(url)

    for sent in ({"x-amz-tagging": "state=done&owner=alice"}, {}):
        resp = requests.put(
            url, data=PNG, headers={"Content-Type": "image/png", **sent}, timeout=HTTP_TIMEOUT
        )
        assert_refused(resp, 403, "SignatureDoesNotMatch")

    resp = requests.put(
        url,
        data=PNG,
        headers={"Content-Type": "image/png", "x-amz-tagging": tags},
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    tag_set = s3.get_object_tagging(Bucket=rgw_bucket, Key="u/t.png")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tag_set} == {"state": "pending", "owner": "alice"}


# ---------------------------------------------------------------- ACLs
def test_signed_private_acl_blocks_public_read(s3: Any, rgw: S3Endpoint, rgw_bucket: str) -> None:
    url = presign_put(s3, rgw_bucket, "u/acl.png", ContentType="image/png", ACL="private")
    assert "x-amz-acl" in signed_headers(url)
    headers = {"Content-Type": "image/png", "x-amz-acl": "private"}

    resp = requests.put(
        url, data=PNG, headers={**headers, "x-amz-acl": "public-read"}, timeout=HTTP_TIMEOUT
    )
    assert_refused(resp, 403, "SignatureDoesNotMatch")
    resp = requests.put(url, data=PNG, headers={"Content-Type": "image/png"}, timeout=HTTP_TIMEOUT)
    assert_refused(resp, 403, "SignatureDoesNotMatch")
    # x-amz-acl together with an x-amz-grant-* header is an invalid request
    resp = requests.put(
        url,
        data=PNG,
        headers={**headers, "x-amz-grant-read": f'uri="{ALL_USERS}"'},
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 400, resp.text
    assert not object_exists(s3, rgw_bucket, "u/acl.png")

    assert requests.put(url, data=PNG, headers=headers, timeout=HTTP_TIMEOUT).status_code == 200
    anonymous = requests.get(f"{rgw.endpoint_url}/{rgw_bucket}/u/acl.png", timeout=HTTP_TIMEOUT)
    assert_refused(anonymous, 403, "AccessDenied")


def test_public_access_block_refuses_public_acls(s3: Any, rgw: S3Endpoint, rgw_bucket: str) -> None:
    s3.put_public_access_block(
        Bucket=rgw_bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    url = presign_put(s3, rgw_bucket, "u/pab.png", ContentType="image/png")
    for extra in ({"x-amz-acl": "public-read"}, {"x-amz-grant-read": f'uri="{ALL_USERS}"'}):
        resp = requests.put(
            url, data=PNG, headers={"Content-Type": "image/png", **extra}, timeout=HTTP_TIMEOUT
        )
        assert_refused(resp, 403, "AccessDenied")
    assert not object_exists(s3, rgw_bucket, "u/pab.png")


def test_rgw16_applies_unsigned_x_amz_headers(s3: Any, rgw: S3Endpoint, rgw_bucket: str) -> None:
    """RGW 16 ignores x-amz-* headers that are not in X-Amz-SignedHeaders when
    checking the signature, but still applies them: a holder of a presigned PUT
    can make the object public, retag it or add metadata. (AWS refuses unsigned
    x-amz-* headers on presigned requests.) Hence: sign the ACL and the tags,
    and put a public access block on the bucket."""
    if not rgw.is_rgw16:
        pytest.skip(f"documents Ceph RGW 16; this S3 is {rgw.server}")
    url = presign_put(s3, rgw_bucket, "u/open.png", ContentType="image/png")
    resp = requests.put(
        url,
        data=PNG,
        headers={
            "Content-Type": "image/png",
            "x-amz-acl": "public-read",
            "x-amz-tagging": "state=done",
            "x-amz-meta-note": "client-chosen",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    anonymous = requests.get(f"{rgw.endpoint_url}/{rgw_bucket}/u/open.png", timeout=HTTP_TIMEOUT)
    assert anonymous.status_code == 200
    assert anonymous.content == PNG
    tag_set = s3.get_object_tagging(Bucket=rgw_bucket, Key="u/open.png")["TagSet"]
    assert tag_set == [{"Key": "state", "Value": "done"}]
    assert s3.head_object(Bucket=rgw_bucket, Key="u/open.png")["Metadata"] == {
        "note": "client-chosen"
    }


# ---------------------------------------------------------------- checksums
def test_rgw16_ignores_x_amz_checksum_sha256(s3: Any, rgw: S3Endpoint, rgw_bucket: str) -> None:
    """RGW 16 accepts a signed x-amz-checksum-sha256 that does not match the
    bytes and stores nothing of it: on this server only Content-MD5 protects
    the bytes."""
    if not rgw.is_rgw16:
        pytest.skip(f"documents Ceph RGW 16 (AWS enforces the checksum); this S3 is {rgw.server}")
    wrong = b64_sha256(b"not the bytes")
    url = presign_put(s3, rgw_bucket, "u/ck.png", ContentType="image/png", ChecksumSHA256=wrong)
    resp = requests.put(
        url,
        data=PNG,
        headers={"Content-Type": "image/png", "x-amz-checksum-sha256": wrong},
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 200, resp.text
    head = s3.head_object(Bucket=rgw_bucket, Key="u/ck.png", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(PNG)
    assert "ChecksumSHA256" not in head


# ---------------------------------------------------------------- CORS
@pytest.fixture
def cors_bucket(s3: Any, rgw_bucket: str) -> str:
    s3.put_bucket_cors(
        Bucket=rgw_bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [ORIGIN],
                    "AllowedMethods": ["PUT", "GET", "HEAD"],
                    "AllowedHeaders": ["content-type", "content-md5"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
    return rgw_bucket


def preflight(
    rgw: S3Endpoint,
    bucket: str,
    origin: str = ORIGIN,
    method: str = "PUT",
    headers: str = "content-type,content-md5",
) -> requests.Response:
    return requests.options(
        f"{rgw.endpoint_url}/{bucket}/u/cors.png",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=HTTP_TIMEOUT,
    )


def test_cors_preflight_allows_the_configured_origin(
    s3: Any, rgw: S3Endpoint, cors_bucket: str
) -> None:
    rules = s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == [ORIGIN]

    resp = preflight(rgw, cors_bucket)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Access-Control-Allow-Methods"] == "PUT"
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"content-type", "content-md5"}
    assert resp.headers["Access-Control-Expose-Headers"] == "ETag"
    assert resp.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in resp.headers.get("Vary", "")

    # the actual upload from that origin gets the headers a browser needs
    url = presign_put(s3, cors_bucket, "u/cors.png", ContentType="image/png")
    put = requests.put(
        url, data=PNG, headers={"Content-Type": "image/png", "Origin": ORIGIN}, timeout=HTTP_TIMEOUT
    )
    assert put.status_code == 200, put.text
    assert put.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert put.headers["Access-Control-Expose-Headers"] == "ETag"


def test_cors_preflight_refuses_what_is_not_configured(rgw: S3Endpoint, cors_bucket: str) -> None:
    for resp in (
        preflight(rgw, cors_bucket, origin="http://evil.example"),
        preflight(rgw, cors_bucket, method="DELETE"),
        preflight(rgw, cors_bucket, headers="content-type,x-amz-acl"),
    ):
        assert_refused(resp, 403, "AccessDenied")
        assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_is_not_access_control(s3: Any, cors_bucket: str) -> None:
    # a signed PUT from another origin still succeeds (a browser would just
    # hide the response): the signature, not CORS, guards the bucket
    url = presign_put(s3, cors_bucket, "u/cors2.png", ContentType="image/png")
    put = requests.put(
        url,
        data=PNG,
        headers={"Content-Type": "image/png", "Origin": "http://evil.example"},
        timeout=HTTP_TIMEOUT,
    )
    assert put.status_code == 200, put.text
    assert "Access-Control-Allow-Origin" not in put.headers


# ---------------------------------------------------------------- lifecycle
def test_lifecycle_rules_with_prefix_tag_and_abort_multipart(s3: Any, rgw_bucket: str) -> None:
    rules = [
        {
            "ID": "pending-prefix",
            "Status": "Enabled",
            "Filter": {"Prefix": "pending/"},
            "Expiration": {"Days": 1},
        },
        {
            "ID": "pending-tag",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": "state", "Value": "pending"}},
            "Expiration": {"Days": 2},
        },
        {
            "ID": "abort-mpu",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
    s3.put_bucket_lifecycle_configuration(
        Bucket=rgw_bucket, LifecycleConfiguration={"Rules": rules}
    )
    got = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=rgw_bucket)["Rules"]}

    assert set(got) == {"pending-prefix", "pending-tag", "abort-mpu"}
    assert got["pending-prefix"]["Filter"] == {"Prefix": "pending/"}
    assert got["pending-prefix"]["Expiration"] == {"Days": 1}
    assert got["pending-tag"]["Filter"] == {"Tag": {"Key": "state", "Value": "pending"}}
    assert got["pending-tag"]["Expiration"] == {"Days": 2}
    assert got["abort-mpu"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert all(r["Status"] == "Enabled" for r in got.values())


def test_lifecycle_rule_with_prefix_and_tags(s3: Any, rgw_bucket: str) -> None:
    rule = {
        "ID": "pending-under-u",
        "Status": "Enabled",
        "Expiration": {"Days": 1},
        "Filter": {"And": {"Prefix": "u/", "Tags": [{"Key": "state", "Value": "pending"}]}},
    }
    s3.put_bucket_lifecycle_configuration(
        Bucket=rgw_bucket, LifecycleConfiguration={"Rules": [rule]}
    )
    (got,) = s3.get_bucket_lifecycle_configuration(Bucket=rgw_bucket)["Rules"]
    assert got["ID"] == "pending-under-u"
    # RGW 16 stores the rule but echoes <Prefix> outside <And>: accept both shapes
    flt = got["Filter"]
    prefix = flt.get("Prefix", flt.get("And", {}).get("Prefix"))
    tags = flt.get("And", {}).get("Tags") or [flt["Tag"]]
    assert prefix == "u/"
    assert tags == [{"Key": "state", "Value": "pending"}]


def test_a_new_bucket_is_empty_and_private(s3: Any, rgw_bucket: str) -> None:
    assert rgw_bucket.startswith("broker-test-")
    assert s3.list_objects_v2(Bucket=rgw_bucket)["KeyCount"] == 0
    acl = s3.get_bucket_acl(Bucket=rgw_bucket)
    assert all(g["Grantee"].get("URI") != ALL_USERS for g in acl["Grants"])
