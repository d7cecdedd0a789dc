"""Fast SigV4 query-string ("presigned URL") signing for S3.

``SigV4Presigner`` produces exactly the URL string that botocore 1.44's
``client.generate_presigned_url`` produces for the same inputs at the same
instant, for a client configured as::

    boto3.client("s3", endpoint_url=..., region_name=...,
                 config=Config(signature_version="s3v4",
                               s3={"addressing_style": "path" | "virtual"}))

while computing once, and caching, everything that does not depend on the
request (endpoint parsing, bucket addressing, the SigV4 signing key, the quoted
credential scope, ...): a signature is then a few hashes.  Only the standard
library is used; :mod:`broker.signing_reference` holds the botocore side (the
equivalent boto3 call, the yardstick of the tests and ``BROKER_SIGNER=boto3``).

Facts about botocore 1.44 that the code below mirrors (verified empirically):

* The canonical URI is the URL path exactly as sent; S3 paths are NOT
  normalised (no ``..``/``//`` folding).  The key is UTF-8 percent-encoded
  with ``/`` and ``~`` left as is (``quote(key, safe="/~")``).
* Query parameters are encoded with ``quote(..., safe="-._~")``.  In the URL
  the operation parameters come first, in the caller's order, followed by the
  auth parameters in the fixed order Algorithm, Credential, Date, Expires,
  SignedHeaders[, Security-Token] and finally ``X-Amz-Signature``.  The
  canonical query string sorts the encoded ``(name, value)`` pairs as tuples.
* The payload hash is always ``UNSIGNED-PAYLOAD``.
* Every header that botocore serialises from the operation parameters is
  signed.  For presigned ``put_object`` / ``upload_part`` that includes
  ``Content-Length``, ``Content-MD5``, ``Content-Type`` and
  ``x-amz-checksum-sha256`` when given; nothing extra (no
  ``x-amz-sdk-checksum-algorithm``, no ``x-id`` query parameter) is added.
* Exception: a ``Content-Type`` of exactly
  ``application/x-www-form-urlencoded; charset=utf-8`` is silently dropped
  from the signature by botocore (it mistakes it for its own default); we do
  the same so that both paths stay interchangeable.
* ``X-Amz-Security-Token`` is added whenever the token is not ``None`` (an
  empty string token yields an empty parameter).
* The ``host`` header is the lower-cased host name, with the port only when
  it is not the scheme's default (the URL keeps the endpoint as written).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import operator
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, Protocol
from urllib.parse import parse_qsl, quote, quote_from_bytes, urlsplit

__all__ = ["MAX_EXPIRES_IN", "Credentials", "CredentialsLike", "SigV4Presigner", "valid_until"]

#: SigV4 presigned URLs cannot be valid for more than seven days.
MAX_EXPIRES_IN: Final = 7 * 24 * 3600

_ALGORITHM: Final = "AWS4-HMAC-SHA256"
_SERVICE: Final = "s3"
_TERMINATOR: Final = "aws4_request"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE"})

# Characters botocore leaves unencoded: in query names/values
# (botocore.utils.percent_encode) and in the object key (the rest-xml
# serializer uses safe="/~" for greedy labels such as {Key+}).
_QUERY_SAFE: Final = "-._~"
_KEY_SAFE: Final = "/~"
# quote(key, safe="/~") leaves ASCII letters, digits and "_.-~/" alone.  Mapping
# the punctuation to a letter and asking bytes.isalnum() (ASCII only, so any
# UTF-8 multi-byte sequence fails it) is the cheapest "does this key need
# quoting at all?" test: ~2x faster than a regex, ~4x faster than quote().
_KEY_PUNCTUATION_TO_ALNUM: Final = bytes.maketrans(b"_.-~/", b"aaaaa")

# botocore.auth.SIGNED_HEADERS_BLACKLIST: botocore silently refuses to sign
# these, so asking us to sign one is a caller error.  The second group would
# change the meaning of the signature (botocore uses x-amz-content-sha256 as
# the payload hash, host/x-amz-date/... are set by the signer itself).
_UNSIGNABLE_HEADERS: Final = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
        "host",
        "authorization",
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
    }
)
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# botocore.auth.SigV4QueryAuth._modify_request_before_signing deletes a
# content-type with exactly this value before signing.
_FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded; charset=utf-8"
_AUTH_QUERY_NAMES: Final = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-security-token",
        "x-amz-signature",
    }
)
# The first and last auth parameter names in canonical (sorted) order; an
# operation parameter whose encoded name falls strictly between them forces a
# full sort, anything else can be placed before/after the auth block directly.
_FIRST_AUTH_NAME: Final = "X-Amz-Algorithm"
_LAST_AUTH_NAME: Final = "X-Amz-SignedHeaders"

# botocore.handlers.VALID_BUCKET (ARNs are not supported here).
_VALID_BUCKET: Final = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
# Suffixes that make botocore's endpoint ruleset switch to S3 Express /
# Outposts endpoints and auth schemes, which this signer does not implement.
_SPECIAL_BUCKET_SUFFIXES: Final = ("--x-s3", "--xa-s3", "--op-s3")
# botocore.endpoint_provider.VALID_HOST_LABEL_RE and botocore.compat.IPV4_RE.
_HOST_LABEL: Final = re.compile(r"(?!-)[a-zA-Z\d-]{1,63}(?<!-)")
_IPV4_LIKE: Final = re.compile(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}")
# botocore.utils.validate_region_name.
_VALID_REGION: Final = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{,63}(?<!-)")
# Endpoint paths are restricted to what botocore leaves untouched (no
# quoting, no dot segments, no empty segments), so the raw path it uses for
# virtual-hosted URLs and the normalised one it uses for path-style URLs agree.
_ENDPOINT_PATH: Final = re.compile(r"(?:/[A-Za-z0-9_\-~.]+)*/?")

_EPOCH_NAIVE: Final = datetime(1970, 1, 1)
_EPOCH_AWARE: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND: Final = timedelta(seconds=1)
_SECONDS_PER_DAY: Final = 86400

# Memo of quoted query names/values, which repeat a lot (content types,
# parameter names); cleared when it grows too big.  Object keys are not
# memoised: most presigned PUTs are for fresh, unique keys.
_MEMO_LIMIT: Final = 8192
_query_memo: dict[str, str] = {}

_sha256 = hashlib.sha256
_now = time.time


@dataclass(frozen=True, slots=True)
class Credentials:
    """AWS credentials; ``token`` is the session token for temporary credentials."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


