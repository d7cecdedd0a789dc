"""Settings: documented defaults, validation, and refusing to run without a way to verify tokens."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from broker.settings import (
    ConfigError,
    Settings,
    declarations,
    load_settings,
    readme_with_tables,
    setting_names,
)

README = Path(__file__).resolve().parents[2] / "README.md"

PRODUCTION = {
    "MONGODB_URI": "mongodb://db.internal:27017/broker",
    "BROKER_JWT_SECRET": "s" * 32,
}


def test_defaults_match_the_contract() -> None:
    settings = load_settings(PRODUCTION)
    assert settings.mode == "production"
    assert settings.s3_bucket == "images"
    assert settings.s3_region == "us-east-1"
    assert settings.s3_addressing == "path"
    assert settings.max_upload_bytes == 10485760
    assert settings.allowed_types == ("image/jpeg", "image/png", "image/gif", "image/webp")
    assert settings.upload_expires == 300
    assert (settings.download_expires, settings.download_max_expires) == (300, 3600)
    assert settings.cors_origins == ("http://localhost:8000",)
    assert settings.max_pixels == 40000000
    assert settings.signer == "fast"
    assert settings.jwt_algorithm == "HS256"
    assert settings.kinds == ("profile", "gallery", "cover")


def test_public_endpoint_defaults_to_the_endpoint() -> None:
    settings = load_settings({**PRODUCTION, "BROKER_S3_ENDPOINT_URL": "http://minio:9000"})
    assert settings.s3_public_endpoint_url == "http://minio:9000"
    split = load_settings(
        {
            **PRODUCTION,
            "BROKER_S3_ENDPOINT_URL": "http://minio:9000",
            "BROKER_S3_PUBLIC_ENDPOINT_URL": "https://s3.example.com",
        }
    )
    assert split.s3_public_endpoint_url == "https://s3.example.com"


def test_public_key_switches_to_rs256() -> None:
    settings = load_settings({"MONGODB_URI": "mongodb://x", "BROKER_JWT_PUBLIC_KEY": "-----BEGIN…"})
    assert settings.jwt_algorithm == "RS256"


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"BROKER_JWT_SECRET": ""}, "BROKER_JWT_SECRET"),
        ({"BROKER_JWT_SECRET": "short"}, "BROKER_JWT_SECRET"),
        ({"MONGODB_URI": ""}, "MONGODB_URI"),
        ({"BROKER_ENV": "staging"}, "BROKER_ENV"),
        ({"BROKER_SIGNER": "fastest"}, "BROKER_SIGNER"),
        ({"BROKER_S3_ADDRESSING": "dns"}, "BROKER_S3_ADDRESSING"),
        ({"BROKER_ALLOWED_TYPES": "image/jpeg,image/svg+xml"}, "BROKER_ALLOWED_TYPES"),
        ({"BROKER_MAX_UPLOAD_BYTES": "0"}, "BROKER_MAX_UPLOAD_BYTES"),
        ({"BROKER_MAX_UPLOAD_BYTES": "ten"}, "BROKER_MAX_UPLOAD_BYTES"),
        ({"BROKER_UPLOAD_EXPIRES": "700000"}, "BROKER_UPLOAD_EXPIRES"),
        ({"BROKER_DOWNLOAD_EXPIRES": "7200"}, "BROKER_DOWNLOAD_EXPIRES"),
        ({"BROKER_S3_ENDPOINT_URL": "minio:9000"}, "BROKER_S3_ENDPOINT_URL"),
        ({"BROKER_KINDS": " , "}, "BROKER_KINDS"),
        ({"BROKER_S3_OBJECT_ACL": "public-read"}, "BROKER_S3_OBJECT_ACL"),
        ({"BROKER_S3_TAGGING": "maybe"}, "BROKER_S3_TAGGING"),
        ({"BROKER_LOG_LEVEL": "verbose"}, "BROKER_LOG_LEVEL"),
        ({"BROKER_LOG_FORMAT": "xml"}, "BROKER_LOG_FORMAT"),
        ({"BROKER_CONFIRM_GRACE": "-1"}, "BROKER_CONFIRM_GRACE"),
        ({"BROKER_LOOKUP_CACHE_TTL": "-1"}, "BROKER_LOOKUP_CACHE_TTL"),
        ({"BROKER_QUOTA_MAX_BYTES": "-1"}, "BROKER_QUOTA_MAX_BYTES"),
        ({"BROKER_RATE_LIMIT_SIGN": "lots"}, "BROKER_RATE_LIMIT_SIGN"),
        ({"BROKER_DOWNLOAD_MAX_EXPIRES": "604801"}, "BROKER_DOWNLOAD_MAX_EXPIRES"),
        ({"BROKER_JWT_MAX_TTL": "0"}, "BROKER_JWT_MAX_TTL"),
        ({"BROKER_MIN_WIDTH": "30000"}, "minimum dimensions"),
        ({"BROKER_MAX_UPLOAD_BYTES": str(5 * 2**40 + 1)}, "BROKER_MAX_UPLOAD_BYTES"),
        ({"BROKER_MULTIPART_EXPIRES": "0"}, "BROKER_MULTIPART_EXPIRES"),
        ({"BROKER_MULTIPART_EXPIRES": "86401"}, "BROKER_MULTIPART_ABORT_DAYS"),
        ({"BROKER_RATE_LIMIT_PARTS": "often"}, "BROKER_RATE_LIMIT_PARTS"),
    ],
)
def test_invalid_settings_are_refused_with_the_variable_named(
    overrides: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings({**PRODUCTION, **overrides})


def test_demo_and_test_modes_run_without_a_secret() -> None:
    for mode in ("demo", "test"):
        assert load_settings({"BROKER_ENV": mode}).jwt_secret is None


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    missing = [name for name in setting_names() if f"`{name}`" not in readme]
    assert missing == []


def test_the_readme_tables_are_the_declarations() -> None:
    readme = README.read_text(encoding="utf-8")
    # On failure: `make settings-table` rewrites the README's tables from broker/settings.py.
    assert readme_with_tables(readme) == readme


def test_a_changed_declaration_fails_the_readme_check() -> None:
    readme = README.read_text(encoding="utf-8")
    stale = readme.replace("| `BROKER_S3_BUCKET` | `images` |", "| `BROKER_S3_BUCKET` | `pics` |")
    assert stale != readme
    assert readme_with_tables(stale) == readme


def test_every_field_is_declared_once_and_its_default_is_valid() -> None:
    assert [name for name, _, _ in declarations()] == [f.name for f in fields(Settings)]
    assert len(set(setting_names())) == len(setting_names())
    defaults = {declared.env: declared.default for _, declared, _ in declarations()}
    assert load_settings({**defaults, **PRODUCTION}) == load_settings(PRODUCTION)
