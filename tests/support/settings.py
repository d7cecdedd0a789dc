"""The one place test apps and benchmarks get their settings from; each suite overrides what
it needs (a database, a bucket, rate limits, timeouts)."""

from __future__ import annotations

from tests.support.s3 import S3Endpoint
from tests.support.tokens import JWT_SECRET

# Suites that send many requests as one user on purpose (hostile inputs, faults) turn the
# per-user rate limits off, so what they prove does not hinge on the throttle.
NO_RATE_LIMITS = {
    "BROKER_RATE_LIMIT_PRESIGN": "",
    "BROKER_RATE_LIMIT_CONFIRM": "",
    "BROKER_RATE_LIMIT_SIGN": "",
}


def s3_settings(s3: S3Endpoint, bucket: str) -> dict[str, str]:
    """The settings that put the broker's bucket on ``s3``."""
    return {
        "BROKER_S3_BUCKET": bucket,
        "BROKER_S3_ENDPOINT_URL": s3.endpoint_url,
        "BROKER_S3_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }


def broker_settings(
    mongodb_uri: str, database: str, s3: S3Endpoint, bucket: str, **overrides: str
) -> dict[str, str]:
    """The broker's settings on these services, trusting tokens of ``tokens.JWT_SECRET``."""
    return {
        "MONGODB_URI": mongodb_uri,
        "BROKER_MONGODB_DB": database,
        "BROKER_JWT_SECRET": JWT_SECRET,
        **s3_settings(s3, bucket),
        **overrides,
    }
