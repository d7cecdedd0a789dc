"""Two requests racing to close one upload: exactly one of them closes it and acts on it.

Every way an upload ends (confirmed, rejected, aborted, found gone from the bucket) is one
conditional write that moves it out of ``pending``. Here both requests are held at one step until
both have reached it (the write itself, or for a rejection the read of the object), so each has
read the upload as pending and goes on to close it: the one whose write moved the upload gives
the quota back, deletes, counts and logs; the other answers what the contract says of a
finished upload, and does none of it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from broker import domain
from broker.db.quotas import Usage
from broker.extension import Broker
from broker.uploads import service
from broker.variants.service import image_recorded as image_recorded_for_real
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.images import png_bytes
from tests.support.multipart import MULTIPART_MAX_BYTES, MiB, Multipart, padded_png
from tests.support.races import both_at, together
from tests.support.tokens import auth
from tests.support.upload import pending_upload


def both_at_the_write(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold the first two writes that close an upload until both are about to be made."""
    both_at(broker.db.uploads, "close", monkeypatch)


def uploads_counted(outcome: str) -> float:
    """The process-wide ``broker_uploads_total`` of ``outcome`` so far."""
    return REGISTRY.get_sample_value("broker_uploads_total", {"outcome": outcome}) or 0.0


@pytest.fixture
def spied_deletes(app_under_test: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the broker deletes from the bucket, in order (the deletes still happen)."""
    bucket = broker_of(app_under_test).bucket
    real_delete = bucket.delete
    deleted: list[str] = []

    def delete(key: str) -> None:
        deleted.append(key)
        real_delete(key)

    monkeypatch.setattr(bucket, "delete", delete)
    return deleted


@pytest.fixture
def app_under_test(make_app: Callable[..., Flask]) -> Flask:
    """An app with room for multipart uploads and no rate limit on confirm."""
    return make_app(BROKER_MAX_UPLOAD_BYTES=MULTIPART_MAX_BYTES, BROKER_RATE_LIMIT_CONFIRM="")


@pytest.fixture
def other_reservation(app_under_test: Flask) -> Iterator[Usage]:
    """Another upload of alice's left pending, so a second release would show in her usage."""
    pending_upload(app_under_test.test_client(), png_bytes(7, 7))
    held = broker_of(app_under_test).db.quotas.usage("alice")
    assert held.images == 1
    yield held


def conflict_of(answer: Any) -> str:
    """The message of a 409 ``conflict`` in the contract's envelope."""
    assert_envelope(answer, 409, "conflict")
    message: str = answer.json["error"]["message"]
    return message


# ---------------------------------------------------------------- multipart abort


def test_two_aborts_at_once_abort_once_and_the_second_is_409(
    app_under_test: Flask,
    monkeypatch: pytest.MonkeyPatch,
    spied_deletes: list[str],
    other_reservation: Usage,
) -> None:
    broker = broker_of(app_under_test)
    flow = Multipart(app_under_test.test_client(), padded_png(6 * MiB)).created(part_size=5 * MiB)
    flow.send(1)
    both_at_the_write(broker, monkeypatch)
    aborted_before = uploads_counted("aborted")

    answers = together(
        lambda: Multipart(app_under_test.test_client(), flow.data, upload=flow.upload).abort()
    )

    # Given back once: alice still holds exactly her other upload.
    assert broker.db.quotas.usage("alice") == other_reservation
    assert flow.upload is not None
    assert spied_deletes.count(flow.upload["key"]) == 1
    assert uploads_counted("aborted") - aborted_before == 1
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [204, 409], [answer.json for answer in answers]
    loser = next(answer for answer in answers if answer.status_code == 409)
    assert conflict_of(loser) == "the upload is no longer pending (aborted)"
    assert broker.db.uploads.state_of(flow.upload_id) == domain.ABORTED
    open_uploads = broker.bucket.client.list_multipart_uploads(Bucket=broker.bucket.name)
    assert open_uploads.get("Uploads", []) == []


# ---------------------------------------------------------------- multipart gone from the bucket


def test_two_calls_finding_the_upload_gone_from_the_bucket_close_it_once(
    app_under_test: Flask,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    other_reservation: Usage,
) -> None:
    broker = broker_of(app_under_test)
    flow = Multipart(app_under_test.test_client(), padded_png(6 * MiB)).created(part_size=5 * MiB)
    record = broker.db.uploads.get_for_owner(flow.upload_id, "alice")
    assert record is not None and record.multipart is not None
    # Aborted behind the broker's back (a lifecycle rule, an operator).
    broker.bucket.client.abort_multipart_upload(
        Bucket=broker.bucket.name, Key=record.key, UploadId=record.multipart.bucket_upload_id
    )
    both_at_the_write(broker, monkeypatch)

    with caplog.at_level(logging.WARNING, logger="broker.uploads.multipart"):
        answers = together(
            lambda: Multipart(app_under_test.test_client(), flow.data, upload=flow.upload).listed()
        )

    assert broker.db.quotas.usage("alice") == other_reservation
    gone = [r for r in caplog.records if "gone from the bucket" in r.getMessage()]
    assert len(gone) == 1, [r.getMessage() for r in gone]
    messages = sorted(conflict_of(answer) for answer in answers)
    # The one that closed it says why; the other answers as any later call would.
    assert messages == [
        "the upload is no longer pending (aborted in the bucket)",
        "the upload is no longer pending (aborted)",
    ]
    assert broker.db.uploads.state_of(flow.upload_id) == domain.ABORTED


# ---------------------------------------------------------------- confirm: rejected


def test_two_confirms_of_a_bad_upload_reject_it_once(
    app_under_test: Flask,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    other_reservation: Usage,
) -> None:
    broker = broker_of(app_under_test)
    html = b"<html><script>alert(1)</script></html>"
    grant = pending_upload(app_under_test.test_client(), html)
    # Both read the object before either rejects it (the first to reject deletes it, and a
    # confirm reading after that finds nothing to judge): both go on to reject and close it.
    both_at(broker.bucket, "read_head", monkeypatch)
    rejected_before = uploads_counted("rejected")

    def confirm() -> Any:
        client = app_under_test.test_client()
        return client.post("/images", json={"key": grant["key"]}, headers=auth())

    with caplog.at_level(logging.INFO, logger="broker.uploads.service"):
        answers = together(confirm)

    assert broker.db.quotas.usage("alice") == other_reservation
    assert uploads_counted("rejected") - rejected_before == 1
    logged = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [409, 422], [answer.json for answer in answers]
    for answer in answers:
        if answer.status_code == 422:
            assert_envelope(answer, 422, "upload_invalid")
        else:
            # Rejected by the other confirm while this one verified: as a confirm after it.
            assert conflict_of(answer) == "the upload is no longer pending (rejected)"
    assert broker.bucket.head(grant["key"]) is None
    assert broker.db.images.collection.count_documents({}) == 0
    # A later confirm answers as the loser did.
    assert conflict_of(confirm()) == "the upload is no longer pending (rejected)"


# ---------------------------------------------------------------- confirm: recorded


def test_two_confirms_of_a_good_upload_record_and_queue_it_once(
    app_under_test: Flask, monkeypatch: pytest.MonkeyPatch, other_reservation: Usage
) -> None:
    broker = broker_of(app_under_test)
    data = png_bytes(9, 9)
    grant = pending_upload(app_under_test.test_client(), data)
    both_at_the_write(broker, monkeypatch)
    queued: list[str] = []

    def image_recorded(broker: Broker, image: domain.Image) -> None:
        queued.append(image.id)
        image_recorded_for_real(broker, image)

    # Confirm calls it by the name its module imported.
    monkeypatch.setattr(service, "image_recorded", image_recorded)
    confirmed_before = uploads_counted("confirmed")

    def confirm() -> Any:
        client = app_under_test.test_client()
        return client.post("/images", json={"key": grant["key"]}, headers=auth())

    answers = together(confirm)

    assert sorted(answer.status_code for answer in answers) == [200, 201]
    assert len({answer.json["image"]["id"] for answer in answers}) == 1
    image_id = answers[0].json["image"]["id"]
    # What follows "an image was recorded" runs once, for the confirm that closed the upload.
    assert queued == [image_id]
    assert uploads_counted("confirmed") - confirmed_before == 1
    # The reservation passed to the image: nothing given back, nothing counted twice.
    assert broker.db.quotas.usage("alice") == Usage(
        other_reservation.images + 1, other_reservation.bytes + len(data)
    )
    assert broker.db.images.collection.count_documents({"key": grant["key"]}) == 1
