"""S3 unreachable, slow or failing: presign still works, everything else answers 503 with
``Retry-After`` within seconds and writes nothing half-way, and the same app recovers by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from flask import Flask

from broker import domain, storage
from broker.devservers import S3Server, free_port
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope, assert_unavailable
from tests.support.faults import (
    ERROR_500,
    FAST_FAIL,
    FORWARD,
    HANG,
    REFUSE,
    Blackhole,
    FaultyS3,
    timed,
)
from tests.support.records import image_record
from tests.support.tokens import auth
from tests.support.upload import Flow

BROKEN = ["closed port", "connect timeout", "hang", "error500", "refuse"]


@pytest.fixture(params=BROKEN)
def broken_endpoint(
    request: pytest.FixtureRequest,
    make_faulty_s3: Callable[[str], FaultyS3],
    blackhole: Blackhole,
) -> Iterator[str]:
    """An S3 endpoint broken in one of several ways."""
    kind = request.param
    if kind == "closed port":
        yield f"http://127.0.0.1:{free_port()}"
    elif kind == "connect timeout":
        yield blackhole.endpoint_url
    else:
        mode = {"hang": HANG, "error500": ERROR_500, "refuse": REFUSE}[kind]
        yield make_faulty_s3(mode).endpoint_url


def images_of(app: Flask) -> list[dict[str, Any]]:
    return list(broker_of(app).db.images.collection.find({}))


def upload_state(app: Flask, key: str) -> str:
    doc = broker_of(app).db.uploads.collection.find_one({"key": key})
    assert doc is not None
    return str(doc["state"])


@pytest.fixture
def on_broken_s3(make_app: Callable[..., Flask], broken_endpoint: str) -> Flow:
    return Flow(make_app(prepare=False, BROKER_S3_ENDPOINT_URL=broken_endpoint, **FAST_FAIL))


def test_presign_needs_no_s3(on_broken_s3: Flow) -> None:
    response = timed(lambda: on_broken_s3.presign())
    assert response.status_code == 201
    assert response.json["url"].startswith("http://127.0.0.1:")


def test_confirm_is_503_and_records_nothing(on_broken_s3: Flow) -> None:
    flow = on_broken_s3
    key = flow.presign().json["key"]
    response = timed(lambda: flow.client.post("/images", json={"key": key}, headers=auth()))
    assert_unavailable(response)
    assert images_of(flow.app) == []
    assert upload_state(flow.app, key) == domain.PENDING  # the client can retry


def test_delete_is_503_and_keeps_the_record_hidden(on_broken_s3: Flow) -> None:
    flow = on_broken_s3
    repositories = broker_of(flow.app).db
    image = image_record()
    repositories.images.insert(image)
    response = timed(lambda: flow.client.delete(f"/images/{image.id}", headers=auth()))
    assert_unavailable(response)
    doc = repositories.images.collection.find_one({"key": image.key})
    assert doc is not None and doc["deleting_at"] is not None  # kept for a retry or the sweeper
    assert_envelope(flow.client.get(f"/images/{image.id}", headers=auth()), 404, "not_found")
    assert flow.client.get("/images", headers=auth()).json["images"] == []


def test_readyz_is_503_naming_s3(on_broken_s3: Flow) -> None:
    response = timed(lambda: on_broken_s3.client.get("/readyz"))
    assert_unavailable(response)
    assert response.json["error"]["details"]["checks"] == {"mongodb": "ok", "s3": "unavailable"}


def test_reads_and_signing_need_no_s3(on_broken_s3: Flow) -> None:
    client = on_broken_s3.client
    assert timed(lambda: client.get("/images", headers=auth())).status_code == 200
    assert timed(lambda: client.get("/config", headers=auth())).status_code == 200
    assert timed(lambda: client.get("/healthz")).status_code == 200


# ---- a proxy that breaks and heals: the same app recovers -----------------------------------


@pytest.fixture
def proxied(make_app: Callable[..., Flask], faulty_s3: FaultyS3, s3_server: S3Server) -> Flow:
    """The broker calls S3 through the switchable proxy; browsers PUT to moto directly."""
    app = make_app(
        BROKER_S3_ENDPOINT_URL=faulty_s3.endpoint_url,
        BROKER_S3_PUBLIC_ENDPOINT_URL=s3_server.endpoint_url,
        **FAST_FAIL,
    )
    return Flow(app)


@pytest.fixture
def direct_bucket(make_app: Callable[..., Flask]) -> Any:
    """The same bucket seen without the proxy, to check what it really holds."""
    return broker_of(make_app(prepare=False)).bucket


@pytest.mark.parametrize("mode", [ERROR_500, REFUSE, HANG])
def test_confirm_during_an_outage_then_after_it(
    proxied: Flow, faulty_s3: FaultyS3, direct_bucket: Any, mode: str
) -> None:
    flow = proxied
    key = flow.pending()["key"]

    faulty_s3.set_mode(mode)
    response = timed(lambda: flow.client.post("/images", json={"key": key}, headers=auth()))
    assert_unavailable(response)
    assert images_of(flow.app) == []
    assert upload_state(flow.app, key) == domain.PENDING
    assert direct_bucket.head(key) is not None  # the object waits for the retry

    faulty_s3.set_mode(FORWARD)
    retried = timed(lambda: flow.client.post("/images", json={"key": key}, headers=auth()))
    assert retried.status_code == 201, retried.json
    assert [doc["key"] for doc in images_of(flow.app)] == [key]
    assert upload_state(flow.app, key) == domain.CONFIRMED


@pytest.mark.parametrize("mode", [ERROR_500, REFUSE, HANG])
def test_delete_during_an_outage_is_finished_by_a_retry(
    proxied: Flow, faulty_s3: FaultyS3, direct_bucket: Any, mode: str
) -> None:
    flow = proxied
    image = flow.upload().image
    faulty_s3.set_mode(mode)
    response = timed(lambda: flow.client.delete(f"/images/{image['id']}", headers=auth()))
    assert_unavailable(response)
    assert_envelope(flow.client.get(f"/images/{image['id']}", headers=auth()), 404, "not_found")
    assert len(images_of(flow.app)) == 1  # tombstoned, not forgotten
    assert direct_bucket.head(image["key"]) is not None

    faulty_s3.set_mode(FORWARD)
    again = timed(lambda: flow.client.delete(f"/images/{image['id']}", headers=auth()))
    assert again.status_code == 204
    assert images_of(flow.app) == []
    assert direct_bucket.head(image["key"]) is None


def test_delete_during_an_outage_is_finished_by_the_sweeper(
    proxied: Flow, faulty_s3: FaultyS3, direct_bucket: Any
) -> None:
    flow = proxied
    image = flow.upload().image
    faulty_s3.set_mode(ERROR_500)
    assert_unavailable(flow.client.delete(f"/images/{image['id']}", headers=auth()))

    collection = broker_of(flow.app).db.images.collection
    # The sweeper takes over deletes older than a minute: age the tombstone.
    collection.update_one(
        {"key": image["key"]}, {"$set": {"deleting_at": domain.utcnow() - timedelta(minutes=5)}}
    )
    failed = flow.app.test_cli_runner().invoke(args=["sweep"])
    assert failed.exit_code != 0 and "retry later" in failed.output, failed.output
    assert len(images_of(flow.app)) == 1  # still there: S3 was still down

    faulty_s3.set_mode(FORWARD)
    swept = flow.app.test_cli_runner().invoke(args=["sweep"])
    assert swept.exit_code == 0, swept.output
    assert images_of(flow.app) == []
    assert direct_bucket.head(image["key"]) is None


@pytest.mark.parametrize("mode", [ERROR_500, REFUSE, HANG])
def test_readyz_recovers_by_itself(proxied: Flow, faulty_s3: FaultyS3, mode: str) -> None:
    client = proxied.client
    assert client.get("/readyz").status_code == 200
    faulty_s3.set_mode(mode)
    for _ in range(2):
        assert_unavailable(timed(lambda: client.get("/readyz")))
    faulty_s3.set_mode(FORWARD)
    recovered = timed(lambda: client.get("/readyz"))
    assert recovered.status_code == 200
    assert recovered.json["checks"] == {"mongodb": "ok", "s3": "ok"}


def test_signing_keeps_working_during_an_outage(proxied: Flow, faulty_s3: FaultyS3) -> None:
    flow = proxied
    image = flow.upload().image
    faulty_s3.set_mode(ERROR_500)
    signed = timed(lambda: flow.client.get(f"/images/{image['id']}/signed-url", headers=auth()))
    assert signed.status_code == 200
    batch = flow.client.post("/images/signed-urls", json={"ids": [image["id"]]}, headers=auth())
    assert batch.status_code == 200 and image["id"] in batch.json["urls"]


@pytest.fixture
def tagging_flow(make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> Flow:
    monkeypatch.setattr(storage, "RACE_BACKOFF_SECONDS", 0.001)
    return Flow(make_app())


def put_pending(flow: Flow) -> str:
    """The key of an upload of alice's, stored and not yet confirmed."""
    return str(flow.pending()["key"])


