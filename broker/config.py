"""Settings read from environment variables (``BROKER_…``), validated once in the app factory.

Nothing here runs at import time: :func:`load_settings` is called by ``create_app`` with the
environment (or a test mapping), so tests and several apps in one process never share state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

from broker.domain import KNOWN_IMAGE_TYPES

MODES = ("production", "demo", "test")
SIGNERS = ("fast", "boto3")
ADDRESSING_STYLES = ("path", "virtual")

# SigV4 presigned URLs cannot live longer than 7 days; S3 refuses X-Amz-Expires above this.
SIGV4_MAX_EXPIRES = 7 * 24 * 3600


class ConfigError(RuntimeError):
    """The configuration is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Every operator-facing setting, typed and validated."""

    mode: str
    mongodb_uri: str
    mongodb_db: str
    mongodb_timeout_ms: int
    jwt_secret: str | None
    jwt_public_key: str | None
    jwt_private_key: str | None
    jwt_audience: str | None
    jwt_issuer: str | None
    s3_bucket: str
    s3_endpoint_url: str | None
    s3_public_endpoint_url: str | None
    s3_region: str
    aws_access_key_id: str | None
    aws_secret_access_key: str | None
    aws_session_token: str | None
    s3_addressing: str
    s3_connect_timeout: float
    s3_tagging: bool
    s3_object_acl: str
    pending_object_days: int
    multipart_abort_days: int
    s3_read_timeout: float
    max_upload_bytes: int
    allowed_types: tuple[str, ...]
    kinds: tuple[str, ...]
    upload_expires: int
    confirm_grace: int
    download_expires: int
    download_max_expires: int
    cors_origins: tuple[str, ...]
    max_pixels: int
    min_width: int
    min_height: int
    max_width: int
    max_height: int
    signer: str
    max_body_bytes: int
    signed_url_window: int
    rate_limit_presign: str
    rate_limit_confirm: str
    rate_limit_sign: str
    rate_limit_storage_uri: str
    quota_max_images: int
    quota_max_bytes: int
    log_format: str
    log_level: str
    metrics_token: str | None
    lookup_cache_ttl: float
    lookup_cache_size: int

    @property
    def jwt_algorithm(self) -> str:
        """RS256 when a public key is configured, else HS256."""
        return "RS256" if self.jwt_public_key else "HS256"


# name → (default, parser). Defaults match the table in API.md and the README.
def _text(value: str) -> str:
    return value.strip()


def _optional(value: str) -> str | None:
    return value.strip() or None


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _int(value: str) -> int:
    return int(value.strip())


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
    value = value.strip().replace("\\n", "\n")
    return value or None


_SPEC: dict[str, tuple[str, Any]] = {
    "BROKER_ENV": ("production", _text),
    "MONGODB_URI": ("", _text),
    "BROKER_MONGODB_DB": ("", _text),
    "BROKER_MONGODB_TIMEOUT_MS": ("3000", _int),
    "BROKER_JWT_SECRET": ("", _optional),
    "BROKER_JWT_PUBLIC_KEY": ("", _pem),
    "BROKER_JWT_PRIVATE_KEY": ("", _pem),
    "BROKER_JWT_AUDIENCE": ("", _optional),
    "BROKER_JWT_ISSUER": ("", _optional),
    "BROKER_S3_BUCKET": ("images", _text),
    "BROKER_S3_ENDPOINT_URL": ("", _optional),
    "BROKER_S3_PUBLIC_ENDPOINT_URL": ("", _optional),
    "BROKER_S3_REGION": ("us-east-1", _text),
    # Unset: boto3's usual chain (profile, container or instance role) finds credentials.
    "AWS_ACCESS_KEY_ID": ("", _optional),
    "AWS_SECRET_ACCESS_KEY": ("", _optional),
    "AWS_SESSION_TOKEN": ("", _optional),
    "BROKER_S3_ADDRESSING": ("path", _text),
    "BROKER_S3_CONNECT_TIMEOUT": ("3", _float),
    # Providers without object tagging (Cloudflare R2, Backblaze B2) need this off.
    "BROKER_S3_TAGGING": ("true", _bool),
    # Signed into every PUT so no other ACL or grant can ride along (some S3 implementations
    # apply unsigned x-amz-* headers). bucket-owner-full-control is the one canned ACL buckets
    # with ACLs disabled accept, and for a bucket the broker owns it means private.
    "BROKER_S3_OBJECT_ACL": ("bucket-owner-full-control", _text),
    "BROKER_PENDING_OBJECT_DAYS": ("2", _int),
    "BROKER_MULTIPART_ABORT_DAYS": ("1", _int),
    "BROKER_S3_READ_TIMEOUT": ("10", _float),
    "BROKER_MAX_UPLOAD_BYTES": ("10485760", _int),
    "BROKER_ALLOWED_TYPES": ("image/jpeg,image/png,image/gif,image/webp", _csv),
    "BROKER_KINDS": ("profile,gallery,cover", _csv),
    "BROKER_UPLOAD_EXPIRES": ("300", _int),
    "BROKER_CONFIRM_GRACE": ("600", _int),
    "BROKER_DOWNLOAD_EXPIRES": ("300", _int),
    "BROKER_DOWNLOAD_MAX_EXPIRES": ("3600", _int),
    "BROKER_CORS_ORIGINS": ("http://localhost:8000", _csv),
    "BROKER_MAX_PIXELS": ("40000000", _int),
    "BROKER_MIN_WIDTH": ("1", _int),
    "BROKER_MIN_HEIGHT": ("1", _int),
    "BROKER_MAX_WIDTH": ("20000", _int),
    "BROKER_MAX_HEIGHT": ("20000", _int),
    "BROKER_SIGNER": ("fast", _text),
    "BROKER_MAX_BODY_BYTES": ("65536", _int),
    "BROKER_SIGNED_URL_WINDOW": ("3600", _int),
    # Limits per caller, in the "N/period" form ("120/minute;2000/day"); empty turns one off.
    "BROKER_RATE_LIMIT_PRESIGN": ("120/minute", _text),
    "BROKER_RATE_LIMIT_CONFIRM": ("120/minute", _text),
    "BROKER_RATE_LIMIT_SIGN": ("1200/minute", _text),
    "BROKER_RATE_LIMIT_STORAGE_URI": ("memory://", _text),
    # 0: no quota.
    "BROKER_QUOTA_MAX_IMAGES": ("10000", _int),
    "BROKER_QUOTA_MAX_BYTES": ("5368709120", _int),
    "BROKER_LOG_FORMAT": ("json", _text),
    "BROKER_LOG_LEVEL": ("INFO", _text),
    "BROKER_METRICS_TOKEN": ("", _optional),
    "BROKER_LOOKUP_CACHE_TTL": ("30", _float),
    "BROKER_LOOKUP_CACHE_SIZE": ("10000", _int),
}


def setting_names() -> tuple[str, ...]:
    """Every environment variable the broker reads (the README documents each)."""
    return tuple(_SPEC)


def load_settings(source: Mapping[str, Any]) -> Settings:
    """Parse and validate settings from an environment-like mapping; raise ConfigError if wrong."""
    values: dict[str, Any] = {}
    for name, (default, parse) in _SPEC.items():
        raw = source.get(name)
        raw = default if raw is None else raw
        try:
            values[name] = (
                parse(str(raw)) if not isinstance(raw, int | float | tuple | bool) else raw
            )
        except ValueError as e:
            raise ConfigError(f"{name}: cannot parse {raw!r}") from e
    settings = Settings(
        mode=values["BROKER_ENV"],
        mongodb_uri=values["MONGODB_URI"],
        mongodb_db=values["BROKER_MONGODB_DB"],
        mongodb_timeout_ms=values["BROKER_MONGODB_TIMEOUT_MS"],
        jwt_secret=values["BROKER_JWT_SECRET"],
        jwt_public_key=values["BROKER_JWT_PUBLIC_KEY"],
        jwt_private_key=values["BROKER_JWT_PRIVATE_KEY"],
        jwt_audience=values["BROKER_JWT_AUDIENCE"],
        jwt_issuer=values["BROKER_JWT_ISSUER"],
        s3_bucket=values["BROKER_S3_BUCKET"],
        s3_endpoint_url=values["BROKER_S3_ENDPOINT_URL"],
        s3_public_endpoint_url=values["BROKER_S3_PUBLIC_ENDPOINT_URL"]
        or values["BROKER_S3_ENDPOINT_URL"],
        s3_region=values["BROKER_S3_REGION"],
        aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=values["AWS_SESSION_TOKEN"],
        s3_addressing=values["BROKER_S3_ADDRESSING"],
        s3_connect_timeout=values["BROKER_S3_CONNECT_TIMEOUT"],
        s3_tagging=values["BROKER_S3_TAGGING"],
        s3_object_acl=values["BROKER_S3_OBJECT_ACL"],
        pending_object_days=values["BROKER_PENDING_OBJECT_DAYS"],
        multipart_abort_days=values["BROKER_MULTIPART_ABORT_DAYS"],
        s3_read_timeout=values["BROKER_S3_READ_TIMEOUT"],
        max_upload_bytes=values["BROKER_MAX_UPLOAD_BYTES"],
        allowed_types=tuple(t.lower() for t in values["BROKER_ALLOWED_TYPES"]),
        kinds=values["BROKER_KINDS"],
        upload_expires=values["BROKER_UPLOAD_EXPIRES"],
        confirm_grace=values["BROKER_CONFIRM_GRACE"],
        download_expires=values["BROKER_DOWNLOAD_EXPIRES"],
        download_max_expires=values["BROKER_DOWNLOAD_MAX_EXPIRES"],
        cors_origins=values["BROKER_CORS_ORIGINS"],
        max_pixels=values["BROKER_MAX_PIXELS"],
        min_width=values["BROKER_MIN_WIDTH"],
        min_height=values["BROKER_MIN_HEIGHT"],
        max_width=values["BROKER_MAX_WIDTH"],
        max_height=values["BROKER_MAX_HEIGHT"],
        signer=values["BROKER_SIGNER"],
        max_body_bytes=values["BROKER_MAX_BODY_BYTES"],
        signed_url_window=values["BROKER_SIGNED_URL_WINDOW"],
        rate_limit_presign=values["BROKER_RATE_LIMIT_PRESIGN"],
        rate_limit_confirm=values["BROKER_RATE_LIMIT_CONFIRM"],
        rate_limit_sign=values["BROKER_RATE_LIMIT_SIGN"],
        rate_limit_storage_uri=values["BROKER_RATE_LIMIT_STORAGE_URI"],
        quota_max_images=values["BROKER_QUOTA_MAX_IMAGES"],
        quota_max_bytes=values["BROKER_QUOTA_MAX_BYTES"],
        log_format=values["BROKER_LOG_FORMAT"],
        log_level=values["BROKER_LOG_LEVEL"].upper(),
        metrics_token=values["BROKER_METRICS_TOKEN"],
        lookup_cache_ttl=values["BROKER_LOOKUP_CACHE_TTL"],
        lookup_cache_size=values["BROKER_LOOKUP_CACHE_SIZE"],
    )
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.mode not in MODES:
        raise ConfigError(f"BROKER_ENV must be one of {', '.join(MODES)}, not {s.mode!r}")
    if s.mode == "production" and not (s.jwt_secret or s.jwt_public_key):
        raise ConfigError(
            "BROKER_JWT_SECRET (HS256) or BROKER_JWT_PUBLIC_KEY (RS256) is required: "
            "the broker refuses to start without a way to verify tokens"
        )
    if s.mode == "production" and s.jwt_secret and len(s.jwt_secret) < 32:
        raise ConfigError("BROKER_JWT_SECRET must be at least 32 characters")
    if s.mode == "production" and not s.mongodb_uri:
        raise ConfigError("MONGODB_URI is required outside demo and test modes")
    if s.s3_object_acl not in ("", "private", "bucket-owner-full-control"):
        raise ConfigError(
            "BROKER_S3_OBJECT_ACL must be bucket-owner-full-control, private or empty"
        )
    if s.log_format not in ("json", "text"):
        raise ConfigError("BROKER_LOG_FORMAT must be json or text")
    if s.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("BROKER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
    if s.signer not in SIGNERS:
        raise ConfigError(f"BROKER_SIGNER must be one of {', '.join(SIGNERS)}")
    if s.s3_addressing not in ADDRESSING_STYLES:
        raise ConfigError(f"BROKER_S3_ADDRESSING must be one of {', '.join(ADDRESSING_STYLES)}")
    unknown = [t for t in s.allowed_types if t not in KNOWN_IMAGE_TYPES]
    if unknown or not s.allowed_types:
        raise ConfigError(
            f"BROKER_ALLOWED_TYPES may only name {', '.join(KNOWN_IMAGE_TYPES)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    if not s.kinds:
        raise ConfigError("BROKER_KINDS must name at least one kind")
    for url_name, url in (
        ("BROKER_S3_ENDPOINT_URL", s.s3_endpoint_url),
        ("BROKER_S3_PUBLIC_ENDPOINT_URL", s.s3_public_endpoint_url),
    ):
        if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
            raise ConfigError(f"{url_name} must be an http(s) URL")
    positive = {
        "BROKER_MAX_UPLOAD_BYTES": s.max_upload_bytes,
        "BROKER_UPLOAD_EXPIRES": s.upload_expires,
        "BROKER_DOWNLOAD_EXPIRES": s.download_expires,
        "BROKER_DOWNLOAD_MAX_EXPIRES": s.download_max_expires,
        "BROKER_MAX_PIXELS": s.max_pixels,
        "BROKER_MAX_BODY_BYTES": s.max_body_bytes,
        "BROKER_MONGODB_TIMEOUT_MS": s.mongodb_timeout_ms,
        "BROKER_PENDING_OBJECT_DAYS": s.pending_object_days,
        "BROKER_MULTIPART_ABORT_DAYS": s.multipart_abort_days,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive")
    if s.confirm_grace < 0:
        raise ConfigError("BROKER_CONFIRM_GRACE must not be negative")
    for name, value in (
        ("BROKER_UPLOAD_EXPIRES", s.upload_expires),
        ("BROKER_DOWNLOAD_MAX_EXPIRES", s.download_max_expires),
    ):
        if value > SIGV4_MAX_EXPIRES:
            raise ConfigError(f"{name} must be at most {SIGV4_MAX_EXPIRES} (the SigV4 limit)")
    if min(s.signed_url_window, s.lookup_cache_size) < 0 or s.lookup_cache_ttl < 0:
        raise ConfigError(
            "BROKER_SIGNED_URL_WINDOW, BROKER_LOOKUP_CACHE_TTL and BROKER_LOOKUP_CACHE_SIZE "
            "must not be negative"
        )
    for name, limit in (
        ("BROKER_RATE_LIMIT_PRESIGN", s.rate_limit_presign),
        ("BROKER_RATE_LIMIT_CONFIRM", s.rate_limit_confirm),
        ("BROKER_RATE_LIMIT_SIGN", s.rate_limit_sign),
    ):
        if limit:
            try:
                parse_many(limit)
            except ValueError as e:
                raise ConfigError(f"{name}: {limit!r} is not a limit like '120/minute'") from e
    if s.quota_max_images < 0 or s.quota_max_bytes < 0:
        raise ConfigError("BROKER_QUOTA_MAX_IMAGES and BROKER_QUOTA_MAX_BYTES must not be negative")
    if s.download_expires > s.download_max_expires:
        raise ConfigError("BROKER_DOWNLOAD_EXPIRES must not exceed BROKER_DOWNLOAD_MAX_EXPIRES")
    if s.min_width > s.max_width or s.min_height > s.max_height:
        raise ConfigError("minimum dimensions must not exceed maximum dimensions")
