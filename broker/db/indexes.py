"""The indexes the queries and invariants rely on, and their creation once per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, PyMongoError

from broker.db.failures import reports_unavailable
from broker.db.rate_limits import EXPIRY_INDEX, RATE_LIMITS
from broker.pagination import SORTS

log = logging.getLogger(__name__)

# (collection, keys, options); the options name the index.
IndexSpec = tuple[str, list[tuple[str, int]], dict[str, Any]]


def _index_specs() -> list[IndexSpec]:
    """Every index the queries rely on."""
    specs: list[IndexSpec] = [
        ("images", [("key", ASCENDING)], {"unique": True, "name": "key_unique"}),
        # At most one primary per (owner, kind): the database, not the code, holds the invariant.
        (
            "images",
            [("owner", ASCENDING), ("kind", ASCENDING)],
            {
                "unique": True,
                "partialFilterExpression": {"is_primary": True},
                "name": "one_primary_per_owner_kind",
            },
        ),
        ("images", [("deleting_at", ASCENDING)], {"sparse": True, "name": "deleting_at"}),
        # A public link finds its image by token. Only public images carry one (private ones
        # have no such field), so the index is sparse; unique, so one token is one image.
        (
            "images",
            [("public_token", ASCENDING)],
            {"unique": True, "sparse": True, "name": "public_token_unique"},
        ),
        # The worker's catch-up: images whose variants are not completed for the settings.
        ("images", [("variants_fp", ASCENDING)], {"name": "variants_fp"}),
        # The queue: due jobs in order, and running jobs whose lease ran out.
        (
            "variant_jobs",
            [("state", ASCENDING), ("run_after", ASCENDING)],
            {"name": "state_run_after"},
        ),
        (
            "variant_jobs",
            [("state", ASCENDING), ("lease_until", ASCENDING)],
            {"name": "state_lease_until"},
        ),
        ("uploads", [("key", ASCENDING)], {"unique": True, "name": "key_unique"}),
        (
            "uploads",
            [("state", ASCENDING), ("confirm_by", ASCENDING)],
            {"name": "state_confirm_by"},
        ),
        ("uploads", [("purge_at", ASCENDING)], {"expireAfterSeconds": 0, "name": "purge_at_ttl"}),
        # Only uploads the sweeper still has to clean carry the field: the index stays small.
        ("uploads", [("sweep_after", ASCENDING)], {"sparse": True, "name": "sweep_after"}),
        # A caller's rate-limit counters leave a window after their last hit.
        (RATE_LIMITS, [("expireAt", ASCENDING)], {"expireAfterSeconds": 0, "name": EXPIRY_INDEX}),
    ]
    # Every list shape (everyone's, or one owner's, or one owner's public ones; with or without
    # kind; each sort) walks an index in order, so a page costs the same at any depth.
    for sort in SORTS:
        for scope in LIST_SCOPES:
            for by_kind in (False, True):
                keys = list_index_keys(sort, scope, by_kind=by_kind)
                specs.append(("images", keys, {"name": _list_index_name(sort, scope, by_kind)}))
    return specs


# The equality fields a listing narrows by before its kind (domain.listing_scope): nothing,
# the owner, or the owner and the visibility.
LIST_SCOPES: tuple[tuple[str, ...], ...] = ((), ("owner",), ("owner", "visibility"))


def list_index_keys(sort: str, scope: tuple[str, ...], *, by_kind: bool) -> list[tuple[str, int]]:
    """The keys of the index a listing of ``scope`` (and kind) in ``sort`` order walks."""
    prefix = [(name, ASCENDING) for name in scope]
    prefix += [("kind", ASCENDING)] if by_kind else []
    return prefix + SORTS[sort]


def _list_index_name(sort: str, scope: tuple[str, ...], by_kind: bool) -> str:
    return "_".join(["list", *scope, *(["kind"] if by_kind else []), sort])


def create_indexes(
    database: Database[dict[str, Any]], specs: list[IndexSpec] | None = None
) -> list[str]:
    """Create the indexes of ``specs``, by default all of them (idempotent); return the names."""
    names = []
    for collection, keys, options in _index_specs() if specs is None else specs:
        names.append(database[collection].create_index(keys, **options))
    return names


def missing_indexes(database: Database[dict[str, Any]]) -> list[IndexSpec]:
    """The indexes not in place as specified: absent, or present with other keys or options.

    One read per collection, so a process finding them all in place (every start but the
    first) pays two round trips rather than one per index.
    """
    specs = _index_specs()
    present = {name: database[name].index_information() for name in {c for c, _, _ in specs}}
    return [spec for spec in specs if not _in_place(spec, present[spec[0]])]


def _in_place(spec: IndexSpec, present: Mapping[str, Any]) -> bool:
    _, keys, options = spec
    found = present.get(options["name"])
    return (
        found is not None
        and list(found["key"]) == keys
        and all(found.get(option) == value for option, value in options.items() if option != "name")
    )


@reports_unavailable
class IndexBootstrap:
    """Creates the missing indexes once per process, so no deployment depends on an operator
    running ``flask ensure-indexes``: as the app starts (outside test mode), and on the first
    ``/images`` request if that attempt could not reach MongoDB.

    Creating an index is idempotent, and MongoDB lets several clients create the same one at
    once, so every worker of every instance may do this as it starts. Requests wait for the one
    attempt in flight (the unique indexes must exist before two confirms of one key can race).
    If MongoDB is unreachable the attempt fails like any query (503) and the next request
    retries; any other refusal (an index of the same name with other options) is logged and
    serving goes on: ``flask ensure-indexes`` then shows the error to fix.
    """

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self._database = database
        self._done = False
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        """Whether the indexes were created (or creating them was given up on)."""
        return self._done

    def mark_done(self) -> None:
        """Record that the indexes exist (created by ``ensure_indexes``)."""
        self._done = True

    def ensure(self) -> None:
        """Create the indexes unless done; raise Unavailable if MongoDB cannot be reached."""
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            try:
                create_indexes(self._database, missing_indexes(self._database))
            except ConnectionFailure:
                raise
            except PyMongoError as e:
                log.error("cannot create the MongoDB indexes (run flask ensure-indexes): %s", e)
            self._done = True
