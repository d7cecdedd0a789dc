"""What the operations endpoints report: the limits clients check, readiness, and the variant
queue for the metrics."""

from __future__ import annotations

import logging
from typing import Any

from broker import domain, metrics, multipart
from broker.errors import Unavailable
from broker.extension import Broker

log = logging.getLogger(__name__)


def client_config(broker: Broker) -> dict[str, Any]:
    """The limits a client should check before presigning (the broker checks them again)."""
    settings = broker.settings
    return {
        "allowed_types": list(settings.allowed_types),
        "extensions": {t: domain.extension_for(t) for t in settings.allowed_types},
        "max_upload_bytes": settings.max_upload_bytes,
        "kinds": list(settings.kinds),
        "default_kind": broker.policy.default_kind,
        "public_kinds": list(settings.public_kinds),
        "upload_expires": settings.upload_expires,
        "download_expires": settings.download_expires,
        "download_max_expires": settings.download_max_expires,
        "max_pixels": settings.max_pixels,
        "min_width": settings.min_width,
        "min_height": settings.min_height,
        "max_width": settings.max_width,
        "max_height": settings.max_height,
        "multipart": {
            "threshold": multipart.MULTIPART_THRESHOLD,
            "part_size": multipart.DEFAULT_PART_SIZE,
            "min_part_size": multipart.MIN_PART_SIZE,
            "max_part_size": multipart.MAX_PART_SIZE,
            "max_parts": multipart.MAX_PARTS,
            "parts_per_call": multipart.MAX_PARTS_PER_CALL,
            "max_single_upload_bytes": min(
                settings.max_upload_bytes, multipart.MAX_SINGLE_PUT_SIZE
            ),
            "expires": settings.multipart_expires,
        },
        # What a client may ask for with variant=, and what each looks like.
        "variants": [
            {"name": spec.name, "width": spec.width, "height": spec.height, "cover": spec.cover}
            for spec in settings.variants
        ],
        "variant_content_type": settings.variant_format.content_type,
    }


def readiness(broker: Broker) -> dict[str, str]:
    """``ok`` or ``unavailable`` for MongoDB and for S3, each asked once."""
    checks = {"mongodb": "ok", "s3": "ok"}
    # Both gateways report an unreachable dependency as Unavailable (and count it in metrics).
    for name, ping in (("mongodb", broker.db.ping), ("s3", broker.bucket.ping)):
        try:
            ping()
        except Unavailable as e:
            log.warning("readiness: %s unavailable: %s", name, e.message)
            checks[name] = "unavailable"
    return checks


def variant_queue_metrics(broker: Broker) -> bytes:
    """The variant queue's gauges for ``/metrics``; nothing when variants are off or MongoDB
    does not answer (the scrape still succeeds, and the failure is counted as usual)."""
    if not broker.settings.variants:
        return b""
    now = domain.utcnow()
    try:
        status = broker.db.variant_jobs.status(now)
    except Unavailable:
        return b""
    waited = (now - status.oldest_due_at).total_seconds() if status.oldest_due_at else 0.0
    return metrics.variant_queue_exposition(status.queued, status.running, max(waited, 0.0))