class CredentialsLike(Protocol):
    """Anything with ``access_key``/``secret_key``/``token``, e.g. botocore's frozen credentials."""

    @property
    def access_key(self) -> str:
        """AWS access key id."""
        ...

    @property
    def secret_key(self) -> str:
        """AWS secret access key."""
        ...

    @property
    def token(self) -> str | None:
        """Session token, or ``None`` for long-term credentials."""
        ...


def _quote_query(text: str) -> str:
    """Percent-encode a query parameter name or value like botocore.utils.percent_encode."""
    quoted = _query_memo.get(text)
    if quoted is None:
        quoted = quote(text, safe=_QUERY_SAFE)
        if len(_query_memo) >= _MEMO_LIMIT:
            _query_memo.clear()
        _query_memo[text] = quoted
    return quoted


def _hmac_sha256(key: bytes, msg: str) -> bytes:
    """One HMAC-SHA256 step of the SigV4 key derivation."""
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _is_virtual_hostable(bucket: str, allow_subdomains: bool) -> bool:
    """Mirror botocore's ``aws.isVirtualHostableS3Bucket`` ruleset function."""
    if len(bucket) < 3 or bucket.lower() != bucket or _IPV4_LIKE.match(bucket):
        return False
    labels = bucket.split(".") if allow_subdomains else [bucket]
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


def _epoch_seconds(now: datetime) -> int:
    """Whole seconds since the epoch; naive datetimes are taken as UTC (like botocore)."""
    if now.tzinfo is None:
        return (now - _EPOCH_NAIVE) // _ONE_SECOND
    return (now - _EPOCH_AWARE) // _ONE_SECOND


def valid_until(url: str) -> datetime:
    """When a SigV4 presigned URL stops working: its ``X-Amz-Date`` plus ``X-Amz-Expires``."""
    query = dict(parse_qsl(urlsplit(url).query))
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed_at + timedelta(seconds=int(query["X-Amz-Expires"]))


