"""Variant workers as the processes operators run (``flask --app wsgi worker``): several on one
queue make each image once, a SIGKILLed worker's job is taken over after its lease (its render
process dies with it), MongoDB or S3 down makes the worker wait and resume with nothing lost,
and stop signals end it cleanly (exit 0).

Nothing asserts a duration: waits poll for a state, bounded only so a broken build fails
rather than hangs.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from broker.devservers import MongoServer
from tests.support.apps import broker_of
from tests.support.faults import FORWARD, REFUSE, FaultyS3
from tests.support.signals import ignores_sigint
from tests.support.workers import (
    image_of,
    log_records,
    run_once,
    start_worker,
    upload,
    wait_for,
)
from tests.variants import craft

# A render that takes seconds of CPU (AVIF of noise), so a worker is caught in the middle.
SLOW = {
    "BROKER_VARIANTS": "big:1280x1280",
    "BROKER_VARIANT_FORMAT": "avif",
    "BROKER_VARIANT_EFFORT": "2",
}
# A short lease, so a dead worker's job is taken over within seconds.
SHORT_LEASE = {"BROKER_VARIANT_LEASE": "2", "BROKER_VARIANT_RETRY_DELAY": "0.5"}


def noisy_jpeg(width: int = 1280, height: int = 960) -> bytes:
    """A photo-like JPEG that no encoder makes small quickly."""
    noise = Image.effect_noise((width, height), 100).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    return out.getvalue()


class Workers:
    """Worker processes of one test, each with its own log; all stopped afterwards."""

    def __init__(self, settings: dict[str, str], folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *args: str, **overrides: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.folder / f"worker-{len(self.started)}.log"
        process = start_worker({**self.settings, **overrides}, log, *args)
        self.started.append((process, log))
        return process, log

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


@pytest.fixture
def settings(config: dict[str, Any]) -> dict[str, str]:
    """The settings of this test's apps and workers (shared: one database, one bucket)."""
    return {name: str(value) for name, value in config.items()}


@pytest.fixture
def workers(settings: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    started = Workers(settings, tmp_path)
    yield started
    started.stop_all()


def made_lines(log: Path) -> list[dict[str, Any]]:
    return [r for r in log_records(log) if r.get("outcome") == "made"]


def render_children(pid: int) -> list[int]:
    """The render processes (multiprocessing spawn children) of process ``pid``; not its
    multiprocessing resource tracker, a child too."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            children.append(int(entry.name))
    return children


def state_of(pid: int) -> str | None:
    """The process's state letter (R, S, T for stopped, Z...), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid: int) -> bool:
    return state_of(pid) not in (None, "Z", "X")


def job_doc(app: Flask) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = broker_of(app).db.variant_jobs.collection.find_one({})
    return doc


# ---- several workers, one queue ----------------------------------------------------------------


def test_two_workers_on_one_queue_make_each_image_once(
    make_app: Callable[..., Flask], workers: Workers
) -> None:
    app = make_app()
    client = app.test_client()
    images = [
        upload(client, craft.plain(900, 600, "jpeg"), filetype="image/jpeg") for _ in range(12)
    ]
    first, first_log = workers.start("--once")
    second, second_log = workers.start("--once")
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    made = Counter(line["image"] for log in (first_log, second_log) for line in made_lines(log))
    assert made == Counter({image["id"]: 1 for image in images})
    for image in images:
        assert {v["state"] for v in image_of(client, image["id"])["variants"].values()} == {"ready"}


def test_one_claim_per_job_whatever_the_race(make_app: Callable[..., Flask]) -> None:
    # The claim itself, raced by threads on one job: exactly one wins it.
    app = make_app()
    client = app.test_client()
    upload(client, craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    jobs = broker_of(app).db.variant_jobs
    now = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda n: jobs.claim(now, 60, f"w{n}"), range(16)))
    assert len([claim for claim in claims if claim is not None]) == 1


# ---- a worker killed mid-job --------------------------------------------------------------------


