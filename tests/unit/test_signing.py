"""Tests for broker.signing: the fast presigner must match botocore byte for byte."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import random
import re
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
import botocore.session
import botocore.utils
import pytest

from broker.signing import MAX_EXPIRES_IN, Credentials, SigV4Presigner, valid_until
from broker.signing_reference import Boto3Presigner, boto3_call
from broker.storage import credentials_source
from tests.support.botocore_reference import botocore_frozen_time, make_s3_client

ENDPOINTS = [
    "https://s3.example.com",
    "https://s3.example.com:443",  # default port written out
    "http://s3.example.com:80",
    "http://s3.example.com:443",  # https's default port on http: kept in host
    "http://minio.internal:9000",
    "https://Storage.Example.COM:8443",  # mixed case host
    "http://localhost:9000/prefix",  # endpoint with a path component
    "https://gw.example.net/s3/api/",
    "http://127.0.0.1:9000",
    "http://[::1]:9000",
    "https://s3.eu-west-1.amazonaws.com",
]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "auto"]
FIXED_BUCKETS = [
    "bucket",
    "my-bucket",
    "my.bucket",
    "a.b.c",
    "ab",
    "abc",
    "UpperCase",
    "under_score",
    "xn--abc",
    "bucket-",
    "-bucket",
    "192.168.1.1",
    "a..b",
    "a" * 63,
    "b" * 64,
    "dots.and-dashes.123",
]
KEY_ALPHABETS = [
    string.ascii_letters + string.digits + "-_.~/",
    " !\"#$%&'()*+,:;<=>?@[\\]^`{|}",
    "éüßñ日本語中文한국어😀🎉\u0301\u200f\u00a0",
    "\t\n\x00\x7f",
]
FIXED_KEYS = [".", "..", "/", "//", "a/./b", "a/../../b", "%2F", "%", "+", " ", "~", "?", "#", "é"]
CONTENT_TYPES = [
    "image/png",
    "image/jpeg",
    "text/plain; charset=utf-8",
    '  text/html;   charset="utf-8"  ',
    "multipart/form-data; boundary=----x",
    "tëxt/plain",
    # botocore silently leaves exactly this value unsigned; we mirror it.
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded",
]
QUERY_TEXT = string.ascii_letters + string.digits + " -_.~!*'();:@&=+$,/?#[]%\"é日😀"
DAY = 86400
HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
IPV4_LIKE = re.compile(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}")


@dataclass
class Case:
    """One generated presign request."""

    endpoint: str
    addressing: str
    region: str
    creds: Credentials
    method: str
    bucket: str
    key: str
    expires_in: int
    headers: dict[str, str]
    query: dict[str, str]
    now: datetime


class Reference:
    """botocore clients (one per configuration) sharing one mutable credentials object."""

    def __init__(self) -> None:
        core = botocore.session.Session()
        core.set_credentials("placeholder", "placeholder")
        self.credentials = core.get_credentials()
        self.session = boto3.Session(botocore_session=core)
        self._clients: dict[tuple[str, str, str], Any] = {}

    def presign(self, case: Case) -> str:
        """Presign ``case`` with boto3, frozen at ``case.now``."""
        config = (case.endpoint, case.addressing, case.region)
        client = self._clients.get(config)
        if client is None:
            client = make_s3_client(
                case.endpoint, case.region, case.addressing, session=self.session
            )
            self._clients[config] = client
        # Plain botocore Credentials are re-read on every signature.
        self.credentials.access_key = case.creds.access_key
        self.credentials.secret_key = case.creds.secret_key
        self.credentials.token = case.creds.token
        with botocore_frozen_time(case.now):
            return Boto3Presigner(client).presign(
                case.method,
                case.bucket,
                case.key,
                expires_in=case.expires_in,
                headers=case.headers,
                query=case.query,
            )


@pytest.fixture(scope="module")
def reference() -> Iterator[Reference]:
    """A botocore reference isolated from the developer's AWS config and environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield Reference()