class _SigningState:
    """Everything derived from (credentials, UTC date, region): the cached signing key."""

    __slots__ = (
        "access_key",
        "auth_head",
        "day",
        "inner",
        "outer",
        "scope",
        "secret_key",
        "signing_key",
        "token",
        "token_param",
    )

    def __init__(self, creds: CredentialsLike, day: int, datestamp: str, region: str) -> None:
        self.access_key = creds.access_key
        self.secret_key = creds.secret_key
        self.token = creds.token
        self.day = day
        k_date = _hmac_sha256(f"AWS4{self.secret_key}".encode(), datestamp)
        k_region = _hmac_sha256(k_date, region)
        k_service = _hmac_sha256(k_region, _SERVICE)
        self.signing_key = _hmac_sha256(k_service, _TERMINATOR)
        # HMAC(k, m) = H((k ^ opad) || H((k ^ ipad) || m)).  The key is 32
        # bytes (< SHA-256's 64-byte block), so it is zero-padded; hashing the
        # two padded keys once and copying the states per signature is ~2x
        # faster than hmac.new()/hmac.digest() with OpenSSL 3.
        padded = self.signing_key.ljust(64, b"\0")
        self.inner = _sha256(bytes(b ^ 0x36 for b in padded))
        self.outer = _sha256(bytes(b ^ 0x5C for b in padded))
        self.scope = f"{datestamp}/{region}/{_SERVICE}/{_TERMINATOR}"
        credential = _quote_query(f"{self.access_key}/{self.scope}")
        self.auth_head = f"X-Amz-Algorithm={_ALGORITHM}&X-Amz-Credential={credential}&X-Amz-Date="
        # botocore checks ``token is not None``: "" still adds the parameter.
        self.token_param = (
            "" if self.token is None else f"&X-Amz-Security-Token={_quote_query(self.token)}"
        )

    def matches(self, creds: CredentialsLike, day: int) -> bool:
        """Whether this state is valid for ``creds`` on UTC day ``day``."""
        return (
            day == self.day
            and creds.secret_key == self.secret_key
            and creds.access_key == self.access_key
            and creds.token == self.token
        )


class _Context:
    """What is constant for one credentials object during one second."""

    __slots__ = ("auth_date", "creds", "inner", "outer", "secs", "state", "token_param")

    def __init__(self, creds: CredentialsLike, secs: int, state: _SigningState) -> None:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(secs))
        self.creds = creds
        self.secs = secs
        self.state = state
        #: Query string up to and including the X-Amz-Date value.
        self.auth_date = f"{state.auth_head}{amz_date}"
        self.token_param = state.token_param
        # The string to sign is "AWS4-HMAC-SHA256\n<X-Amz-Date>\n<scope>\n"
        # (constant for the second, so fed into the HMAC inner hash here) plus
        # the hex SHA-256 of the canonical request.
        self.inner = state.inner.copy()
        self.inner.update(f"{_ALGORITHM}\n{amz_date}\n{state.scope}\n".encode())
        self.outer = state.outer


class _HeaderPlan:
    """Canonical-headers template and SignedHeaders for one tuple of header names and a host."""

    __slots__ = ("content_type_index", "names", "signed", "signed_param", "template", "values_of")

    def __init__(self, names: tuple[str, ...], host: str) -> None:
        lowered: dict[str, str] = {}
        for name in names:
            lname = name.lower()
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if lname in _UNSIGNABLE_HEADERS:
                raise ValueError(f"header {name!r} cannot be signed in a presigned URL")
            if lname in lowered:
                raise ValueError(f"duplicate header {name!r}")
            lowered[lname] = name
        # SigV4: canonical headers sorted by lower-cased name, one
        # "name:value\n" line each; the values are filled in per request.
        ordered = sorted([*lowered, "host"])
        value_names = [lname for lname in ordered if lname != "host"]
        #: The caller's header names, in canonical order (host excluded).
        self.names = tuple(lowered[lname] for lname in value_names)
        #: Maps the headers mapping to its values in canonical order.
        self.values_of: Callable[[Mapping[str, str]], tuple[str, ...]]
        if not self.names:  # only a dropped form Content-Type was given
            self.values_of = lambda headers: ()
        elif len(self.names) == 1:  # itemgetter would return a bare value
            only = self.names[0]
            self.values_of = lambda headers: (headers[only],)
        else:
            self.values_of = operator.itemgetter(*self.names)
        self.content_type_index = (
            value_names.index("content-type") if "content-type" in lowered else -1
        )
        self.template = "".join(
            f"host:{host.replace('%', '%%')}\n"
            if lname == "host"
            else f"{lname.replace('%', '%%')}:%s\n"
            for lname in ordered
        )
        self.signed = ";".join(ordered)
        self.signed_param = _quote_query(self.signed)