def test_a_sigkilled_workers_job_is_taken_over_after_its_lease(
    make_app: Callable[..., Flask], workers: Workers
) -> None:
    app = make_app(**SLOW, **SHORT_LEASE)
    client = app.test_client()
    image = upload(client, noisy_jpeg(), filetype="image/jpeg")
    doomed, doomed_log = workers.start(**SLOW, **SHORT_LEASE)
    # Mid-render: the job is held and the worker's render process is at work.
    children = wait_for(lambda: render_children(doomed.pid), "the render process")
    wait_for(lambda: (job_doc(app) or {}).get("state") == "running", "the claim")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    # Its render process dies with it (PR_SET_PDEATHSIG), nothing is left computing.
    wait_for(lambda: not any(alive(pid) for pid in children), "the render process to die")
    assert made_lines(doomed_log) == []
    # The lease runs out; a worker run then takes the job over and finishes it.
    wait_for(
        lambda: (job := job_doc(app)) is not None and job["lease_until"] < datetime.now(UTC),
        "the lease to run out",
    )
    survivor, survivor_log = workers.start("--once", **SLOW, **SHORT_LEASE)
    assert survivor.wait(timeout=300) == 0
    (line,) = made_lines(survivor_log)
    assert line["image"] == image["id"] and line["attempt"] == 2
    assert image_of(client, image["id"])["variants"]["big"]["state"] == "ready"


# ---- stop signals -------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_finishes_the_job_then_exits_0(
    make_app: Callable[..., Flask], workers: Workers, signum: int
) -> None:
    app = make_app(**SLOW)
    client = app.test_client()
    image = upload(client, noisy_jpeg(), filetype="image/jpeg")
    worker, log = workers.start(**SLOW)
    wait_for(lambda: render_children(worker.pid), "the render process")
    worker.send_signal(signum)
    assert worker.wait(timeout=300) == 0
    assert [line["image"] for line in made_lines(log)] == [image["id"]]
    assert image_of(client, image["id"])["variants"]["big"]["state"] == "ready"
    assert job_doc(app) is None


def test_a_worker_hears_sigint_even_when_the_suite_runs_ignoring_it(workers: Workers) -> None:
    # A suite started in the background by a script (as CI may) ignores SIGINT, and so would
    # every process it starts: the worker would keep it ignored and the test above would wait
    # for nothing. The tests start workers as from a terminal.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker, _ = workers.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not ignores_sigint(worker.pid)


