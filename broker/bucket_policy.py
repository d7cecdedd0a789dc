"""What the broker applies to its bucket: CORS for browsers, lifecycle rules, no public access."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from broker import domain
from broker.service import Broker

# The bucket CORS template shipped at the repository root; its origins are replaced by the
# configured ones when applied.
DEFAULT_CORS_FILE = Path(__file__).resolve().parent.parent / "s3-cors.json"


class PolicyError(ValueError):
    """The CORS template is not usable."""


def bucket_cors_rules(template: dict[str, Any], origins: tuple[str, ...]) -> list[dict[str, Any]]:
    """The template's CORS rules with ``AllowedOrigins`` set to the configured origins."""
    rules = template.get("CORSRules")
    if not isinstance(rules, list) or not rules or not all(isinstance(r, dict) for r in rules):
        raise PolicyError("the CORS file must hold a non-empty CORSRules list of objects")
    return [{**rule, "AllowedOrigins": list(origins)} for rule in rules]


def load_cors_template(path: Path = DEFAULT_CORS_FILE) -> dict[str, Any]:
    """Read the bucket CORS template (``s3-cors.json``)."""
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PolicyError(f"cannot read {path}: {e}") from e
    if not isinstance(template, dict):
        raise PolicyError(f"{path} must hold a JSON object")
    return template


def apply_bucket_cors(broker: Broker, path: Path = DEFAULT_CORS_FILE) -> list[dict[str, Any]]:
    """Apply ``s3-cors.json`` with the configured origins to the bucket; return the rules."""
    rules = bucket_cors_rules(load_cors_template(path), broker.settings.cors_origins)
    broker.bucket.apply_cors(rules)
    return rules


def lifecycle_rules(pending_days: int, multipart_days: int) -> list[dict[str, Any]]:
    """Expire never-confirmed objects (by their signed tag) and abandoned multipart uploads."""
    return [
        {
            "ID": "broker-expire-unconfirmed-uploads",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": domain.STATE_TAG, "Value": domain.PENDING_TAG}},
            "Expiration": {"Days": pending_days},
        },
        {
            # S3 does not allow a tag filter on this action, so it covers the whole bucket:
            # an unfinished multipart upload is never a confirmed image.
            "ID": "broker-abort-incomplete-multipart",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": multipart_days},
        },
    ]


def apply_bucket_lifecycle(broker: Broker) -> list[dict[str, Any]]:
    """Apply the lifecycle rules with the configured ages; return them."""
    settings = broker.settings
    rules = lifecycle_rules(settings.pending_object_days, settings.multipart_abort_days)
    broker.bucket.apply_lifecycle(rules)
    return rules