class _BucketTarget(NamedTuple):
    """Where a bucket's objects live, worked out once per bucket."""

    url_prefix: str  # scheme://host/path/ up to the quoted key
    path_prefix: str  # the path part of url_prefix (canonical URI prefix)
    host: str  # value of the signed host header
    host_line: str  # "host:<host>\n"
    header_plans: dict[tuple[str, ...], _HeaderPlan]


class SigV4Presigner:
    """Presigns S3 requests with SigV4 query auth; output matches botocore byte for byte.

    ``endpoint_url`` is an http(s) URL, optionally with a port and a simple path
    prefix; ``addressing`` is botocore's ``addressing_style`` ("path" or
    "virtual", with botocore's fallback to path style for buckets that cannot
    be virtual-hosted).  ``credentials`` is called on every presign and must
    return an immutable snapshot, e.g. ``Credentials(...)`` or botocore's
    ``get_frozen_credentials()``; returning the same (or an equal) object while
    nothing changes keeps the per-second cache warm.

    Thread-safe: the caches are immutable objects swapped in with a single
    attribute assignment, so concurrent callers at worst recompute them.
    """

    # ``presign(now=...)`` signs at exactly that instant (cache-stable URLs rely on it).
    pins_signing_time = True

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        addressing: str = "path",
        credentials: Callable[[], CredentialsLike],
    ) -> None:
        """Parse and validate the endpoint once; ``credentials`` is called on every presign."""
        if addressing not in ("path", "virtual"):
            raise ValueError(f"addressing must be 'path' or 'virtual', not {addressing!r}")
        if not _VALID_REGION.fullmatch(region) or not region or region == "aws-global":
            raise ValueError(f"invalid region {region!r}")
        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"endpoint_url must be http(s): {endpoint_url!r}")
        if parts.query or parts.fragment or "?" in endpoint_url or "#" in endpoint_url:
            raise ValueError(f"endpoint_url must not have a query or fragment: {endpoint_url!r}")
        if "@" in parts.netloc:
            raise ValueError("endpoint_url must not contain user info")
        hostname = parts.hostname
        if not hostname:
            raise ValueError(f"endpoint_url has no host: {endpoint_url!r}")
        port = parts.port  # raises ValueError for a malformed port
        segments = parts.path.split("/")
        if not _ENDPOINT_PATH.fullmatch(parts.path) or "." in segments or ".." in segments:
            raise ValueError(f"unsupported endpoint_url path: {parts.path!r}")
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._is_ipv6 = ":" in hostname
        if self._is_ipv6:
            if "%" in hostname:
                raise ValueError("IPv6 zone identifiers are not supported")
            ipaddress.IPv6Address(hostname)  # raises ValueError if malformed
        self._is_ip = self._is_ipv6 or _IPV4_LIKE.fullmatch(hostname) is not None
        # botocore (_host_from_url) drops the port from the host header only
        # when it is the scheme's default, whether or not it was written.
        self._port_suffix = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
        self._hostname = hostname  # urlsplit lower-cases it
        # Path-style URLs use the normalised endpoint path (always ending in
        # "/"); virtual-hosted ones use the raw path, and botocore's _urljoin
        # drops one "/" when joining "/prefix/" with "/key".
        self._path_style_prefix = parts.path if parts.path.endswith("/") else f"{parts.path}/"
        self._virtual_prefix = self._path_style_prefix
        self._region = region
        self._force_path_style = addressing == "path"
        self._credentials = credentials
        self._buckets: dict[str, _BucketTarget] = {}
        self._state: _SigningState | None = None  # signing key for one (creds, day)
        self._context: _Context | None = None  # per (credentials object, second)

    # -- cached pieces ---------------------------------------------------------------------

    def _bucket_target(self, bucket: str) -> _BucketTarget:
        """Work out (once per bucket) where the bucket's objects live."""
        if not _VALID_BUCKET.fullmatch(bucket):
            raise ValueError(f"invalid bucket name {bucket!r}")
        if bucket.endswith(_SPECIAL_BUCKET_SUFFIXES):
            raise ValueError(f"S3 Express / Outposts bucket names are not supported: {bucket!r}")
        # botocore's S3 endpoint ruleset for a custom endpoint:
        #  1. bucket is a single DNS label: virtual host unless the endpoint is
        #     an IP address (then path style);
        #  2. otherwise, over plain http, a dotted DNS-compatible bucket is
        #     still virtual-hosted (even for an IPv4 endpoint: "b.c.127.0.0.1");
        #  3. everything else falls back to path style.
        # addressing_style="path" sets ForcePathStyle, which skips 1 and 2.
        virtual = False
        if not self._force_path_style:
            if _is_virtual_hostable(bucket, allow_subdomains=False):
                virtual = not self._is_ip
            elif self._scheme == "http" and _is_virtual_hostable(bucket, allow_subdomains=True):
                if self._is_ipv6:
                    # botocore builds "b.c.[::1]" here but signs host "[::1]",
                    # a URL that can never work.
                    raise ValueError("virtual addressing of a dotted bucket on an IPv6 endpoint")
                virtual = True
        if virtual:
            netloc = f"{bucket}.{self._netloc}"
            host = f"{bucket}.{self._hostname}{self._port_suffix}"
            path_prefix = self._virtual_prefix
        else:
            netloc = self._netloc
            host = f"[{self._hostname}]" if self._is_ipv6 else self._hostname
            host += self._port_suffix
            path_prefix = f"{self._path_style_prefix}{bucket}/"
        target = _BucketTarget(
            f"{self._scheme}://{netloc}{path_prefix}", path_prefix, host, f"host:{host}\n", {}
        )
        if len(self._buckets) >= 1024:
            self._buckets.clear()
        self._buckets[bucket] = target
        return target

    def _signing_state(self, creds: CredentialsLike, secs: int) -> _SigningState:
        """Return the signing state for ``creds`` at ``secs``, deriving a new key if needed.

        The key depends on (secret, UTC date, region): it is re-derived when
        the UTC day changes or the credentials' values change.
        """
        day = secs // _SECONDS_PER_DAY
        state = self._state
        if state is None or not state.matches(creds, day):
            datestamp = time.strftime("%Y%m%d", time.gmtime(secs))
            state = _SigningState(creds, day, datestamp, self._region)
            self._state = state
        return state

    def _context_for(self, creds: CredentialsLike, secs: int) -> _Context:
        """Return the per-second context for ``creds``, building (and caching) it if needed."""
        context = self._context
        if (
            context is not None
            and context.secs == secs
            and context.state.matches(creds, secs // _SECONDS_PER_DAY)
        ):
            # Equal credentials in a new object, e.g. botocore's
            # get_frozen_credentials() builds a new tuple on every call.
            return context
        context = _Context(creds, secs, self._signing_state(creds, secs))
        self._context = context
        return context

    @staticmethod
    def _header_plan(target: _BucketTarget, names: tuple[str, ...]) -> _HeaderPlan:
        """Return (building and caching it if needed) the plan for these header names."""
        plans = target.header_plans
        plan = plans.get(names)
        if plan is None:
            plan = _HeaderPlan(names, target.host)
            if len(plans) >= 256:
                plans.clear()
            plans[names] = plan
        return plan

    # -- public API ------------------------------------------------------------------------

    def signing_key(self, now: datetime | None = None) -> bytes:
        """Return the (cached) SigV4 signing key for the current credentials and UTC date."""
        secs = int(_now()) if now is None else _epoch_seconds(now)
        return self._signing_state(self._credentials(), secs).signing_key

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
        """Return a presigned URL for ``method`` on ``bucket``/``key``.

        ``headers`` are signed (the client must send them with these values),
        ``query`` parameters are added to the URL (e.g. ``response-content-type``,
        ``partNumber``/``uploadId``); ``now`` defaults to the current time.
        """
        if method not in _METHODS:
            method = method.upper()
            if method not in _METHODS:
                raise ValueError(f"unsupported method {method!r}")
        if type(expires_in) is not int or not 0 < expires_in <= MAX_EXPIRES_IN:
            raise ValueError(f"expires_in must be an int in 1..{MAX_EXPIRES_IN}")
        if not key:
            raise ValueError("key must not be empty")
        target = self._buckets.get(bucket) or self._bucket_target(bucket)
        encoded_key = key.encode()
        if encoded_key.translate(_KEY_PUNCTUATION_TO_ALNUM).isalnum():
            quoted_key = key
        else:
            quoted_key = quote_from_bytes(encoded_key, _KEY_SAFE)

        secs = int(_now()) if now is None else _epoch_seconds(now)
        creds = self._credentials()
        context = self._context
        if (
            context is None
            or context.secs != secs
            # Equal-but-new credentials objects are common: botocore's
            # get_frozen_credentials() builds a new namedtuple on every call
            # (and namedtuple equality is a cheap C-level comparison).
            or (context.creds is not creds and context.creds != creds)
        ):
            context = self._context_for(creds, secs)

        if headers:
            names = tuple(headers)
            plan = target.header_plans.get(names) or self._header_plan(target, names)
            values = plan.values_of(headers)
            if (
                plan.content_type_index >= 0
                and values[plan.content_type_index] == _FORM_CONTENT_TYPE
            ):
                # botocore quirk: this exact Content-Type is never signed.
                skipped = plan.names[plan.content_type_index]
                plan = self._header_plan(target, tuple([n for n in names if n != skipped]))
                values = tuple([headers[name] for name in plan.names])
            # SigV4 "Trimall" (botocore: ``" ".join(value.split())`` per value).
            # Joined with single spaces, the values are already trimmed iff the
            # joined string is: one check instead of one per header.
            joined = " ".join(values)
            if joined != " ".join(joined.split()):
                values = tuple([" ".join(value.split()) for value in values])
            canonical_headers = plan.template % values
            signed = plan.signed
            signed_param = plan.signed_param
        else:
            canonical_headers = target.host_line
            signed = signed_param = "host"

        # The auth parameters are already in canonical order except that
        # Security-Token sorts before SignedHeaders.
        auth_date = context.auth_date
        token_param = context.token_param
        if query:
            url_query, canonical_query = _merge_query(
                query,
                f"{auth_date}&X-Amz-Expires={expires_in}"
                f"&X-Amz-SignedHeaders={signed_param}{token_param}",
                f"{auth_date}&X-Amz-Expires={expires_in}"
                f"{token_param}&X-Amz-SignedHeaders={signed_param}",
            )
            canonical_request = (
                f"{method}\n{target.path_prefix}{quoted_key}\n{canonical_query}\n"
                f"{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD"
            )
        else:
            url_query = ""
            canonical_request = (
                f"{method}\n{target.path_prefix}{quoted_key}\n{auth_date}&X-Amz-Expires="
                f"{expires_in}{token_param}&X-Amz-SignedHeaders={signed_param}\n"
                f"{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD"
            )
        inner = context.inner.copy()
        inner.update(_sha256(canonical_request.encode()).hexdigest().encode())
        outer = context.outer.copy()
        outer.update(inner.digest())
        signature = outer.hexdigest()
        if url_query:
            return f"{target.url_prefix}{quoted_key}?{url_query}&X-Amz-Signature={signature}"
        return (
            f"{target.url_prefix}{quoted_key}?{auth_date}&X-Amz-Expires={expires_in}"
            f"&X-Amz-SignedHeaders={signed_param}{token_param}&X-Amz-Signature={signature}"
        )


def _merge_query(query: Mapping[str, str], url_auth: str, canonical_auth: str) -> tuple[str, str]:
    """Combine operation query parameters with the auth block, for the URL and canonically."""
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if not name:
            raise ValueError("query parameter names must not be empty")
        if name.lower() in _AUTH_QUERY_NAMES:
            raise ValueError(f"query parameter {name!r} is reserved for SigV4")
        pairs.append((_quote_query(name), _quote_query(value)))
    url_query = "&".join([f"{k}={v}" for k, v in pairs]) + "&" + url_auth
    pairs.sort()
    before = [f"{k}={v}" for k, v in pairs if k < _FIRST_AUTH_NAME]
    after = [f"{k}={v}" for k, v in pairs if k > _LAST_AUTH_NAME]
    if len(before) + len(after) != len(pairs):
        # A name sorting inside the auth block (e.g. "X-Amz-Foo"): do the
        # general sort of botocore's _canonical_query_string_url.
        for part in canonical_auth.split("&"):
            name, _, value = part.partition("=")
            pairs.append((name, value))
        pairs.sort()
        return url_query, "&".join([f"{k}={v}" for k, v in pairs])
    canonical = "&".join([*before, canonical_auth, *after])
    return url_query, canonical