def test_a_second_signal_puts_the_job_back_at_once(
    make_app: Callable[..., Flask], workers: Workers
) -> None:
    app = make_app()
    client = app.test_client()
    # A first image starts the worker's render process; once it is made the process is idle,
    # past its start-up (whose wait hears no signal), and the worker keeps it for the next job.
    first = upload(client, craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    worker, log = workers.start(BROKER_LOG_LEVEL="DEBUG")
    wait_for(lambda: made_lines(log), "the first image")
    (child,) = render_children(worker.pid)
    # Frozen, it takes the next render and never answers: that render lasts as long as the
    # test needs, however loaded the machine (SIGKILL still ends a stopped process).
    os.kill(child, signal.SIGSTOP)
    wait_for(lambda: state_of(child) == "T", "the render process to stop")
    image = upload(client, craft.plain(900, 600, "jpeg"), filetype="image/jpeg")

    def render_started() -> bool:
        return any(
            r["msg"] == "render started" and r.get("image") == image["id"] for r in log_records(log)
        )

    wait_for(render_started, "the render of the second image")
    worker.send_signal(signal.SIGTERM)
    # Signals of one kind sent together arrive as one: the second is sent once the first was
    # heard, as an operator's second Ctrl-C would be.
    wait_for(
        lambda: any(r["msg"].startswith("stop requested") for r in log_records(log)),
        "the first signal to be heard",
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=300) == 0
    job = job_doc(app)
    assert job is not None and job["state"] == "queued" and job["attempts"] == 0
    assert str(job["_id"]) == image["id"]
    assert [line["image"] for line in made_lines(log)] == [first["id"]]
    assert not alive(child)
    assert image_of(client, image["id"])["variants"]["thumb"] == {"state": "pending"}
    # Nothing lost: the next run makes it.
    assert run_once(app).exit_code == 0
    assert image_of(client, image["id"])["variants"]["thumb"]["state"] == "ready"


# ---- MongoDB or S3 down -----------------------------------------------------------------------


def test_mongodb_down_the_worker_waits_and_resumes(
    make_app: Callable[..., Flask], workers: Workers, own_mongo: MongoServer
) -> None:
    fast = {"MONGODB_URI": own_mongo.uri, "BROKER_MONGODB_TIMEOUT_MS": "500"}
    app = make_app(**fast)
    client = app.test_client()
    images = [
        upload(client, craft.plain(640, 480, "jpeg"), filetype="image/jpeg") for _ in range(3)
    ]
    own_mongo.stop()
    worker, log = workers.start(**fast)
    wait_for(
        lambda: any(r["msg"] == "waiting for MongoDB and S3" for r in log_records(log)),
        "the worker to notice",
    )
    assert worker.poll() is None  # waiting, not dead
    own_mongo.start()  # same port, same data
    wait_for(lambda: len(made_lines(log)) == 3, "the worker to resume")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert sorted(line["image"] for line in made_lines(log)) == sorted(i["id"] for i in images)


def test_s3_down_the_worker_waits_and_resumes_without_counting_tries(
    make_app: Callable[..., Flask], workers: Workers, faulty_s3: FaultyS3
) -> None:
    app = make_app()
    client = app.test_client()
    image = upload(client, craft.plain(640, 480, "jpeg"), filetype="image/jpeg")
    faulty_s3.set_mode(REFUSE)
    behind_proxy = {
        "BROKER_S3_ENDPOINT_URL": faulty_s3.endpoint_url,
        "BROKER_S3_CONNECT_TIMEOUT": "0.5",
        "BROKER_S3_READ_TIMEOUT": "0.5",
    }
    worker, log = workers.start(**behind_proxy)
    wait_for(
        lambda: any(r["msg"] == "waiting for MongoDB and S3" for r in log_records(log)),
        "the worker to notice",
    )
    job = job_doc(app)
    assert job is not None and job["state"] == "queued" and job["attempts"] == 0  # given back
    faulty_s3.set_mode(FORWARD)
    (line,) = wait_for(lambda: made_lines(log), "the worker to resume")
    assert line["image"] == image["id"] and line["attempt"] == 1
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


def test_worker_once_exits_1_when_s3_is_down_and_leaves_the_work_queued(
    make_app: Callable[..., Flask], faulty_s3: FaultyS3
) -> None:
    app = make_app()
    image = upload(app.test_client(), craft.plain(64, 48, "jpeg"), filetype="image/jpeg")
    faulty_s3.set_mode(REFUSE)
    cut_off = make_app(
        BROKER_S3_ENDPOINT_URL=faulty_s3.endpoint_url,
        BROKER_S3_CONNECT_TIMEOUT="0.5",
        BROKER_S3_READ_TIMEOUT="0.5",
        prepare=False,
    )
    result = run_once(cut_off)
    assert result.exit_code == 1
    assert "work left queued" in result.output
    job = job_doc(app)
    assert job is not None and job["state"] == "queued" and job["attempts"] == 0
    faulty_s3.set_mode(FORWARD)
    assert run_once(app).exit_code == 0
    assert image_of(app.test_client(), image["id"])["variants"]["thumb"]["state"] == "ready"


def test_the_worker_exits_0_at_once_when_variants_are_off(workers: Workers) -> None:
    worker, log = workers.start(BROKER_VARIANTS="")
    assert worker.wait(timeout=120) == 0
    assert "variants are off" in log.read_text()