class FastSigners:
    """SigV4Presigner instances per configuration, reading credentials from a slot."""

    def __init__(self) -> None:
        self.current = Credentials("placeholder", "placeholder")
        self._signers: dict[tuple[str, str, str], SigV4Presigner] = {}

    def presign(self, case: Case, now: datetime | None = None) -> str:
        """Presign ``case`` with the fast signer (``now`` overrides ``case.now``)."""
        config = (case.endpoint, case.addressing, case.region)
        signer = self._signers.get(config)
        if signer is None:
            signer = SigV4Presigner(
                endpoint_url=case.endpoint,
                region=case.region,
                addressing=case.addressing,
                credentials=lambda: self.current,
            )
            self._signers[config] = signer
        self.current = case.creds
        return signer.presign(
            case.method,
            case.bucket,
            case.key,
            expires_in=case.expires_in,
            headers=case.headers,
            query=case.query,
            now=case.now if now is None else now,
        )


# -- input generation -----------------------------------------------------------------------


def random_text(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    """A random string of ``low``..``high`` characters from ``alphabet``."""
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def random_key(rng: random.Random) -> str:
    """An object key mixing safe, reserved, unicode and control characters."""
    shape = rng.random()
    if shape < 0.05:
        return random_text(rng, KEY_ALPHABETS[0], 900, 1500)  # very long
    if shape < 0.15:
        return rng.choice(FIXED_KEYS)
    alphabets = rng.sample(KEY_ALPHABETS, rng.randint(1, len(KEY_ALPHABETS)))
    key = random_text(rng, "".join(alphabets), 1, 60)
    prefix = rng.choice(["", "", "", "/", "//", "../", "./", "a/../", "uploads/2024/"])
    suffix = rng.choice(["", "", "", "/", "/..", "/.", ".jpg", " "])
    return prefix + key + suffix


def random_bucket(rng: random.Random) -> str:
    """A bucket name botocore accepts (DNS-compatible or not)."""
    if rng.random() < 0.5:
        return rng.choice(FIXED_BUCKETS)
    name = random_text(rng, string.ascii_lowercase + string.digits + "-.", 3, 63)
    if rng.random() < 0.1:
        name = name.upper()
    if name.endswith(("--x-s3", "--xa-s3", "--op-s3")):
        name += "z"
    return name


def random_now(rng: random.Random) -> datetime:
    """A naive UTC time, most of them in the last/first second of a UTC day."""
    day = datetime(2000, 1, 1) + timedelta(days=rng.randint(0, 15000))
    second = rng.choice([DAY - 1, DAY - 1, 0, 0, rng.randint(0, DAY - 1)])
    return day + timedelta(seconds=second, microseconds=rng.randint(0, 999_999))


def random_creds(rng: random.Random) -> Credentials:
    """Credentials with or without a session token, secrets with base64 characters."""
    access_key = rng.choice(["AKIDEXAMPLE", "AKIAIOSFODNN7EXAMPLE", "ASIA" + "Z" * 16, "minio"])
    secret_key = rng.choice(
        ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "s3cr3t+/=", "minio123", "ü-secret"]
    )
    token = rng.choice([None, None, "", "FwoGZXIvYXdzEJr//////////wEaD+tok=", "t ok/+=é"])
    return Credentials(access_key, secret_key, token)


def random_headers(rng: random.Random, names: list[str]) -> dict[str, str]:
    """A random subset of ``names`` with plausible values, in random order and case."""
    values: dict[str, Callable[[], str]] = {
        "content-type": lambda: rng.choice(CONTENT_TYPES),
        "content-length": lambda: str(rng.choice([0, 1, 5 * 2**20, rng.randint(0, 5 * 2**30)])),
        "content-md5": lambda: base64.b64encode(rng.randbytes(16)).decode(),
        "x-amz-checksum-sha256": lambda: base64.b64encode(rng.randbytes(32)).decode(),
        "cache-control": lambda: rng.choice(["max-age=31536000, immutable", "no-cache"]),
        "content-disposition": lambda: rng.choice(
            ['attachment; filename="a b.png"', "inline", "attachment;  filename*=UTF-8''%C3%A9"]
        ),
        "x-amz-meta-owner": lambda: rng.choice(["user-42", "  spaced   value "]),
        # the write-once condition every broker PUT URL signs
        "if-none-match": lambda: "*",
    }
    chosen = rng.sample(names, rng.randint(0, len(names)))
    headers = {}
    for name in chosen:
        spelled = rng.choice([name, name.upper(), name.title()])
        headers[spelled] = values[name]()
    return headers


