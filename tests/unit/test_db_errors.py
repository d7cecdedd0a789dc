"""MongoDB failures leave broker.db as the taxonomy's Unavailable, as S3 failures leave storage."""

from __future__ import annotations

import inspect
from typing import Any, NoReturn

import pytest
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure

from broker.db import Repositories
from broker.db.images import ImageRepository
from broker.db.indexes import IndexBootstrap
from broker.db.quotas import QuotaRepository
from broker.db.uploads import UploadRepository
from broker.db.variant_jobs import VariantJobRepository
from broker.domain import Principal
from broker.errors import Unavailable

REPOSITORIES = (
    ImageRepository,
    UploadRepository,
    QuotaRepository,
    VariantJobRepository,
    Repositories,
)


class _Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> _Failing:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise self.error


def failing(error: Exception) -> Any:
    """A stand-in collection or client whose every call (``client.admin.command(…)`` too) raises."""
    return _Failing(error)


def mongodb_errors_counted() -> float:
    value = REGISTRY.get_sample_value("broker_dependency_errors_total", {"dependency": "mongodb"})
    return value or 0.0


@pytest.mark.parametrize("repository", REPOSITORIES, ids=lambda cls: cls.__name__)
def test_every_public_repository_method_translates_connection_errors(repository: type) -> None:
    public = [
        name
        for name, member in vars(repository).items()
        if inspect.isfunction(member) and not name.startswith("_")
    ]
    assert public
    unwrapped = [name for name in public if not hasattr(getattr(repository, name), "__wrapped__")]
    assert unwrapped == []


def test_a_lost_connection_is_unavailable_counted_and_names_no_host() -> None:
    images = ImageRepository(failing(AutoReconnect("10.1.2.3:27017: refused")))
    before = mongodb_errors_counted()
    with pytest.raises(Unavailable) as raised:
        images.get_by_key("alice/a.png", Principal("alice"))
    assert raised.value.message == "the database is unavailable, retry later"
    assert "10.1.2.3" not in raised.value.message
    assert isinstance(raised.value.__cause__, AutoReconnect)
    assert mongodb_errors_counted() == before + 1


def test_other_driver_errors_are_not_reported_as_unavailable() -> None:
    uploads = UploadRepository(failing(DuplicateKeyError("dup")))
    with pytest.raises(DuplicateKeyError):
        uploads.state_of("u1")


def test_ping_reports_any_refusal_as_unavailable() -> None:
    # Readiness: a server that answers but refuses (bad credentials) is not ready either.
    refusing = failing(OperationFailure("Authentication failed", code=18))
    repositories = Repositories(
        client=refusing,
        database=refusing,
        images=ImageRepository(refusing),
        uploads=UploadRepository(refusing),
        quotas=QuotaRepository(refusing),
        variant_jobs=VariantJobRepository(refusing, refusing),
        indexes=IndexBootstrap(refusing),
    )
    with pytest.raises(Unavailable):
        repositories.ping()
