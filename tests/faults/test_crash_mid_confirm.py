"""A worker killed with SIGKILL in the middle of confirm: nothing is lost or duplicated.

The confirm runs in a child process built from the same settings, with one step wrapped to
``kill -9`` the process: right after the image is inserted and before the upload is claimed,
or right before the insert (after the object was verified). Then either a retried confirm or
the sweeper (after the deadline) settles it: exactly one image record per key, and the object
is in the bucket if and only if an image is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from broker import domain
from tests.support.apps import broker_of
from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import Flow

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, sys
from broker import create_app
from broker.uploads import service
from broker.domain import Principal
from broker.extension import current_broker

settings = json.loads(os.environ["CRASH_SETTINGS"])
key, point = os.environ["CRASH_KEY"], os.environ["CRASH_POINT"]
app = create_app(settings)
with app.app_context():
    broker = current_broker()
images = broker.db.images
insert = images.insert

def crashing_insert(image):
    if point == "before-insert":
        os.kill(os.getpid(), 9)
    result = insert(image)
    if point == "after-insert":
        os.kill(os.getpid(), 9)
    return result

images.insert = crashing_insert
with app.app_context():
    service.confirm_upload(broker, Principal("alice"), {"key": key})
sys.exit(3)  # the kill never came
"""


def confirm_in_a_child_killed(settings: dict[str, Any], key: str, point: str) -> None:
    env = {
        **os.environ,
        "CRASH_SETTINGS": json.dumps({"BROKER_ENV": "test", **settings}),
        "CRASH_KEY": key,
        "CRASH_POINT": point,
        "PYTHONPATH": str(REPO),
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, (child.returncode, child.stderr[-2000:])


@pytest.fixture
def setup(make_app: Callable[..., Flask], config: dict[str, Any]) -> tuple[Flow, dict[str, Any]]:
    """The upload flow on this test's app, and its settings (a child process uses them too)."""
    return Flow(make_app()), config


def pending_upload(flow: Flow) -> str:
    """The key of an upload of alice's, stored and not yet confirmed."""
    return str(flow.pending()["key"])


def state(flow: Flow, key: str) -> dict[str, Any]:
    db = broker_of(flow.app).db
    upload = db.uploads.collection.find_one({"key": key})
    return {
        "images": db.images.collection.count_documents({"key": key}),
        "upload": upload["state"] if upload else None,
        "object": broker_of(flow.app).bucket.head(key) is not None,
    }


def quota_images(flow: Flow) -> int:
    return int(broker_of(flow.app).db.quotas.usage("alice").images)


def age_past_the_deadline(flow: Flow, key: str) -> None:
    past = domain.utcnow() - timedelta(hours=1)
    broker_of(flow.app).db.uploads.collection.update_one(
        {"key": key}, {"$set": {"expires_at": past, "confirm_by": past}}
    )


def test_killed_after_the_insert_then_confirmed_again(
    setup: tuple[Flow, dict[str, Any]],
) -> None:
    flow, settings = setup
    key = pending_upload(flow)
    confirm_in_a_child_killed(settings, key, "after-insert")
    assert state(flow, key) == {"images": 1, "upload": domain.PENDING, "object": True}

    first = flow.client.post("/images", json={"key": key}, headers=auth())
    assert first.status_code in (200, 201), first.json
    second = flow.client.post("/images", json={"key": key}, headers=auth())
    assert second.status_code == 200 and second.json["image"]["id"] == first.json["image"]["id"]
    assert state(flow, key) == {"images": 1, "upload": domain.CONFIRMED, "object": True}
    listed = flow.client.get("/images", headers=auth()).json["images"]
    assert [image["key"] for image in listed] == [key]
    assert quota_images(flow) == 1


def test_killed_after_the_insert_then_swept(setup: tuple[Flow, dict[str, Any]]) -> None:
    flow, settings = setup
    key = pending_upload(flow)
    confirm_in_a_child_killed(settings, key, "after-insert")
    age_past_the_deadline(flow, key)

    swept = flow.app.test_cli_runner().invoke(args=["sweep"])
    assert swept.exit_code == 0, swept.output
    # The confirm never won the upload, so the sweeper owns it: record and object both go.
    assert state(flow, key) == {"images": 0, "upload": domain.EXPIRED, "object": False}
    late = flow.client.post("/images", json={"key": key}, headers=auth())
    assert_envelope(late, 409, "conflict")
    assert flow.client.get("/images", headers=auth()).json["images"] == []
    assert quota_images(flow) == 0


def test_killed_before_the_insert_then_confirmed_again(
    setup: tuple[Flow, dict[str, Any]],
) -> None:
    flow, settings = setup
    key = pending_upload(flow)
    confirm_in_a_child_killed(settings, key, "before-insert")
    assert state(flow, key) == {"images": 0, "upload": domain.PENDING, "object": True}

    confirmed = flow.client.post("/images", json={"key": key}, headers=auth())
    assert confirmed.status_code == 201, confirmed.json
    assert state(flow, key) == {"images": 1, "upload": domain.CONFIRMED, "object": True}


def test_killed_before_the_insert_then_swept(setup: tuple[Flow, dict[str, Any]]) -> None:
    flow, settings = setup
    key = pending_upload(flow)
    confirm_in_a_child_killed(settings, key, "before-insert")
    age_past_the_deadline(flow, key)
    swept = flow.app.test_cli_runner().invoke(args=["sweep"])
    assert swept.exit_code == 0, swept.output
    assert state(flow, key) == {"images": 0, "upload": domain.EXPIRED, "object": False}


@pytest.mark.parametrize("settled_by", ["confirm", "sweep"])
def test_killed_before_the_insert_leaves_the_quota_exact(
    setup: tuple[Flow, dict[str, Any]], settled_by: str
) -> None:
    flow, settings = setup
    key = pending_upload(flow)
    confirm_in_a_child_killed(settings, key, "before-insert")
    if settled_by == "confirm":
        assert flow.client.post("/images", json={"key": key}, headers=auth()).status_code == 201
    else:
        age_past_the_deadline(flow, key)
        assert flow.app.test_cli_runner().invoke(args=["sweep"]).exit_code == 0
    recorded = broker_of(flow.app).db.images.collection.count_documents({})
    assert quota_images(flow) == recorded