def random_case(rng: random.Random) -> Case:
    """One random presign request covering every supported option."""
    operation = rng.choice(["get", "get", "head", "put", "put", "upload_part", "delete"])
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    if operation in ("get", "head"):
        method = operation.upper()
        optional: dict[str, Callable[[], str]] = {
            "response-content-type": lambda: rng.choice(CONTENT_TYPES),
            "response-content-disposition": lambda: random_text(rng, QUERY_TEXT, 0, 40),
            "response-cache-control": lambda: "max-age=60",
            "versionId": lambda: random_text(rng, QUERY_TEXT, 1, 20),
            "partNumber": lambda: str(rng.randint(1, 10000)),
        }
        for name in rng.sample(list(optional), rng.randint(0, 3)):
            query[name] = optional[name]()
    elif operation == "put":
        method = "PUT"
        headers = random_headers(
            rng,
            [
                "content-type",
                "content-length",
                "content-md5",
                "x-amz-checksum-sha256",
                "cache-control",
                "content-disposition",
                "x-amz-meta-owner",
                "if-none-match",
            ],
        )
    elif operation == "upload_part":
        method = "PUT"
        items = [
            ("partNumber", str(rng.randint(1, 10000))),
            ("uploadId", random_text(rng, QUERY_TEXT, 1, 60)),
        ]
        rng.shuffle(items)
        query = dict(items)
        headers = random_headers(rng, ["content-length", "content-md5", "x-amz-checksum-sha256"])
    else:
        method = "DELETE"
        if rng.random() < 0.5:
            query["versionId"] = random_text(rng, QUERY_TEXT, 1, 20)
    return Case(
        endpoint=rng.choice(ENDPOINTS),
        addressing=rng.choice(["path", "virtual"]),
        region=rng.choice(REGIONS),
        creds=random_creds(rng),
        method=rng.choice([method, method.lower()]),
        bucket=random_bucket(rng),
        key=random_key(rng),
        expires_in=rng.choice([1, 900, 3600, MAX_EXPIRES_IN, rng.randint(1, MAX_EXPIRES_IN)]),
        headers=headers,
        query=query,
        now=random_now(rng),
    )


def is_unusable_ipv6_virtual_url(case: Case) -> bool:
    """The one configuration where botocore emits a broken URL and the fast signer refuses.

    botocore virtual-hosts a dotted, DNS-compatible bucket on a plain-http
    endpoint even when that endpoint is an IP literal; for IPv6 the result is
    "http://my.bucket.[::1]:9000/..." signed for host "[::1]:9000".
    """
    labels = case.bucket.split(".")
    return (
        case.endpoint.startswith("http://[")
        and case.addressing == "virtual"
        and len(labels) > 1
        and len(case.bucket) >= 3
        and all(HOST_LABEL.fullmatch(label) for label in labels)
        and not IPV4_LIKE.fullmatch(case.bucket)
    )


# -- byte-for-byte comparison ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_matches_botocore_for_random_requests(reference: Reference, seed: int) -> None:
    rng = random.Random(seed)
    fast = FastSigners()
    compared = 0
    for _ in range(800):
        case = random_case(rng)
        if is_unusable_ipv6_virtual_url(case):
            with pytest.raises(ValueError, match="IPv6"):
                fast.presign(case)
            continue
        expected = reference.presign(case)
        assert fast.presign(case) == expected, case
        # The same instant as an aware datetime in another zone signs the same.
        shifted = case.now.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=-7)))
        assert fast.presign(case, now=shifted) == expected
        compared += 1
    assert compared > 700


# Names sorting before, inside and after the X-Amz-* block of the canonical query string.
ODD_QUERY_NAMES = ["A", "Zed", "X-Am", "X-Amz-A", "X-Amz-Foo", "X-Amz-Zzz", "X-B", "0", "_u", "é"]


