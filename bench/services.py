"""What the benchmarks run against: MongoDB, Ceph RGW, the broker under gunicorn, seeded data.

Everything listens on 127.0.0.1 only and is stopped by the process that started it: the
MongoDB wire-protocol server (``secantusdb`` via ``broker.devservers``), a real S3 endpoint
(Ceph RADOS Gateway via ``tests/rgw/rgw.sh``) and gunicorn serving ``wsgi:app``, configured by
environment variables only, exactly as in production.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from bson import ObjectId
from pymongo import MongoClient

from bench.load import tree_cpu_seconds
from broker.db.images import image_document
from broker.devservers import MongoServer, free_port
from broker.domain import Image

REPO = Path(__file__).resolve().parent.parent
RGW_SCRIPT = REPO / "tests" / "rgw" / "rgw.sh"
GUNICORN = Path(sys.executable).with_name("gunicorn")
JWT_SECRET = "bench-secret-for-hs256-tokens-0123456789abcdef"
BUCKET = "bench-images"
# Loopback only: no proxy from the environment may carry the benchmark's requests.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3 endpoint and its credentials."""

    url: str
    access_key: str
    secret_key: str
    region: str
    server: str

    @property
    def port(self) -> int:
        """The TCP port of the endpoint."""
        return int(self.url.rsplit(":", 1)[1])


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


def _rgw(command: str, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``tests/rgw/rgw.sh COMMAND`` with ``env``."""
    return subprocess.run(
        ["bash", str(RGW_SCRIPT), command],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def rgw_server() -> Iterator[S3Endpoint]:
    """Ceph RGW on free loopback ports (installed from Debian if needed), stopped afterwards."""
    # Short path: the daemons' unix sockets live under it (107-byte limit).
    state_dir = tempfile.mkdtemp(prefix="broker-bench-rgw-")
    env = dict(os.environ, BROKER_RGW_DIR=state_dir)
    try:
        started = None
        for _attempt in range(3):  # a port taken meanwhile (exit 3): pick others
            env.update(BROKER_RGW_PORT=str(free_port()), BROKER_RGW_MON_PORT=str(free_port()))
            started = _rgw("start", env, timeout=600)
            if started.returncode != 3:
                break
        assert started is not None
        if started.returncode != 0:
            raise RuntimeError(f"rgw.sh start failed:\n{started.stderr[-4000:]}")
        values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        yield S3Endpoint(
            url=values["BROKER_TEST_S3_ENDPOINT_URL"],
            access_key=values["AWS_ACCESS_KEY_ID"],
            secret_key=values["AWS_SECRET_ACCESS_KEY"],
            region=values.get("AWS_DEFAULT_REGION", "us-east-1"),
            server=values.get("BROKER_TEST_S3_SERVER", "unknown"),
        )
    finally:
        stopped = _rgw("stop", env, timeout=120)
        if stopped.returncode != 0:
            print(f"warning: rgw.sh stop failed:\n{stopped.stderr[-2000:]}", file=sys.stderr)
        shutil.rmtree(state_dir, ignore_errors=True)


def broker_env(mongo_uri: str, database: str, s3: S3Endpoint, **overrides: str) -> dict[str, str]:
    """The broker's environment: production mode, our services, defaults for everything else."""
    return {
        "BROKER_ENV": "production",
        "MONGODB_URI": mongo_uri,
        "BROKER_MONGODB_DB": database,
        "BROKER_JWT_SECRET": JWT_SECRET,
        "BROKER_S3_BUCKET": BUCKET,
        "BROKER_S3_ENDPOINT_URL": s3.url,
        "BROKER_S3_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        **overrides,
    }


def _clean_environ() -> dict[str, str]:
    """The caller's environment without anything that would configure the broker or a proxy."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BROKER_", "AWS_", "MONGODB_", "PROMETHEUS_"))
        and not name.lower().endswith("_proxy")
    }


@dataclass
class Gunicorn:
    """``gunicorn --workers 2 --worker-class sync wsgi:app`` on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    workers: int = 2
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the broker."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start it and wait until ``/healthz`` answers 200."""
        self.port = self.port or free_port()
        command = [
            str(GUNICORN),
            f"--workers={self.workers}",
            "--worker-class=sync",
            f"--bind=127.0.0.1:{self.port}",
            "wsgi:app",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # As the README says to run it under gunicorn: metrics summed over the workers.
        metrics_dir = self.log_path.with_suffix(".metrics")
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env = {**_clean_environ(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **self.env}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{tail}")
            try:
                with LOOPBACK.open(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not answer in {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the master and its workers."""
        return tree_cpu_seconds([self.process.pid]) if self.process is not None else 0.0

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the master we started), SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_token(sub: str, *, roles: list[str] | None = None, hours: int = 6) -> str:
    """An HS256 token as an identity provider would issue it, for ``BROKER_JWT_SECRET``."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": roles or [],
        "iat": now,
        "exp": now + timedelta(hours=hours),
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def image_documents(owner: str, count: int, start: datetime) -> list[dict[str, Any]]:
    """``count`` confirmed-image documents for ``owner``, one second apart from ``start``."""
    documents = []
    for i in range(count):
        created = start + timedelta(seconds=i)
        image = Image(
            id=str(ObjectId()),
            key=f"{owner}/{ObjectId()}.png",
            owner=owner,
            filename=f"photo-{i:06d}.png",
            content_type="image/png",
            size=48_213 + i,
            width=640,
            height=480,
            content_md5=None,
            etag=None,
            kind="gallery",
            is_primary=False,
            caption=f"bench image {i}",
            created_at=created,
            updated_at=created,
        )
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
