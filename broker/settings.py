"""Settings: each one declared once, read from environment variables and validated in the factory.

A field of :class:`Settings` is its attribute and its type; :func:`setting` gives it the rest:
the environment variable, the default (as the variable spells it), the rules its value obeys
and its one-line meaning. Rules that relate several settings are the named checks in
``CHECKS``. The README's configuration tables are rendered from here (``make settings-table``)
and a test fails when the two differ.

Nothing runs at import time: :func:`load_settings` is called by ``create_app`` with the
environment (or a test mapping), so tests and several apps in one process never share state.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from limits import parse_many

from broker.domain import DEFAULT_ALLOWED_TYPES, KNOWN_IMAGE_TYPES, REFUSED_IMAGE_TYPES
from broker.multipart import MAX_OBJECT_SIZE
from broker.variants.spec import (
    DEFAULT_EFFORT,
    DEFAULT_VARIANTS,
    OutputFormat,
    RenderLimits,
    VariantConfigError,
    VariantSettings,
    VariantSpec,
    parse_format,
    parse_variants,
)

MODES = ("production", "demo", "test")
SIGNERS = ("fast", "boto3")
ADDRESSING_STYLES = ("path", "virtual")
# Signed into every PUT so no other ACL or grant can ride along (some S3 implementations apply
# unsigned x-amz-* headers). bucket-owner-full-control is the one canned ACL buckets with ACLs
# disabled accept, and for a bucket the broker owns it means private. Empty omits the header.
OBJECT_ACLS = ("bucket-owner-full-control", "private", "")
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# SigV4 presigned URLs cannot live longer than 7 days; S3 refuses X-Amz-Expires above this.
SIGV4_MAX_EXPIRES = 7 * 24 * 3600


class ConfigError(RuntimeError):
    """The configuration is missing or invalid; the message names the variable."""


# A rule says what is wrong with a parsed value ("must be positive"), or None when it is fine.
Rule = Callable[[Any], str | None]


def positive(value: float) -> str | None:
    """Rule: greater than zero."""
    return None if value > 0 else "must be positive"


def not_negative(value: float) -> str | None:
    """Rule: zero or more."""
    return None if value >= 0 else "must not be negative"


def at_most(limit: int, why: str) -> Rule:
    """Rule: no more than ``limit`` (``why`` names where the limit comes from)."""
    return lambda value: None if value <= limit else f"must be at most {limit} ({why})"


def one_of(*choices: str) -> Rule:
    """Rule: one of ``choices``."""
    named = ", ".join(choice or "empty" for choice in choices)
    return lambda value: None if value in choices else f"must be one of {named}, not {value!r}"


def http_url(value: str | None) -> str | None:
    """Rule: unset, or an absolute http(s) URL."""
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        return "must be an http(s) URL"
    return None


def at_least_one(what: str) -> Rule:
    """Rule: a list that names at least one ``what``."""
    return lambda value: None if value else f"must name at least one {what}"


def between(low: int, high: int) -> Rule:
    """Rule: from ``low`` to ``high``, both included (unset optional values pass)."""
    return lambda value: (
        None if value is None or low <= value <= high else f"must be between {low} and {high}"
    )


def known_image_types(value: tuple[str, ...]) -> str | None:
    """Rule: a non-empty subset of the types the broker can verify (and display)."""
    refused = [t for t in value if t in REFUSED_IMAGE_TYPES]
    if refused:
        return f"may not name {refused[0]}: {REFUSED_IMAGE_TYPES[refused[0]]}"
    unknown = [t for t in value if t not in KNOWN_IMAGE_TYPES]
    if unknown or not value:
        return f"may only name {', '.join(KNOWN_IMAGE_TYPES)}" + (
            f" (unknown: {', '.join(unknown)})" if unknown else ""
        )
    return None


def rate_limit(value: str) -> str | None:
    """Rule: empty (no limit), or limits like ``120/minute;2000/day``."""
    try:
        if value:
            parse_many(value)
    except ValueError:
        return f"must be a limit like '120/minute', not {value!r}"
    return None


# The counter stores ``limits`` provides with a moving window (memcached has none); an unknown
# scheme is a typo to refuse at start-up.
RATE_LIMIT_SCHEMES = (
    "memory",
    "mongodb",
    "mongodb+srv",
    "redis",
    "rediss",
    "redis+unix",
    "redis+sentinel",
    "redis+cluster",
    "valkey",
    "valkeys",
)


def storage_uri(value: str) -> str | None:
    """Rule: empty (the broker's MongoDB), or a URI of a counter store ``limits`` knows."""
    scheme = urlsplit(value).scheme
    if value and (scheme not in RATE_LIMIT_SCHEMES or "://" not in value):
        return f"must be empty or a {', '.join(s + '://' for s in RATE_LIMIT_SCHEMES)} URI"
    return None


def _text(value: str) -> str:
    return value.strip()


def _optional(value: str) -> str | None:
    return value.strip() or None


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _lower_csv(value: str) -> tuple[str, ...]:
    return tuple(item.lower() for item in _csv(value))


def _upper(value: str) -> str:
    return value.strip().upper()


def _int(value: str) -> int:
    return int(value.strip())


def _optional_int(value: str) -> int | None:
    return int(value.strip()) if value.strip() else None


def _format_name(value: str) -> str:
    return parse_format(value).name


def _float(value: str) -> float:
    return float(value.strip())


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _pem(value: str) -> str | None:
    # Operators often pass PEM keys through env files with literal "\n" sequences.
    return value.strip().replace("\\n", "\n") or None


# How a variable's text becomes a value of the field's type (unless a setting names its own).
_PARSERS: dict[object, Callable[[str], Any]] = {
    str: _text,
    str | None: _optional,
    int: _int,
    int | None: _optional_int,
    float: _float,
    bool: _bool,
    tuple[str, ...]: _csv,
}


@dataclass(frozen=True)
class Declared:
    """What :func:`setting` declares about one field."""

    env: str
    default: str
    meaning: str
    rules: tuple[Rule, ...]
    parse: Callable[[str], Any] | None
    shown_default: str | None

    def readme_default(self) -> str:
        """The default as the README shows it."""
        if self.shown_default is not None:
            return self.shown_default
        return f"`{self.default}`" if self.default else "unset"


def setting(
    env: str,
    default: str,
    meaning: str,
    *rules: Rule,
    parse: Callable[[str], Any] | None = None,
    shown_default: str | None = None,
) -> Any:
    """Declare a field's variable, default, rules and meaning (its type is its annotation)."""
    declared = Declared(env, default, meaning, rules, parse, shown_default)
    return field(metadata={"setting": declared})


@dataclass(frozen=True)
class Settings:
    """Every operator-facing setting: a typed field each, declared with :func:`setting`."""

    mode: str = setting(
        "BROKER_ENV", "production", "`production`, `demo` or `test`", one_of(*MODES)
    )
    mongodb_uri: str = setting(
        "MONGODB_URI",
        "",
        "MongoDB connection string",
        shown_default="embedded in demo mode; required otherwise",
    )
    mongodb_db: str = setting(
        "BROKER_MONGODB_DB",
        "",
        "database name",
        shown_default="the database in the URI, else `broker`",
    )
    mongodb_timeout_ms: int = setting(
        "BROKER_MONGODB_TIMEOUT_MS",
        "3000",
        "server selection / connect timeout, milliseconds; a request answers 503 after it",
        positive,
    )
    jwt_secret: str | None = setting(
        "BROKER_JWT_SECRET",
        "",
        "HS256 secret, at least 32 characters",
        shown_default="none (generated in demo mode)",
    )
    jwt_public_key: str | None = setting(
        "BROKER_JWT_PUBLIC_KEY",
        "",
        "PEM public key; switches verification to RS256 (`\\n` escapes allowed)",
        parse=_pem,
    )
    jwt_private_key: str | None = setting(
        "BROKER_JWT_PRIVATE_KEY",
        "",
        "PEM private key, only for `flask create-token` with RS256",
        parse=_pem,
    )
    jwt_audience: str | None = setting(
        "BROKER_JWT_AUDIENCE", "", "when set, tokens must carry this `aud`"
    )
    jwt_issuer: str | None = setting(
        "BROKER_JWT_ISSUER", "", "when set, tokens must carry this `iss`"
    )
    # A week: longer-lived bearer tokens are credentials nobody can take back in time.
    jwt_max_ttl: int = setting(
        "BROKER_JWT_MAX_TTL",
        "604800",
        "tokens whose `exp - iat` exceeds this many seconds are refused (401); a token without"
        " `iat` is judged by `exp - now`",
        positive,
    )
    s3_bucket: str = setting("BROKER_S3_BUCKET", "images", "bucket name")
    s3_endpoint_url: str | None = setting(
        "BROKER_S3_ENDPOINT_URL",
        "",
        "S3 endpoint the broker calls",
        http_url,
        shown_default="AWS",
    )
    s3_public_endpoint_url: str | None = setting(
        "BROKER_S3_PUBLIC_ENDPOINT_URL",
        "",
        "S3 endpoint as browsers reach it; URLs are signed for this host",
        http_url,
        shown_default="`BROKER_S3_ENDPOINT_URL`",
    )
    s3_region: str = setting("BROKER_S3_REGION", "us-east-1", "region")
    s3_addressing: str = setting(
        "BROKER_S3_ADDRESSING",
        "path",
        "`path` or `virtual` (bucket in the host name)",
        one_of(*ADDRESSING_STYLES),
    )
    s3_connect_timeout: float = setting(
        "BROKER_S3_CONNECT_TIMEOUT", "3", "seconds to connect to S3; S3 calls never hang"
    )
    s3_read_timeout: float = setting(
        "BROKER_S3_READ_TIMEOUT", "10", "seconds to wait for an S3 answer; S3 calls never hang"
    )
    s3_object_acl: str = setting(
        "BROKER_S3_OBJECT_ACL",
        "bucket-owner-full-control",
        "canned ACL signed into every PUT, so no other ACL or grant header can ride along; "
        "`private` also works, empty omits it (providers that refuse ACL headers)",
        one_of(*OBJECT_ACLS),
    )
    s3_tagging: bool = setting(
        "BROKER_S3_TAGGING",
        "true",
        "tag uploads `broker-state=pending` (signed) and `confirmed` at confirm; turn off for "
        "providers without object tagging (Cloudflare R2, Backblaze B2)",
    )
    pending_object_days: int = setting(
        "BROKER_PENDING_OBJECT_DAYS",
        "2",
        "`setup-bucket`: the bucket expires objects still tagged pending after this many days",
        positive,
    )
    multipart_abort_days: int = setting(
        "BROKER_MULTIPART_ABORT_DAYS",
        "1",
        "`setup-bucket`: the bucket aborts unfinished multipart uploads after this many days",
        positive,
    )
    # Long enough to resume after a reload, a train tunnel or a night; the bucket's own
    # lifecycle rule (BROKER_MULTIPART_ABORT_DAYS) must not abort it sooner.
    multipart_expires: int = setting(
        "BROKER_MULTIPART_EXPIRES",
        "86400",
        "seconds a multipart upload has from create to complete (its parts can be signed and "
        "re-signed until then); the sweeper aborts it afterwards",
        positive,
    )
    # Unset: boto3's usual chain (profile, container or instance role) finds credentials.
    aws_access_key_id: str | None = setting(
        "AWS_ACCESS_KEY_ID", "", "S3 access key", shown_default="boto3's chain"
    )
    aws_secret_access_key: str | None = setting(
        "AWS_SECRET_ACCESS_KEY", "", "S3 secret key", shown_default="boto3's chain"
    )
    aws_session_token: str | None = setting(
        "AWS_SESSION_TOKEN",
        "",
        "S3 session token (temporary credentials)",
        shown_default="boto3's chain",
    )
    max_upload_bytes: int = setting(
        "BROKER_MAX_UPLOAD_BYTES",
        "10485760",
        "largest image accepted, bytes, whether sent in one PUT or in parts (raise it for "
        "multipart uploads of large files: one PUT is at most 5 GiB)",
        positive,
        at_most(MAX_OBJECT_SIZE, "S3's largest object"),
    )
    allowed_types: tuple[str, ...] = setting(
        "BROKER_ALLOWED_TYPES",
        ",".join(DEFAULT_ALLOWED_TYPES),
        "allowed types: a subset of these four and `image/avif` (checked by its `ftyp` brand and"
        " `ispe` size); HEIC is refused (the bundled libvips has no HEVC decoder)",
        known_image_types,
        parse=_lower_csv,
    )
    kinds: tuple[str, ...] = setting(
        "BROKER_KINDS", "profile,gallery,cover", "allowed image kinds", at_least_one("kind")
    )
    # Without a checksum the bucket cannot tell the declared bytes from others of the same
    # length; off only for legacy clients.
    require_checksum: bool = setting(
        "BROKER_REQUIRE_CHECKSUM",
        "true",
        "presign needs `content_md5` or `checksum_sha256`; `false` relaxes this for legacy clients"
        " (every PUT URL still writes once, confirm still checks the object)",
    )
    upload_expires: int = setting(
        "BROKER_UPLOAD_EXPIRES",
        "300",
        "presigned PUT lifetime, seconds",
        positive,
        at_most(SIGV4_MAX_EXPIRES, "the SigV4 limit"),
    )
    confirm_grace: int = setting(
        "BROKER_CONFIRM_GRACE",
        "600",
        "seconds after the PUT URL expires during which confirm is still accepted",
        not_negative,
    )
    download_expires: int = setting(
        "BROKER_DOWNLOAD_EXPIRES",
        "300",
        "signed GET lifetime when none is asked for, seconds",
        positive,
    )
    download_max_expires: int = setting(
        "BROKER_DOWNLOAD_MAX_EXPIRES",
        "3600",
        "longest signed GET lifetime a client may ask for, seconds",
        positive,
        at_most(SIGV4_MAX_EXPIRES, "the SigV4 limit"),
    )
    signed_url_window: int = setting(
        "BROKER_SIGNED_URL_WINDOW",
        "3600",
        "signed GETs asked for within one window are the same URL (cacheable); `0` signs every "
        "request anew. Never extends a URL past `BROKER_DOWNLOAD_MAX_EXPIRES`",
        not_negative,
    )
    lookup_cache_ttl: float = setting(
        "BROKER_LOOKUP_CACHE_TTL",
        "30",
        "seconds an in-process cache keeps what signing needs (id → owner, key, type, "
        "filename); `0` turns it off",
        not_negative,
    )
    lookup_cache_size: int = setting(
        "BROKER_LOOKUP_CACHE_SIZE",
        "10000",
        "entries of that cache (and of the signed-URL memo); `0` turns it off",
        not_negative,
    )
    public_url: str | None = setting(
        "BROKER_PUBLIC_URL",
        "",
        "the broker's own address as the world reaches it (`https://img.example.com`, a path "
        "prefix allowed): public links start with it",
        http_url,
        shown_default="the request's host",
    )
    public_kinds: tuple[str, ...] = setting(
        "BROKER_PUBLIC_KINDS",
        "",
        "kinds whose new images are public unless the upload says otherwise (e.g. `profile`)",
        shown_default="none",
    )
    public_link_max_age: int = setting(
        "BROKER_PUBLIC_LINK_MAX_AGE",
        "60",
        "longest a browser or CDN may keep a public link's redirect, seconds (never past the "
        "signed URL it leads to); a link that died still answers from such caches this long",
        not_negative,
    )
    cors_origins: tuple[str, ...] = setting(
        "BROKER_CORS_ORIGINS",
        "http://localhost:8000",
        "origins allowed for the API and in the bucket CORS",
    )
    trusted_proxies: int = setting(
        "BROKER_TRUSTED_PROXIES",
        "0",
        "reverse proxies in front of the broker whose `X-Forwarded-For`, `-Proto`, `-Host` and "
        "`-Prefix` it believes (client address for per-address limits, the host of public "
        "links); `0`: none",
        not_negative,
    )
    max_pixels: int = setting(
        "BROKER_MAX_PIXELS", "40000000", "largest width × height accepted at confirm", positive
    )
    min_width: int = setting("BROKER_MIN_WIDTH", "1", "smallest accepted width, pixels")
    min_height: int = setting("BROKER_MIN_HEIGHT", "1", "smallest accepted height, pixels")
    max_width: int = setting("BROKER_MAX_WIDTH", "20000", "largest accepted width, pixels")
    max_height: int = setting("BROKER_MAX_HEIGHT", "20000", "largest accepted height, pixels")
    signer: str = setting(
        "BROKER_SIGNER",
        "fast",
        "`fast` (the broker's own SigV4 signer) or `boto3` (reference path)",
        one_of(*SIGNERS),
    )
    max_body_bytes: int = setting(
        "BROKER_MAX_BODY_BYTES",
        "65536",
        "request bodies over this answer 413 before parsing",
        positive,
    )
    # Limits per caller, in the "N/period" form ("120/minute;2000/day"); empty turns one off.
    rate_limit_presign: str = setting(
        "BROKER_RATE_LIMIT_PRESIGN",
        "120/minute",
        "per-user limit of presigns (`N/second\\|minute\\|hour\\|day`, several joined by `;`); "
        "empty turns it off",
        rate_limit,
    )
    rate_limit_confirm: str = setting(
        "BROKER_RATE_LIMIT_CONFIRM",
        "120/minute",
        "per-user limit of confirms, in the same form; empty turns it off",
        rate_limit,
    )
    rate_limit_parts: str = setting(
        "BROKER_RATE_LIMIT_PARTS",
        "1200/minute",
        "per-user limit of the calls on a multipart upload's parts (signing, listing), in the "
        "same form; empty turns it off",
        rate_limit,
    )
    rate_limit_sign: str = setting(
        "BROKER_RATE_LIMIT_SIGN",
        "1200/minute",
        "per-user limit shared by every way of getting a signed GET; empty turns it off",
        rate_limit,
    )
    rate_limit_public: str = setting(
        "BROKER_RATE_LIMIT_PUBLIC",
        "1200/minute",
        "per-client-address limit of public-link redirects (they need no token); empty turns it"
        " off",
        rate_limit,
    )
    rate_limit_storage_uri: str = setting(
        "BROKER_RATE_LIMIT_STORAGE_URI",
        "",
        "where the counters live: unset, the broker's MongoDB (collection `rate_limits`, shared "
        "by every process and host); `mongodb://…` another MongoDB; `redis://…` Redis (needs the "
        "`redis` package); `memory://` each process its own (N processes: N × the limit)",
        storage_uri,
        shown_default="the broker's MongoDB",
    )
    quota_max_images: int = setting(
        "BROKER_QUOTA_MAX_IMAGES",
        "10000",
        "per-user quota of recorded images; `0`: none",
        not_negative,
    )
    quota_max_bytes: int = setting(
        "BROKER_QUOTA_MAX_BYTES",
        "5368709120",
        "per-user quota of the recorded images' total bytes; `0`: none",
        not_negative,
    )
    log_format: str = setting(
        "BROKER_LOG_FORMAT",
        "json",
        "logs to stderr as JSON lines, or `text` (the default of `make run`)",
        one_of(*LOG_FORMATS),
    )
    log_level: str = setting(
        "BROKER_LOG_LEVEL",
        "INFO",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
        one_of(*LOG_LEVELS),
        parse=_upper,
    )
    variants: tuple[VariantSpec, ...] = setting(
        "BROKER_VARIANTS",
        DEFAULT_VARIANTS,
        "variants the worker makes, `name:WxH[:cover]`, comma-separated: each fits inside its box"
        " keeping the aspect ratio, never enlarged (`:cover` crops the centre to fill it); names"
        " `[a-z0-9][a-z0-9_-]{0,31}` but not `original`, sides 1..8192, at most 16; empty: none",
        parse=parse_variants,
    )
    variant_format_name: str = setting(
        "BROKER_VARIANT_FORMAT",
        "webp",
        "`webp` (keeps alpha and animation), `avif` (smaller, far slower to encode, first frame)"
        " or `jpeg` (alpha flattened onto white, first frame)",
        parse=_format_name,
    )
    variant_quality: int | None = setting(
        "BROKER_VARIANT_QUALITY",
        "",
        "encoder quality 1..100",
        between(1, 100),
        shown_default="80 (WebP, JPEG), 50 (AVIF)",
    )
    variant_effort: int = setting(
        "BROKER_VARIANT_EFFORT",
        str(DEFAULT_EFFORT),
        "encoder CPU effort, WebP 0..6, AVIF 0..9 (ignored for JPEG); AVIF at 4 costs seconds per"
        " large variant",
        not_negative,  # the upper bound depends on the format: see _effort_fits_the_format
    )
    variant_timeout: int = setting(
        "BROKER_VARIANT_TIMEOUT",
        "60",
        "seconds one image (all its variants) may take before its render process is killed and"
        " its variants are `failed`",
        between(1, 3600),
    )
    variant_memory_mb: int = setting(
        "BROKER_VARIANT_MEMORY_MB",
        "1024",
        "address-space ceiling of the render process, MiB (1024 decodes any image of 40 Mpx);"
        " an image that needs more is `failed`",
        between(256, 1 << 20),
    )
    variant_threads: int = setting(
        "BROKER_VARIANT_THREADS",
        "1",
        "libvips threads per render: 1 with one worker per core makes the most images per"
        " CPU-second",
        between(1, 64),
    )
    variant_lease: int = setting(
        "BROKER_VARIANT_LEASE",
        "60",
        "seconds a worker holds a job without a heartbeat; a dead worker's job is taken over"
        " after it",
        between(1, 3600),
    )
    variant_max_attempts: int = setting(
        "BROKER_VARIANT_MAX_ATTEMPTS",
        "5",
        "tries of an image that keeps failing transiently (a crash, a worker killed mid-job)"
        " before its variants are `failed`",
        between(1, 100),
    )
    variant_retry_delay: float = setting(
        "BROKER_VARIANT_RETRY_DELAY",
        "30",
        "seconds before the first retry of such an image; doubled each time, at most an hour",
        positive,
    )
    metrics_token: str | None = setting(
        "BROKER_METRICS_TOKEN",
        "",
        "when set, `GET /metrics` answers only `Authorization: Bearer <it>`; unset, only in demo"
        " and test modes (404 otherwise)",
    )

    @property
    def jwt_algorithm(self) -> str:
        """RS256 when a public key is configured, else HS256."""
        return "RS256" if self.jwt_public_key else "HS256"

    @property
    def variant_format(self) -> OutputFormat:
        """The encoding variants are written in."""
        return parse_format(self.variant_format_name)

    @property
    def variant_settings(self) -> VariantSettings:
        """What the renderer needs: the variants, their encoding and the per-image limits."""
        fmt = self.variant_format
        return VariantSettings(
            specs=self.variants,
            format=fmt,
            quality=self.variant_quality or fmt.default_quality,
            effort=self.variant_effort,
            limits=RenderLimits(
                max_pixels=self.max_pixels,
                memory_bytes=self.variant_memory_mb << 20,
                timeout_seconds=float(self.variant_timeout),
                threads=self.variant_threads,
            ),
        )


# Variables read by other parts than the app itself; the README lists them apart.
OTHER_VARIABLES: tuple[tuple[str, str, str], ...] = (
    (
        "PROMETHEUS_MULTIPROC_DIR",
        "prometheus_client",
        "under gunicorn: an empty directory, so `/metrics` sums every worker",
    ),
    ("BROKER_HOST", "`make run`", "address the demo listens on (`127.0.0.1`)"),
    ("BROKER_PORT", "`make run`", "port the demo listens on (`8000`)"),
    ("BROKER_DEMO_DIR", "`make run`", "where the embedded MongoDB keeps its files (`var/demo`)"),
    (
        "BROKER_DEMO_SEED",
        "`make run`",
        "`1` seeds the sample library, `0` does not; on by default unless `MONGODB_URI` is set",
    ),
)


def _verifies_tokens(s: Settings) -> str | None:
    if s.mode == "production" and not (s.jwt_secret or s.jwt_public_key):
        return (
            "BROKER_JWT_SECRET (HS256) or BROKER_JWT_PUBLIC_KEY (RS256) is required: "
            "the broker refuses to start without a way to verify tokens"
        )
    return None


def _secret_is_long_enough(s: Settings) -> str | None:
    if s.mode == "production" and s.jwt_secret and len(s.jwt_secret) < 32:
        return "BROKER_JWT_SECRET must be at least 32 characters"
    return None


def _database_is_named(s: Settings) -> str | None:
    if s.mode == "production" and not s.mongodb_uri:
        return "MONGODB_URI is required outside demo and test modes"
    return None


def _default_lifetime_within_cap(s: Settings) -> str | None:
    if s.download_expires > s.download_max_expires:
        return "BROKER_DOWNLOAD_EXPIRES must not exceed BROKER_DOWNLOAD_MAX_EXPIRES"
    return None


def _multipart_uploads_end_before_the_bucket_aborts_them(s: Settings) -> str | None:
    if s.multipart_expires > s.multipart_abort_days * 86400:
        return (
            "BROKER_MULTIPART_EXPIRES must not exceed BROKER_MULTIPART_ABORT_DAYS days: the "
            "bucket would abort uploads the broker still lets clients finish"
        )
    return None


def _dimensions_are_ordered(s: Settings) -> str | None:
    if s.min_width > s.max_width or s.min_height > s.max_height:
        return "minimum dimensions must not exceed maximum dimensions"
    return None


def _public_kinds_are_kinds(s: Settings) -> str | None:
    unknown = [kind for kind in s.public_kinds if kind not in s.kinds]
    if unknown:
        return f"BROKER_PUBLIC_KINDS names kinds that BROKER_KINDS does not: {', '.join(unknown)}"
    return None


def _effort_fits_the_format(s: Settings) -> str | None:
    top = s.variant_format.max_effort
    if top is not None and s.variant_effort > top:
        return (
            f"BROKER_VARIANT_EFFORT must be between 0 and {top} for "
            f"BROKER_VARIANT_FORMAT={s.variant_format.name}"
        )
    return None


# Rules across settings, checked after every setting passed its own.
CHECKS: tuple[Callable[[Settings], str | None], ...] = (
    _verifies_tokens,
    _secret_is_long_enough,
    _database_is_named,
    _default_lifetime_within_cap,
    _dimensions_are_ordered,
    _multipart_uploads_end_before_the_bucket_aborts_them,
    _public_kinds_are_kinds,
    _effort_fits_the_format,
)


@cache
def declarations() -> tuple[tuple[str, Declared, Callable[[str], Any]], ...]:
    """(attribute, declaration, parser) of every setting, in declaration order."""
    hints = get_type_hints(Settings)
    return tuple(
        (f.name, f.metadata["setting"], f.metadata["setting"].parse or _PARSERS[hints[f.name]])
        for f in fields(Settings)
    )


def setting_names() -> tuple[str, ...]:
    """Every environment variable the broker reads (the README documents each)."""
    return tuple(declared.env for _, declared, _ in declarations())


def load_settings(source: Mapping[str, Any]) -> Settings:
    """Parse and validate settings from an environment-like mapping; raise ConfigError if wrong."""
    values: dict[str, Any] = {}
    for name, declared, parse in declarations():
        raw = source.get(declared.env)
        raw = declared.default if raw is None else raw
        try:
            # Test mappings may hold values already typed.
            value = parse(raw) if isinstance(raw, str) else raw
        except VariantConfigError as e:
            raise ConfigError(str(e)) from e  # it names the variable and the faulty item
        except ValueError as e:
            raise ConfigError(f"{declared.env}: cannot parse {raw!r}") from e
        for rule in declared.rules:
            problem = rule(value)
            if problem:
                raise ConfigError(f"{declared.env} {problem}")
        values[name] = value
    values["s3_public_endpoint_url"] = values["s3_public_endpoint_url"] or values["s3_endpoint_url"]
    settings = Settings(**values)
    for check in CHECKS:
        problem = check(settings)
        if problem:
            raise ConfigError(problem)
    return settings


def _table(header: tuple[str, str, str], rows: list[tuple[str, str, str]]) -> str:
    lines = [f"| {' | '.join(header)} |", "|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_tables() -> str:
    """The README's configuration tables: the app's settings, then the variables read by others."""
    settings = _table(
        ("variable", "default", "meaning"),
        [(f"`{d.env}`", d.readme_default(), d.meaning) for _, d, _ in declarations()],
    )
    others = _table(
        ("variable", "read by", "meaning"),
        [(f"`{name}`", reader, meaning) for name, reader, meaning in OTHER_VARIABLES],
    )
    return f"{settings}\nAlso read, by other programs than the app:\n\n{others}"


_README_BLOCK = re.compile(
    r"(<!-- settings:begin[^\n]*-->\n).*?(<!-- settings:end -->)", flags=re.DOTALL
)


def readme_with_tables(readme: str) -> str:
    """``readme`` with the block between its settings markers rendered anew."""
    if not _README_BLOCK.search(readme):
        raise ValueError("the README has no <!-- settings:begin --> … <!-- settings:end --> block")
    return _README_BLOCK.sub(lambda m: f"{m[1]}\n{markdown_tables()}\n{m[2]}", readme, count=1)


def main(argv: list[str] | None = None) -> int:
    """Print the configuration tables, or rewrite them in a README (``--readme README.md``)."""
    parser = argparse.ArgumentParser(prog="settings-table", description=main.__doc__)
    parser.add_argument("--readme", type=Path, help="rewrite the tables in this file in place")
    args = parser.parse_args(argv)
    if args.readme is None:
        sys.stdout.write(markdown_tables())
        return 0
    text = args.readme.read_text(encoding="utf-8")
    args.readme.write_text(readme_with_tables(text), encoding="utf-8")
    return 0