def test_matches_botocore_for_query_names_sorting_among_the_auth_parameters(
    reference: Reference,
) -> None:
    # No boto3 parameter produces such names, so a before-sign hook appends
    # them to the URL the way botocore serialises query parameters.
    extra: dict[str, str] = {}

    def append_extra(request: Any, **_: Any) -> None:
        if extra:
            separator = "&" if "?" in request.url else "?"
            request.url += separator + botocore.utils.percent_encode_sequence(extra)

    client = make_s3_client("http://minio.internal:9000", "eu-west-1", session=reference.session)
    client.meta.events.register("before-sign.s3.GetObject", append_extra)
    creds = Credentials("AKIDEXAMPLE", "secret", "token")
    reference.credentials.access_key = creds.access_key
    reference.credentials.secret_key = creds.secret_key
    reference.credentials.token = creds.token
    signer = SigV4Presigner(
        endpoint_url="http://minio.internal:9000", region="eu-west-1", credentials=lambda: creds
    )
    rng = random.Random(7)
    now = datetime(2024, 3, 10, 23, 59, 59)
    for _ in range(200):
        extra.clear()
        for name in rng.sample(ODD_QUERY_NAMES, rng.randint(1, 4)):
            extra[name] = random_text(rng, QUERY_TEXT, 0, 12)
        params: dict[str, Any] = {"Bucket": "bucket", "Key": "k"}
        query: dict[str, str] = {}
        if rng.random() < 0.5:
            params["ResponseContentType"] = query["response-content-type"] = "image/png"
        with botocore_frozen_time(now):
            expected = client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
        query.update(extra)
        assert signer.presign("GET", "bucket", "k", expires_in=60, query=query, now=now) == expected


def test_matches_botocore_for_the_brokers_own_put_and_get(reference: Reference) -> None:
    # Exactly what the broker signs: a write-once PUT (If-None-Match) with its checksum, tag
    # and ACL, and a GET pinning Cache-Control, type and disposition, in the broker's order.
    fast = FastSigners()
    put = Case(
        endpoint="http://127.0.0.1:7480",
        addressing="path",
        region="us-east-1",
        creds=Credentials("broker-test-access", "broker-test-secret"),
        method="PUT",
        bucket="images",
        key="alice/0123456789abcdef0123456789abcdef.png",
        expires_in=300,
        headers={
            "Content-Type": "image/png",
            "Content-Length": "1234",
            "Cache-Control": "private",
            "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "x-amz-tagging": "broker-state=pending",
            "x-amz-acl": "bucket-owner-full-control",
            "If-None-Match": "*",
        },
        query={},
        now=datetime(2026, 1, 2, 3, 4, 5),
    )
    get = dataclasses.replace(
        put,
        method="GET",
        headers={},
        query={
            "response-cache-control": "private, max-age=3600, immutable",
            "response-content-type": "image/png",
            "response-content-disposition": 'inline; filename="a b.png"',
        },
    )
    for case in (put, get):
        assert fast.presign(case) == reference.presign(case)
    assert "if-none-match" in fast.presign(put)
    assert "response-cache-control=private%2C%20max-age%3D3600%2C%20immutable" in fast.presign(get)


def test_matches_botocore_across_day_boundary_with_one_signer(reference: Reference) -> None:
    fast = FastSigners()
    template = Case(
        endpoint="http://minio.internal:9000",
        addressing="virtual",
        region="eu-west-1",
        creds=Credentials("AKIDEXAMPLE", "secret/+=", "session-token"),
        method="PUT",
        bucket="uploads",
        key="day/boundary é.png",
        expires_in=900,
        headers={"Content-Type": "image/png", "Content-Length": "1234", "Content-MD5": "bWQ1"},
        query={},
        now=datetime(2024, 2, 29, 23, 59, 59),
    )
    midnight = datetime(2024, 3, 1)
    times = [midnight - timedelta(microseconds=1), midnight, midnight + timedelta(seconds=1)]
    for now in times + times[::-1]:
        case = dataclasses.replace(template, now=now)
        assert fast.presign(case) == reference.presign(case)


