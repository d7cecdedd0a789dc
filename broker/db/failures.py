"""MongoDB failures leave the repositories as the taxonomy's ``Unavailable``, as S3 failures
leave :mod:`broker.storage`: the sweep and ``/readyz`` treat both dependencies alike."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from pymongo.errors import ConnectionFailure, PyMongoError

from broker.errors import Unavailable
from broker.metrics import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)
_Repository = TypeVar("_Repository")


@contextmanager
def unavailable_on(errors: type[PyMongoError]) -> Iterator[None]:
    """Turn ``errors`` into Unavailable, as storage.py does for S3: callers see one taxonomy."""
    try:
        yield
    except errors as e:
        # The detail (host, port, replica set) goes to the log only, never to the client.
        log.warning("MongoDB unavailable: %s", e)
        DEPENDENCY_ERRORS.labels("mongodb").inc()
        raise Unavailable("the database is unavailable, retry later") from e


def reports_unavailable(cls: type[_Repository]) -> type[_Repository]:
    """Make every public method of ``cls`` raise Unavailable when MongoDB cannot be reached.

    Other driver errors (a duplicate key, a refused operation) stay what they are: they are
    either handled by the repository or a bug.
    """
    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_"):
            setattr(cls, name, unavailable_on(ConnectionFailure)(member))
    return cls
