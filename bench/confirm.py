"""Confirm (``POST /images``) on Ceph RGW: its MongoDB and S3 round trips, and its latency.

Confirm is the one request that waits on the bucket: it reads the object's headers and first
64 KiB (one ranged GET) and tags it, around its MongoDB reads and writes. Two measurements:

- :func:`round_trips`: confirms run in-process (the app and Flask's test client, the PUT over
  HTTP to RGW), counting every MongoDB command (pymongo's command monitoring) and every S3 HTTP
  request (botocore's ``before-send`` / ``needs-retry`` events) each one makes, with their
  latencies: what a confirm costs in round trips, and which of them take the time.
- :func:`latency_under_load`: confirms through gunicorn from several clients at once, so the
  worker class shows whether a worker waiting on S3 holds up the others.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pymongo import monitoring

from bench.services import bench_token, broker_env, broker_logs_to
from broker import create_app
from broker.extension import current_broker
from tests.support.images import png_of_size
from tests.support.s3 import S3Endpoint
from tests.support.tokens import bearer
from tests.support.upload import HttpApi, UploadFailed, confirm, loopback_session, presigned, put

# A photo-sized object: the confirm reads its first 64 KiB whatever its size.
OBJECT_BYTES = 256 * 1024


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0.5 = median) of ``values``, nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50, p99 and mean of millisecond values."""
    return {
        "p50_ms": round(percentile(values, 0.50), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "mean_ms": round(statistics.fmean(values), 2) if values else 0.0,
    }


class _Recorder(monitoring.CommandListener):
    """MongoDB commands and S3 requests seen while ``active``: (name, milliseconds)."""

    def __init__(self) -> None:
        self.active = False
        self.calls: list[tuple[str, float]] = []
        self._s3_started: dict[int, float] = {}

    # MongoDB (pymongo's command monitoring)
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """A command went out (counted when it answers)."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Record a MongoDB round trip."""
        self._mongo(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Record a MongoDB round trip that answered with an error (a duplicate key, say)."""
        self._mongo(event)

    def _mongo(
        self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent
    ) -> None:
        if self.active:
            self.calls.append((f"MongoDB {event.command_name}", event.duration_micros / 1000))

    # S3 (botocore's events, per HTTP request: retries count as round trips too)
    def s3_sent(self, event_name: str, **_: Any) -> None:
        """An S3 request is about to go out."""
        self._s3_started[threading.get_ident()] = time.perf_counter()

    def s3_answered(self, event_name: str, **_: Any) -> None:
        """An S3 request was answered (botocore asks whether to retry after every attempt)."""
        started = self._s3_started.pop(threading.get_ident(), None)
        if self.active and started is not None:
            operation = event_name.rsplit(".", 1)[-1]
            self.calls.append((f"S3 {operation}", (time.perf_counter() - started) * 1000))


def round_trips(mongo_uri: str, s3: S3Endpoint, count: int, log_path: Path) -> dict[str, Any]:
    """``count`` confirms in-process: round trips per confirm, by kind, with p50/p99 each.

    The broker's access lines go to ``log_path``, as gunicorn's go to its log file."""
    recorder = _Recorder()
    monitoring.register(recorder)
    app = create_app(broker_env(mongo_uri, "bench", s3))
    with app.app_context():
        broker = current_broker()
    events = broker.bucket.client.meta.events
    events.register("before-send.s3", recorder.s3_sent)
    events.register("needs-retry.s3", recorder.s3_answered)
    client = app.test_client()
    headers = bearer(bench_token("confirm-counted"))
    data = png_of_size(OBJECT_BYTES, 640, 480)
    per_confirm: list[Counter[str]] = []
    by_call: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    with open(log_path, "w") as log, broker_logs_to(log):
        for number in range(count + 1):  # the first one warms up connections and caches
            grant = presigned(client, data, headers=headers, filename=f"rt-{number}.png")
            stored = put(grant, data)
            if stored.status_code != 200:
                raise SystemExit(f"PUT answered {stored.status_code}: {stored.text[:300]}")
            recorder.calls.clear()
            recorder.active = True
            started = time.perf_counter()
            answer = confirm(client, grant["key"], headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            recorder.active = False
            if answer.status_code != 201:
                raise SystemExit(f"confirm answered {answer.status_code}: {answer.get_json()}")
            if number == 0:
                continue
            totals.append(elapsed)
            per_confirm.append(Counter(name for name, _ in recorder.calls))
            for name, ms in recorder.calls:
                by_call[name].append(ms)
    broker.db.client.close()
    kinds = sorted(by_call, key=lambda name: (not name.startswith("MongoDB"), name))
    return {
        "confirms": count,
        "object_bytes": OBJECT_BYTES,
        "in_process": summary_ms(totals),
        "calls": {
            name: {
                "per_confirm": round(sum(c[name] for c in per_confirm) / len(per_confirm), 2),
                **summary_ms(by_call[name]),
            }
            for name in kinds
        },
        "mongodb_per_confirm": round(
            sum(sum(n for k, n in c.items() if k.startswith("MongoDB")) for c in per_confirm)
            / len(per_confirm),
            2,
        ),
        "s3_per_confirm": round(
            sum(sum(n for k, n in c.items() if k.startswith("S3")) for c in per_confirm)
            / len(per_confirm),
            2,
        ),
    }


def latency_under_load(
    base_url: str, *, clients: int, per_client: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Confirms through the broker at ``base_url`` from ``clients`` threads at once."""
    data = png_of_size(OBJECT_BYTES, 640, 480)

    def one_client(number: int) -> list[float]:
        # One user per client: the per-user confirm limit is paid, never hit.
        headers = bearer(bench_token(f"confirm-{number}"))
        timings = []
        with loopback_session() as session:
            api = HttpApi(base_url, timeout=60, session=session)
            for index in range(per_client + 1):
                try:
                    grant = presigned(api, data, headers=headers, filename=f"c{index}.png")
                except UploadFailed as failed:
                    raise SystemExit(str(failed)) from None
                stored = session.put(grant["url"], data=data, headers=grant["headers"], timeout=60)
                if stored.status_code != 200:
                    raise SystemExit(f"PUT answered {stored.status_code}: {stored.text[:300]}")
                started = time.perf_counter()
                answer = confirm(api, grant["key"], headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 201:
                    raise SystemExit(f"confirm answered {answer.status_code}")
                if index:  # the first warms the connection up
                    timings.append(elapsed)
        return timings

    log(f"confirm: {clients} clients x {per_client} uploads on {base_url}")
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = [ms for result in pool.map(one_client, range(clients)) for ms in result]
    return {
        "clients": clients,
        "confirms": len(timings),
        "seconds": round(time.perf_counter() - started, 2),
        **summary_ms(timings),
    }