def test_signature_matches_aws_documentation_example() -> None:
    # https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
    signer = SigV4Presigner(
        endpoint_url="https://s3.amazonaws.com",
        region="us-east-1",
        addressing="virtual",
        credentials=lambda: Credentials(
            "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        ),
    )
    url = signer.presign(
        "GET", "examplebucket", "test.txt", expires_in=86400, now=datetime(2013, 5, 24)
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


# -- what botocore signs (documented facts the signer relies on) ---------------------------


def signed_headers_of(url: str) -> list[str]:
    """The X-Amz-SignedHeaders of a presigned URL."""
    return parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")


def test_botocore_signs_length_md5_type_and_checksum_for_put_object(reference: Reference) -> None:
    client = make_s3_client("https://s3.example.com", "us-east-1", session=reference.session)
    url = client.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": "b",
            "Key": "k",
            "ContentType": "image/png",
            "ContentLength": 10,
            "ContentMD5": "bWQ1",
            "ChecksumSHA256": "c2hh",
        },
        ExpiresIn=60,
    )
    assert signed_headers_of(url) == [
        "content-length",
        "content-md5",
        "content-type",
        "host",
        "x-amz-checksum-sha256",
    ]
    assert "x-id=" not in url


def test_botocore_signs_length_and_md5_for_upload_part(reference: Reference) -> None:
    client = make_s3_client("https://s3.example.com", "us-east-1", session=reference.session)
    url = client.generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": "b",
            "Key": "k",
            "PartNumber": 2,
            "UploadId": "u",
            "ContentLength": 10,
            "ContentMD5": "bWQ1",
        },
        ExpiresIn=60,
    )
    assert signed_headers_of(url) == ["content-length", "content-md5", "host"]
    assert urlsplit(url).query.startswith("partNumber=2&uploadId=u&X-Amz-Algorithm=")


