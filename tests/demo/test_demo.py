"""``make run`` as a newcomer meets it: the banner, the sample library, the log, Ctrl-C and SIGTERM.

Every test here starts ``python -m broker.demo`` as a subprocess (embedded MongoDB process,
moto's S3 thread, the broker) on free ports.
"""

from __future__ import annotations

import base64
import json
import shlex
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from broker.samples import SAMPLES
from tests.support.demo import DemoRun, port_in_use, survivors
from tests.support.images import md5_b64

pytestmark = pytest.mark.demo


# One access line: time, method, path (never the query), status, duration, user, request id.
def access_line(method: str, path: str, status: int, user: str, rid: str) -> str:
    """A pattern matching exactly one access line (``path`` and ``rid`` are patterns)."""
    return rf"^\d\d:\d\d:\d\d\.\d{{3}} {method} {path} {status} \d+\.\d ms user={user} rid={rid}$"


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def assert_everything_released(demo: DemoRun, children: dict[int, str]) -> None:
    assert survivors(children) == []
    assert {name: port_in_use(port) for name, port in demo.ports().items()} == {
        "broker": False,
        "mongodb": False,
        "s3": False,
    }
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", demo.mongo_port), timeout=5).close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_every_process_and_frees_every_port(
    run_demo: Callable[..., DemoRun], signum: signal.Signals
) -> None:
    demo = run_demo(BROKER_DEMO_SEED="0")
    assert demo.api("admin", "GET", "/images").json()["images"] == []  # seeding off: empty
    # The demo logs in text, one line per request, never the query string.
    demo.api("alice", "GET", "/images?limit=5&q=secret-query", headers={"X-Request-ID": "t-1"})
    demo.wait_for_log(access_line("GET", "/images", 200, "alice", "t-1"))
    demo.wait_for_log(access_line("GET", "/healthz", 200, "-", "[0-9a-f]{32}"))
    assert "secret-query" not in demo.log()
    children = demo.descendants()
    commands = " ".join(survivors(children))
    assert "secantus" in commands, "the embedded MongoDB process was not found below the demo"
    assert "broker:create_app worker" in commands, "the variant worker was not found"
    assert all(port_in_use(port) for port in demo.ports().values())

    assert demo.stop(signum) == 0

    assert_everything_released(demo, children)
    log = demo.log()
    assert f"{signum.name} received: stopping" in log
    assert "Traceback" not in log


def test_a_stop_during_start_up_still_ends_everything(
    launch_demo: Callable[..., DemoRun],
) -> None:
    demo = launch_demo()  # seeding on: the stop may also meet the seeder
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 60
    while not seen:  # until the embedded MongoDB process exists: the demo is half started
        assert demo.process.poll() is None and time.monotonic() < deadline, demo.log()
        seen.update(demo.descendants())
        time.sleep(0.02)
    demo.process.send_signal(signal.SIGTERM)
    while demo.process.poll() is None:  # remember every process it starts before it exits
        seen.update(demo.descendants())
        assert time.monotonic() < deadline + 60, demo.log()
        time.sleep(0.05)

    assert demo.process.returncode == 0, demo.log()
    assert survivors(seen) == []
    assert not port_in_use(demo.port)
    assert "SIGTERM received: stopping" in demo.log()


