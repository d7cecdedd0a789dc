"""MongoDB: the repositories of the ``images``, ``uploads``, ``quotas`` and ``variant_jobs``
collections.

Works against any MongoDB (standalone, replica set) and the wire-compatible test server: no
transactions and no ``$text`` are needed. Invariants are held by indexes (unique key, one primary
per owner and kind) and by single-document atomic updates. Repositories take and return the
domain's dataclasses, and report an unreachable server as ``Unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from broker.db.failures import reports_unavailable, unavailable_on
from broker.db.images import ImageRepository
from broker.db.indexes import IndexBootstrap, create_indexes
from broker.db.quotas import QuotaRepository
from broker.db.uploads import UploadRepository
from broker.db.variant_jobs import VariantJobRepository
from broker.settings import Settings

DEFAULT_DB_NAME = "broker"


@reports_unavailable
@dataclass(frozen=True)
class Repositories:
    """The MongoDB client and the repositories built on it."""

    client: MongoClient[dict[str, Any]]
    database: Database[dict[str, Any]]
    images: ImageRepository
    uploads: UploadRepository
    quotas: QuotaRepository
    variant_jobs: VariantJobRepository
    indexes: IndexBootstrap

    def ping(self) -> None:
        """Raise Unavailable unless the server answers (any refusal, auth included, counts)."""
        with unavailable_on(PyMongoError):
            self.client.admin.command("ping")

    def recount_quotas(self) -> int:
        """Rebuild every owner's quota usage from the images and uploads; return the owners."""
        return self.quotas.recount(self.images.collection, self.uploads.collection)

    def ensure_indexes(self) -> list[str]:
        """Create every index (idempotent); return their names."""
        names = create_indexes(self.database)
        self.indexes.mark_done()
        return names


def connect(settings: Settings) -> Repositories:
    """Open a (lazy) client and build the repositories."""
    timeout = settings.mongodb_timeout_ms
    client: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        tzinfo=UTC,
        # Fail fast: a request should answer 503 within seconds, not hang for pymongo's 30 s.
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=max(timeout * 3, 10_000),
        connect=False,
        appname="image-broker",
    )
    database = client.get_default_database(default=settings.mongodb_db or DEFAULT_DB_NAME)
    if settings.mongodb_db:
        database = client[settings.mongodb_db]
    return Repositories(
        client=client,
        database=database,
        images=ImageRepository(database["images"], tuple(spec.name for spec in settings.variants)),
        uploads=UploadRepository(database["uploads"]),
        quotas=QuotaRepository(database["quotas"]),
        variant_jobs=VariantJobRepository(database["variant_jobs"], database["variant_sweeps"]),
        indexes=IndexBootstrap(database),
    )