def refuse(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, method: str, times: int, code: str, status: int
) -> list[str]:
    """Refuse the next ``times`` calls of the S3 client's ``method`` as S3 would, with
    ``status`` and ``code``; the keys of every call made."""
    client = broker_of(flow.app).bucket.client
    real = getattr(client, method)
    calls: list[str] = []

    def refuse_then_call(**kwargs: Any) -> Any:
        calls.append(kwargs["Key"])
        if len(calls) <= times:
            error: Any = {
                "Error": {"Code": code, "Message": "refused"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
            raise ClientError(error, method)
        return real(**kwargs)

    monkeypatch.setattr(client, method, refuse_then_call)
    return calls


# How RGW refuses a confirm's S3 calls while another request tags the same object: the tagging
# itself (409 OperationAborted, which botocore does not retry), and a GET the tagging overtakes
# (500 UnknownError; botocore's own retry is bypassed here, so each refusal stands for both).
RACES = {
    "tagging": ("put_object_tagging", "OperationAborted", 409),
    "read": ("get_object", "UnknownError", 500),
}


def refuse_as_in_a_race(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, race: str, times: int
) -> list[str]:
    """Refuse the next ``times`` calls of the ``race`` kind as RGW does; the keys of every call."""
    method, code, status = RACES[race]
    return refuse(flow, monkeypatch, method, times, code, status)


def tags(flow: Flow, key: str) -> dict[str, str]:
    bucket = broker_of(flow.app).bucket
    tag_set = bucket.client.get_object_tagging(Bucket=bucket.name, Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


@pytest.mark.parametrize("race", sorted(RACES))
def test_a_call_refused_by_a_concurrent_tagging_is_retried(
    tagging_flow: Flow, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    key = put_pending(tagging_flow)
    calls = refuse_as_in_a_race(tagging_flow, monkeypatch, race, times=3)
    response = tagging_flow.client.post("/images", json={"key": key}, headers=auth())
    assert response.status_code == 201, response.json
    assert calls == [key] * 4
    assert tags(tagging_flow, key) == {"broker-state": "confirmed"}


def test_tagging_refused_because_another_confirm_tagged_it_is_done(
    tagging_flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = put_pending(tagging_flow)
    bucket = broker_of(tagging_flow.app).bucket
    bucket.tag(key, {"broker-state": "confirmed"})  # the other request won
    calls = refuse_as_in_a_race(tagging_flow, monkeypatch, "tagging", times=100)
    response = tagging_flow.client.post("/images", json={"key": key}, headers=auth())
    assert response.status_code == 201, response.json
    assert calls == [key]  # no retry needed: the tags are already what this one wanted


@pytest.mark.parametrize("race", sorted(RACES))
def test_a_call_refused_for_good_is_503_and_records_nothing(
    tagging_flow: Flow, monkeypatch: pytest.MonkeyPatch, race: str
) -> None:
    key = put_pending(tagging_flow)
    calls = refuse_as_in_a_race(tagging_flow, monkeypatch, race, times=100)
    response = tagging_flow.client.post("/images", json={"key": key}, headers=auth())
    assert_unavailable(response)
    assert len(calls) == storage.RACE_ATTEMPTS
    assert images_of(tagging_flow.app) == []
    assert upload_state(tagging_flow.app, key) == domain.PENDING  # the client can retry


def test_a_read_failing_otherwise_is_left_to_botocore_retries(
    tagging_flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An S3 error of its own (not a race with a tagging) is an outage: 503 without more tries
    # than botocore's, so clients hear it at once.
    key = put_pending(tagging_flow)
    calls = refuse(tagging_flow, monkeypatch, "get_object", 100, "InternalError", 500)
    assert_unavailable(tagging_flow.client.post("/images", json={"key": key}, headers=auth()))
    assert calls == [key]
    assert upload_state(tagging_flow.app, key) == domain.PENDING
