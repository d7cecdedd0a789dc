"""What the broker applies to its bucket: CORS for browsers, lifecycle rules, a policy that
refuses copies, no public access; and ``setup_bucket``, which applies all of it idempotently."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker import domain
from broker.errors import Unavailable
from broker.settings import Settings
from broker.storage import PUBLIC_ACCESS_BLOCK, Bucket

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


def apply_bucket_cors(
    bucket: Bucket, settings: Settings, path: Path = DEFAULT_CORS_FILE
) -> list[dict[str, Any]]:
    """Apply ``s3-cors.json`` with the configured origins to the bucket; return the rules."""
    rules = bucket_cors_rules(load_cors_template(path), settings.cors_origins)
    bucket.apply_cors(rules)
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


def apply_bucket_lifecycle(bucket: Bucket, settings: Settings) -> list[dict[str, Any]]:
    """Apply the lifecycle rules with the configured ages; return them."""
    rules = lifecycle_rules(settings.pending_object_days, settings.multipart_abort_days)
    bucket.apply_lifecycle(rules)
    return rules


# The statement the broker owns in the bucket policy (found and replaced by this Sid; any other
# statement an operator keeps there is left alone).
COPY_STATEMENT_ID = "BrokerDenyCopyIntoBucket"


def copy_refusing_statement(bucket: str) -> dict[str, Any]:
    """A policy statement denying every PutObject that carries ``x-amz-copy-source``.

    A presigned PUT URL signs its own headers only, and RGW 16 acts on an unsigned
    ``x-amz-copy-source`` (AWS refuses unsigned x-amz-* headers): without this statement the
    holder of any upload URL could fill its key with any object the broker's credentials can
    read, in this bucket or another. ``StringLike "*"`` matches any value; on RGW 16 the
    ``Null`` condition form is inverted (it refuses plain PUTs and lets copies through).
    The broker itself never copies, so denying copies to every principal costs nothing.
    """
    return {
        "Sid": COPY_STATEMENT_ID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringLike": {"s3:x-amz-copy-source": "*"}},
    }


def _statements(policy: dict[str, Any] | None) -> list[Any]:
    statements = (policy or {}).get("Statement") or []
    return [statements] if isinstance(statements, dict) else list(statements)


def bucket_policy_with_copy_refusal(current: dict[str, Any] | None, bucket: str) -> dict[str, Any]:
    """``current`` with the broker's statement added or replaced (other statements kept)."""
    kept = [
        statement
        for statement in _statements(current)
        if not (isinstance(statement, dict) and statement.get("Sid") == COPY_STATEMENT_ID)
    ]
    return {
        **(current or {}),
        "Version": (current or {}).get("Version") or "2012-10-17",
        "Statement": [*kept, copy_refusing_statement(bucket)],
    }


def _has_copy_refusal(policy: dict[str, Any] | None, bucket: str) -> bool:
    wanted = _canonical(copy_refusing_statement(bucket))
    return any(_canonical(statement) == wanted for statement in _statements(policy))


def _canonical(value: Any) -> Any:
    """A comparable form of S3 JSON: key order, list order and one-item lists do not matter."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        items = sorted((_canonical(v) for v in value), key=repr)
        return items[0] if len(items) == 1 else tuple(items)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


@dataclass(frozen=True)
class SetupStep:
    """One thing the bucket must hold, and what applying it did."""

    name: str
    outcome: str  # "applied", "already in place" or "failed: <why>"


APPLIED = "applied"
IN_PLACE = "already in place"


class SetupRefused(Exception):
    """The bucket cannot hold an item as intended; the message says why."""


def setup_bucket(
    bucket: Bucket,
    settings: Settings,
    cors_path: Path = DEFAULT_CORS_FILE,
    *,
    copy_policy: bool = True,
) -> list[SetupStep]:
    """Apply CORS, lifecycle rules, the copy-refusing policy and the public-access block.

    Idempotent: each item is read first and written only when it differs. The policy goes in
    before the public-access block, so a provider whose BlockPublicPolicy judged a Deny
    statement public could not stop it (RGW 16 and AWS do not; the order costs nothing).
    After the policy a plain PUT is probed: a store that ignores the statement's condition
    (moto does) would refuse every upload, so there the policy is taken back and reported.
    ``copy_policy=False`` leaves the policy out (stores without bucket policies).
    """
    cors = bucket_cors_rules(load_cors_template(cors_path), settings.cors_origins)
    lifecycle = lifecycle_rules(settings.pending_object_days, settings.multipart_abort_days)

    def apply_policy() -> bool:
        current = bucket.get_policy()
        if _has_copy_refusal(current, bucket.name):
            return False
        bucket.put_policy(bucket_policy_with_copy_refusal(current, bucket.name))
        if not bucket.takes_a_plain_put():
            bucket.put_policy(current)
            raise SetupRefused(
                "the storage applies the Deny to every PUT (it ignores the condition), which "
                "would refuse all uploads: left out"
            )
        return True

    def apply_block() -> bool:
        if bucket.get_public_access_block() == PUBLIC_ACCESS_BLOCK:
            return False
        bucket.block_public_access()
        return True

    def apply_cors() -> bool:
        return _replace_if_different(bucket.get_cors(), cors, bucket.apply_cors)

    def apply_lifecycle() -> bool:
        current = [_filter_form(rule) for rule in bucket.get_lifecycle()]
        return _replace_if_different(current, lifecycle, bucket.apply_lifecycle)

    steps: list[tuple[str, Callable[[], bool]]] = [
        ("cors", apply_cors),
        ("lifecycle", apply_lifecycle),
        *([("copy-refusing policy", apply_policy)] if copy_policy else []),
        ("public-access block", apply_block),
    ]
    done = []
    for name, step in steps:
        try:
            outcome = APPLIED if step() else IN_PLACE
        except Unavailable as e:
            outcome = f"failed: {e.message}"
        except SetupRefused as e:
            outcome = f"failed: {e}"
        done.append(SetupStep(name, outcome))
    return done


def _filter_form(rule: dict[str, Any]) -> dict[str, Any]:
    """A lifecycle rule with a rule-level ``Prefix`` written as ``Filter`` (RGW answers the
    older form for a rule that was put with ``"Filter": {"Prefix": ""}``)."""
    if "Prefix" not in rule or "Filter" in rule:
        return rule
    rest = {key: value for key, value in rule.items() if key != "Prefix"}
    return {**rest, "Filter": {"Prefix": rule["Prefix"]}}


def _replace_if_different(
    current: list[dict[str, Any]],
    wanted: list[dict[str, Any]],
    apply: Callable[[list[dict[str, Any]]], None],
) -> bool:
    if _canonical(current) == _canonical(wanted):
        return False
    apply(wanted)
    return True
