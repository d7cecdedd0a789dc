"""What the benchmarks run against: MongoDB, the broker under gunicorn, seeded data.

Everything listens on 127.0.0.1 only and is stopped by the process that started it: the
MongoDB wire-protocol server (``secantusdb`` via ``broker.devservers``), a real S3 endpoint
(Ceph RADOS Gateway: ``tests.support.s3.running_rgw``) and gunicorn serving ``wsgi:app``
(``tests.support.gunicorn``), configured by environment variables only, as in production.
The broker's settings and tokens are the test suite's (``tests.support``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench.load import WrkRequest, tree_cpu_seconds
from broker.db.images import image_document
from broker.devservers import MongoServer
from broker.variants import records
from broker.variants.spec import FORMATS, parse_variants
from tests.support import gunicorn
from tests.support.records import image_record
from tests.support.s3 import S3Endpoint
from tests.support.settings import broker_settings
from tests.support.tokens import make_token

BUCKET = "bench-images"


@contextmanager
def mongo_server(data_dir: Path) -> Iterator[MongoServer]:
    """A fresh ``secantusdb`` server with its data under ``data_dir`` (wiped first)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    server = MongoServer(data_dir).start()
    try:
        yield server
    finally:
        server.stop()
        server.wipe()


@contextmanager
def broker_logs_to(stream: Any) -> Iterator[None]:
    """The broker's log handlers in this process write to ``stream`` meanwhile.

    The broker's handler is made once per process, on the stderr of that moment (the benchmark's
    console): redirecting stderr later does not move it, and every in-process request's access
    line would reach the console."""
    handlers = [
        handler
        for handler in logging.getLogger("broker").handlers
        if isinstance(handler, logging.StreamHandler)
    ]
    previous = [handler.setStream(stream) for handler in handlers]
    try:
        yield
    finally:
        for handler, earlier in zip(handlers, previous, strict=True):
            if earlier is not None:
                handler.setStream(earlier)


def bench_token(sub: str) -> str:
    """A user's token that outlasts any benchmark run (six hours)."""
    return make_token(sub, expires_in=6 * 3600)


# The test server (secantusdb) keeps the reply of every retryable write for 30 minutes, up to
# 10,000 of them, and looks through them all on each retryable write (its transactions.py), so
# its CPU per write grows with the writes it has taken, up to ten times, which half an hour of
# benchmarks reaches; mongod keeps one record per session. The brokers the benchmarks start
# therefore write without retryable writes, so that their rounds measure the broker rather than
# that list (bench/dbcost.py measures the lease both ways; the broker's own default stands).
WITHOUT_RETRYABLE_WRITES = "retryWrites=false"


def bench_mongodb_uri(uri: str) -> str:
    """``uri`` as the benchmarks' brokers connect to it: without retryable writes (see above)."""
    return f"{uri}{'&' if '?' in uri else '?'}{WITHOUT_RETRYABLE_WRITES}"


def broker_env(mongo_uri: str, database: str, s3: S3Endpoint, **overrides: str) -> dict[str, str]:
    """The broker's environment: production mode, our services (the test server without
    retryable writes), defaults for everything else."""
    production = {"BROKER_ENV": "production", **overrides}
    return broker_settings(bench_mongodb_uri(mongo_uri), database, s3, BUCKET, **production)


class Gunicorn(gunicorn.Gunicorn):
    """The broker under gunicorn, and the CPU time it used (the benchmarks account for it)."""

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the master and its workers."""
        return tree_cpu_seconds([self.process.pid]) if self.process is not None else 0.0


# The default variants (BROKER_VARIANTS, BROKER_VARIANT_FORMAT), every one made: a listing
# with variant=thumb signs each image's thumb, as a library whose worker keeps up does.
DEFAULT_SPECS = parse_variants("thumb:320x320,medium:1280x1280")


def ready_variants(original_key: str, width: int, height: int) -> dict[str, records.Variant]:
    """The variants map of an image of ``width``x``height`` once the worker made them."""
    webp = FORMATS["webp"]
    made = {}
    for spec in DEFAULT_SPECS:
        scale = min(1.0, spec.width / width, spec.height / height)
        made[spec.name] = records.Variant(
            state=records.READY,
            key=records.variant_key(original_key, spec, webp),
            content_type=webp.content_type,
            width=round(width * scale),
            height=round(height * scale),
            size=9_000 if spec.width < 640 else 60_000,
            digest=records.spec_digest(spec, webp),
        )
    return made


def image_documents(
    owner: str, count: int, start: datetime, *, with_variants: bool = True
) -> list[dict[str, Any]]:
    """``count`` confirmed-image documents for ``owner``, one second apart from ``start``,
    their variants made unless ``with_variants`` is False."""
    documents = []
    for i in range(count):
        created = start + timedelta(seconds=i)
        image = image_record(
            owner,
            filename=f"photo-{i:06d}.png",
            size=48_213 + i,
            width=640,
            height=480,
            caption=f"bench image {i}",
            created_at=created,
            updated_at=created,
        )
        if with_variants:
            image = replace(image, variants=ready_variants(image.key, 640, 480))
        documents.append(image_document(image))
    return documents


@dataclass(frozen=True)
class Dataset:
    """The seeded images the HTTP benchmarks ask for, by owner.

    Rate limits are per user (``BROKER_RATE_LIMIT_SIGN``, 1200/minute by default), so the load
    comes from many users, each asking only for their own images and staying under the limit:
    ``singles`` pairs a user with their one image, ``batches`` a user with their 100 images.
    """

    singles: list[tuple[str, str]]
    batches: list[tuple[str, list[str]]]


def seed_dataset(
    mongo_uri: str, database: str, *, single_users: int = 100, batch_users: int = 5
) -> Dataset:
    """Seed one image for each of ``single_users`` users and 100 for each of ``batch_users``."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    documents: list[dict[str, Any]] = []
    singles = []
    for n in range(single_users):
        owned = image_documents(f"signer-{n:03d}", 1, base + timedelta(minutes=n))
        documents += owned
        singles.append((f"signer-{n:03d}", str(owned[0]["_id"])))
    batches = []
    for n in range(batch_users):
        owned = image_documents(f"batch-{n}", 100, base + timedelta(days=1 + n))
        documents += owned
        batches.append((f"batch-{n}", [str(doc["_id"]) for doc in owned]))
    seed_images(mongo_uri, database, documents)
    return Dataset(singles, batches)


def signed_url_path(image_id: str) -> str:
    """The broker's signed-URL path for ``image_id``."""
    return f"/images/{image_id}/signed-url"


def signed_url_requests(
    dataset: Dataset, path: Callable[[str], str] = signed_url_path
) -> list[WrkRequest]:
    """Each user asks for a signed GET of their own image, in turn (at ``path(image_id)``)."""
    return [
        WrkRequest("GET", path(image_id), bench_token(user)) for user, image_id in dataset.singles
    ]


def seed_images(
    mongo_uri: str, database: str, documents: list[dict[str, Any]], batch: int = 5000
) -> None:
    """Insert image documents straight into MongoDB with ``insert_many``."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    try:
        collection = client[database]["images"]
        for start in range(0, len(documents), batch):
            collection.insert_many(documents[start : start + batch], ordered=False)
    finally:
        client.close()