def test_the_banner_and_the_seeded_library_as_listed_through_the_api(
    run_demo: Callable[..., DemoRun],
) -> None:
    demo = run_demo()  # BROKER_DEMO_SEED is on by default
    demo.wait_for_log(r"sample library: \d+ images uploaded|sample library not seeded")
    assert "sample library: 8 images uploaded for alice and bob" in demo.log()

    listed: dict[str, list[dict[str, Any]]] = {}
    for owner in ("alice", "bob"):
        response = demo.api(owner, "GET", "/images", params={"limit": 100})
        assert response.status_code == 200, response.text
        listed[owner] = response.json()["images"]
        expected = sorted(
            (s.filename, s.caption, s.kind, s.primary) for s in SAMPLES if s.owner == owner
        )
        assert (
            sorted((i["filename"], i["caption"], i["kind"], i["is_primary"]) for i in listed[owner])
            == expected
        )
        assert {i["owner"] for i in listed[owner]} == {owner}
        assert {i["kind"] for i in listed[owner]} == {"profile", "gallery", "cover"}
        assert {i["content_type"] for i in listed[owner]} == {"image/png"}
        primaries = [(i["kind"]) for i in listed[owner] if i["is_primary"]]
        assert primaries and len(primaries) == len(set(primaries))  # at most one per kind
    assert 6 <= len(listed["alice"]) + len(listed["bob"]) <= 8 and len(listed["bob"]) >= 3
    everyone = demo.api("admin", "GET", "/images", params={"limit": 100}).json()["images"]
    assert sorted(i["id"] for i in everyone) == sorted(
        i["id"] for images in listed.values() for i in images
    )
    found = demo.api("alice", "GET", "/images", params={"q": "DUNES"}).json()["images"]
    assert [i["filename"] for i in found] == ["night-dunes.png"]

    # Each went presign (with its MD5) → PUT → confirm: the bucket holds the drawn bytes.
    sample = next(s for s in SAMPLES if s.owner == "alice" and s.primary and s.kind == "profile")
    image = next(i for i in listed["alice"] if i["filename"] == sample.filename)
    data = sample.data()
    assert image["content_md5"] == md5_b64(data)
    assert (image["size"], image["width"], image["height"]) == (len(data), 400, 400)
    signed = demo.api("alice", "GET", f"/images/{image['id']}/signed-url")
    assert signed.status_code == 200, signed.text
    served = requests.get(signed.json()["url"], timeout=10)
    assert served.status_code == 200 and served.content == data
    assert served.headers["Content-Type"] == "image/png"
    # Bob's token does not see alice's image.
    assert demo.api("bob", "GET", f"/images/{image['id']}").status_code == 404

    # The demo's worker makes every sample's variants; the grid's thumbnail is a small WebP.
    deadline = time.monotonic() + 120
    while True:
        library = demo.api("admin", "GET", "/images", params={"limit": 100}).json()["images"]
        states = {v["state"] for i in library for v in i["variants"].values()}
        if states == {"ready"}:
            break
        assert "failed" not in states and time.monotonic() < deadline, (states, demo.log())
        time.sleep(0.2)
    thumb = demo.api("alice", "GET", f"/images/{image['id']}/signed-url?variant=thumb").json()
    assert thumb["variant"] == "thumb"
    small = requests.get(thumb["url"], timeout=10)
    assert small.status_code == 200 and small.headers["Content-Type"] == "image/webp"
    assert len(small.content) < len(data)

    # The banner: an admin link, four tokens, and a curl line that lists alice's images.
    assert list(demo.tokens) == ["admin", "alice", "bob", "reader"]
    expected_roles = {"admin": ["admin"], "alice": [], "bob": [], "reader": ["reader"]}
    for name, token in demo.tokens.items():
        assert claims(token)["sub"] == name and claims(token)["roles"] == expected_roles[name]
    assert f"  Admin UI   {demo.base_url}/admin/#token={demo.tokens['admin']}" in demo.stdout
    assert "  Library    8 sample images of alice and bob (BROKER_DEMO_SEED=0: start empty)" in (
        demo.stdout
    )
    assert any(line.startswith("  Worker     one variant worker (pid ") for line in demo.stdout)
    argv = shlex.split(demo.curl)  # as a shell would split it
    assert argv == [
        "curl",
        "-H",
        f"Authorization: Bearer {demo.tokens['alice']}",
        f"{demo.base_url}/images",
    ]
    name, value = argv[2].split(": ", 1)
    response = requests.get(argv[3], headers={name: value}, timeout=10)
    assert response.status_code == 200
    assert {i["id"] for i in response.json()["images"]} == {i["id"] for i in listed["alice"]}
    # Scannable: one column of short labels, their values aligned after them.
    first = next(n for n, line in enumerate(demo.stdout) if line.startswith("  Admin UI"))
    rows = demo.stdout[first : demo.stdout.index("", first)]
    labels = ["Admin UI", "API", "MongoDB", "S3", "Library", "Worker", "Logs", "Stop"]
    assert [row[:13] for row in rows] == [f"  {label:<10} " for label in labels]
    assert all(row[13] != " " for row in rows)

    # The seeding went through the API like any client, and the log shows each step.
    for number, seeded in enumerate(SAMPLES, start=1):
        rid = f"demo-seed-{number}"
        demo.wait_for_log(access_line("POST", "/images/presign-upload", 201, seeded.owner, rid))
        demo.wait_for_log(access_line("POST", "/images", 201, seeded.owner, rid))
        if seeded.primary:
            demo.wait_for_log(access_line("PATCH", r"/images/[0-9a-f]{24}", 200, seeded.owner, rid))


def test_a_seeding_failure_is_logged_and_the_demo_goes_on(
    run_demo: Callable[..., DemoRun],
) -> None:
    demo = run_demo(BROKER_ALLOWED_TYPES="image/jpeg")  # the PNG samples are refused
    line = demo.wait_for_log(r"^.* ERROR broker\.demo: sample library not seeded: .*$").group(0)
    assert "POST /images/presign-upload answered 415: unsupported_type" in line
    assert any("seeding failed" in text for text in demo.stdout)
    assert demo.api("alice", "GET", "/images").json()["images"] == []
    assert demo.stop(signal.SIGTERM) == 0