def test_form_urlencoded_content_type_is_left_unsigned_like_botocore() -> None:
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: Credentials("AK", "SK"),
    )
    url = signer.presign(
        "PUT",
        "b",
        "k",
        expires_in=60,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert signed_headers_of(url) == ["host"]


# -- signing key cache ----------------------------------------------------------------------


def derive_signing_key(secret: str, date: str, region: str) -> bytes:
    """SigV4 key derivation written out independently of the module under test."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def test_signing_key_is_cached_per_day_and_changes_at_midnight() -> None:
    creds = Credentials("AK", "secret-1")
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com", region="eu-west-1", credentials=lambda: creds
    )
    last_second = datetime(2024, 12, 31, 23, 59, 59, 999_999)
    morning = datetime(2024, 12, 31, 8, 0, 0)
    new_year = datetime(2025, 1, 1, 0, 0, 0)

    key_dec31 = signer.signing_key(now=last_second)
    assert key_dec31 == derive_signing_key("secret-1", "20241231", "eu-west-1")
    assert signer.signing_key(now=morning) is key_dec31  # cached, not re-derived

    key_jan1 = signer.signing_key(now=new_year)
    assert key_jan1 == derive_signing_key("secret-1", "20250101", "eu-west-1")
    assert key_jan1 != key_dec31


def test_signing_key_changes_when_the_secret_changes(reference: Reference) -> None:
    current = [Credentials("AK", "secret-1", "token-1")]
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com", region="us-east-1", credentials=lambda: current[0]
    )
    now = datetime(2024, 6, 1, 12, 0, 0)
    first = signer.signing_key(now=now)

    current[0] = Credentials("AK", "secret-1", "token-1")  # equal values, new object
    assert signer.signing_key(now=now) is first

    current[0] = Credentials("AK", "secret-2", "token-1")  # only the secret rotated
    second = signer.signing_key(now=now)
    assert second == derive_signing_key("secret-2", "20240601", "us-east-1")
    assert second != first

    case = Case(
        endpoint="https://s3.example.com",
        addressing="path",
        region="us-east-1",
        creds=current[0],
        method="GET",
        bucket="bucket",
        key="rotated.png",
        expires_in=60,
        headers={},
        query={},
        now=now,
    )
    assert signer.presign("GET", "bucket", "rotated.png", expires_in=60, now=now) == (
        reference.presign(case)
    )


# -- other behaviour ------------------------------------------------------------------------


def test_default_time_is_now() -> None:
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: Credentials("AK", "SK"),
    )
    before = int(time.time())
    url = signer.presign("GET", "b", "k", expires_in=60)
    after = int(time.time())
    stamp = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert before <= signed_at.timestamp() <= after


def test_valid_until_reads_the_expiry_a_url_carries() -> None:
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: Credentials("AK", "SK"),
    )
    at = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    url = signer.presign("GET", "b", "k", expires_in=7, now=at)
    assert valid_until(url) == datetime(2027, 1, 1, 0, 0, 6, tzinfo=UTC)


def test_accepts_botocore_frozen_credentials_from_a_boto3_session(reference: Reference) -> None:
    session = boto3.Session(
        aws_access_key_id="AKSESSION", aws_secret_access_key="sk/+", aws_session_token="tk"
    )
    source = credentials_source(session)
    signer = SigV4Presigner(
        endpoint_url="http://minio.internal:9000", region="us-east-1", credentials=source
    )
    now = datetime(2024, 6, 1, 12, 0, 0)
    case = Case(
        endpoint="http://minio.internal:9000",
        addressing="path",
        region="us-east-1",
        creds=Credentials("AKSESSION", "sk/+", "tk"),
        method="PUT",
        bucket="bucket",
        key="from session.png",
        expires_in=300,
        headers={"Content-Type": "image/png", "Content-Length": "5"},
        query={},
        now=now,
    )
    url = signer.presign(
        "PUT", "bucket", "from session.png", expires_in=300, headers=case.headers, now=now
    )
    assert url == reference.presign(case)


def always(creds: Credentials) -> Callable[[], Credentials]:
    """A credentials callable that always returns ``creds``."""
    return lambda: creds


def test_concurrent_use_across_seconds_days_and_credentials() -> None:
    # Threads switching time and credentials race on the shared caches; every
    # URL must still equal the one a private, single-threaded signer makes.
    rng = random.Random(5)
    jobs = []
    for _ in range(400):
        creds = rng.choice([Credentials("AK1", "s1"), Credentials("AK2", "s2", "tok")])
        now = datetime(2024, 1, 1) + timedelta(seconds=rng.choice([-1, 0, 1, DAY - 1, DAY]))
        jobs.append((creds, now, f"k{rng.randint(0, 9)}"))
    expected = []
    for creds, now, key in jobs:
        private = SigV4Presigner(
            endpoint_url="https://s3.example.com",
            region="us-east-1",
            credentials=always(creds),
        )
        expected.append(private.presign("GET", "bucket", key, expires_in=60, now=now))

    slot = threading.local()
    shared = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: slot.creds,
    )

    def run(index: int) -> str:
        creds, now, key = jobs[index]
        slot.creds = creds
        return shared.presign("GET", "bucket", key, expires_in=60, now=now)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(5):
                assert list(pool.map(run, range(len(jobs)))) == expected
    finally:
        sys.setswitchinterval(interval)


def test_credentials_repr_hides_the_secret_and_token() -> None:
    text = repr(Credentials("AKID", "very-secret", "very-token"))
    assert "AKID" in text
    assert "very-secret" not in text
    assert "very-token" not in text


@pytest.mark.parametrize(
    "bucket", ["", "a:b", "a/b", "bucket name", "x" * 256, "arn:aws:s3:::bucket"]
)
def test_rejects_bucket_names_that_botocore_rejects(reference: Reference, bucket: str) -> None:
    client = make_s3_client("https://s3.example.com", "us-east-1", session=reference.session)
    with pytest.raises(botocore.exceptions.ParamValidationError):
        client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: Credentials("AK", "SK"),
    )
    with pytest.raises(ValueError, match="bucket"):
        signer.presign("GET", bucket, "k", expires_in=60)


def test_rejects_ipv6_virtual_hosting_of_dotted_buckets() -> None:
    signer = SigV4Presigner(
        endpoint_url="http://[::1]:9000",
        region="us-east-1",
        addressing="virtual",
        credentials=lambda: Credentials("AK", "SK"),
    )
    with pytest.raises(ValueError, match="IPv6"):
        signer.presign("GET", "my.bucket", "k", expires_in=60)
    assert signer.presign("GET", "bucket", "k", expires_in=60).startswith(
        "http://[::1]:9000/bucket/k?"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "POST"}, "method"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": MAX_EXPIRES_IN + 1}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"expires_in": 1.5}, "expires_in"),
        ({"key": ""}, "key"),
        ({"bucket": "dir--x-s3"}, "S3 Express"),
        ({"headers": {"Host": "evil.example"}}, "cannot be signed"),
        ({"headers": {"User-Agent": "x"}}, "cannot be signed"),
        ({"headers": {"x-amz-content-sha256": "abc"}}, "cannot be signed"),
        ({"headers": {"Content-Type": "a", "content-type": "b"}}, "duplicate"),
        ({"headers": {"Bad Name": "x"}}, "invalid header name"),
        ({"query": {"X-Amz-Signature": "x"}}, "reserved"),
        ({"query": {"x-amz-credential": "x"}}, "reserved"),
        ({"query": {"": "x"}}, "empty"),
    ],
)
def test_rejects_invalid_presign_arguments(kwargs: dict[str, Any], message: str) -> None:
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: Credentials("AK", "SK"),
    )
    arguments: dict[str, Any] = {"method": "GET", "bucket": "b", "key": "k", "expires_in": 60}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        signer.presign(
            arguments.pop("method"), arguments.pop("bucket"), arguments.pop("key"), **arguments
        )


@pytest.mark.parametrize(
    ("endpoint_url", "region", "addressing"),
    [
        ("ftp://s3.example.com", "us-east-1", "path"),
        ("s3.example.com", "us-east-1", "path"),
        ("https://s3.example.com?x=1", "us-east-1", "path"),
        ("https://user:pw@s3.example.com", "us-east-1", "path"),
        ("https://s3.example.com:99999", "us-east-1", "path"),
        ("https://s3.example.com/a/../b", "us-east-1", "path"),
        ("https://s3.example.com//a", "us-east-1", "path"),
        ("https://s3.example.com/a b", "us-east-1", "path"),
        ("https://s3.example.com", "Custom_Region", "path"),
        ("https://s3.example.com", "", "path"),
        ("https://s3.example.com", "aws-global", "path"),
        ("https://s3.example.com", "us-east-1", "auto"),
    ],
)
def test_rejects_unsupported_configuration(endpoint_url: str, region: str, addressing: str) -> None:
    with pytest.raises(ValueError):
        SigV4Presigner(
            endpoint_url=endpoint_url,
            region=region,
            addressing=addressing,
            credentials=lambda: Credentials("AK", "SK"),
        )


def test_boto3_call_maps_headers_and_query_in_order() -> None:
    operation, params = boto3_call(
        "put", "b", "k", headers={"Content-Length": "5"}, query={"uploadId": "u", "partNumber": "3"}
    )
    assert operation == "upload_part"
    assert params == {
        "Bucket": "b",
        "Key": "k",
        "UploadId": "u",
        "PartNumber": 3,
        "ContentLength": 5,
    }
    assert list(params)[2:4] == ["UploadId", "PartNumber"]

    operation, params = boto3_call("PUT", "b", "k", headers={"X-Amz-Meta-Owner": "me"})
    assert (operation, params["Metadata"]) == ("put_object", {"Owner": "me"})


@pytest.mark.parametrize(
    ("method", "headers", "query"),
    [
        ("PUT", {"X-Amz-Meta-Owner": "me"}, {"uploadId": "u", "partNumber": "1"}),
        ("GET", {"Content-Type": "image/png"}, {}),
        ("PUT", {"Content-Length": "05"}, {}),
        ("GET", {}, {"uploadId": "u"}),
    ],
)
def test_boto3_call_rejects_what_it_cannot_express(
    method: str, headers: dict[str, str], query: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        boto3_call(method, "b", "k", headers=headers, query=query)
