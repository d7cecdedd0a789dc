"""``make soak``: a realistic mix at 80% of measured capacity for several minutes.

Starts its own services on loopback (``secantusdb``, Ceph RGW as a real S3, the broker under
``gunicorn --workers 2 --worker-class sync wsgi:app``), then:

1. measures capacity: closed-loop clients run the mix flat out for ``--probe`` seconds;
2. soaks: an open-loop schedule sends the mix at 80% of that rate for ``--duration`` seconds,
   sampling the resident memory of the gunicorn workers every few seconds.

The mix, per operation: 10% a whole upload (presign, a real PUT of a small PNG to the bucket,
confirm), 30% a library page with signed URLs (``GET /images?limit=20&sign=1``), 50% one signed
URL, 10% a batch of 20 signed URLs. Viewers (who list and sign) own libraries of a fixed size;
uploads go to separate uploader accounts, so the work per request stays what it was when the
capacity was measured. Callers are spread over many users so the per-user rate limits (left at
their defaults) are not what is measured.

Latency is measured from the moment each operation was due (open loop), so a server that falls
behind shows it in its p99 instead of quietly slowing the load. It reports errors (any status
other than the expected one, or a failed request), p50/p99 per operation and the memory trend of
the gunicorn workers, and writes ``bench/results/soak.{json,md}``. Bounded in count and in
time; loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import children_of
from bench.services import Gunicorn, bench_token, broker_env, mongo_server
from broker import create_app
from broker.extension import current_broker
from tests.support.images import png_bytes
from tests.support.s3 import running_rgw
from tests.support.upload import HttpApi, UploadFailed, loopback_session, upload

RESULTS = Path(__file__).resolve().parent / "results"
VIEWERS = 40
UPLOADERS = 40
LIBRARY_SIZE = 12
MIX = (("upload", 0.10), ("list_signed", 0.30), ("signed_url", 0.50), ("batch", 0.10))


@dataclass
class Recorder:
    """Latencies and errors per operation, thread-safe."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, seconds: float, error: str | None) -> None:
        """Count one operation."""
        with self.lock:
            self.latencies[op].append(seconds)
            if error:
                self.errors[op].append(error)

    def total(self) -> int:
        """Operations recorded."""
        return sum(len(v) for v in self.latencies.values())


class Mix:
    """One caller's view of the broker: performs the operations of the mix."""

    def __init__(self, base: str, viewers: list[str], uploaders: list[str]) -> None:
        self.base = base
        self.viewers = viewers
        self.uploaders = uploaders
        self.tokens = {user: bench_token(user) for user in viewers + uploaders}
        self.images: dict[str, list[str]] = {user: [] for user in viewers + uploaders}
        self.local = threading.local()

    def session(self) -> requests.Session:
        """A keep-alive session per thread, never routed through a proxy."""
        if not hasattr(self.local, "session"):
            self.local.session = loopback_session()
        session: requests.Session = self.local.session
        return session

    def run(self, op: str, rng: random.Random, user: str | None = None) -> str | None:
        """Perform one operation (as ``user``, or a random one); return an error, or None."""
        user = user or rng.choice(self.uploaders if op == "upload" else self.viewers)
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        http = self.session()
        ids = self.images[user]
        if op == "upload":
            data = png_bytes(rng.randint(8, 64), rng.randint(8, 64))
            api = HttpApi(self.base, timeout=30, session=http)
            try:
                uploaded = upload(
                    api, data, headers=headers, filename="soak.png", session=http, timeout=30
                )
            except UploadFailed as failed:
                return f"{failed.step} {failed.status}"
            ids.append(uploaded.image["id"])
            return None
        if op == "list_signed":
            response = http.get(f"{self.base}/images?limit=20&sign=1", headers=headers, timeout=30)
        elif op == "signed_url":
            response = http.get(
                f"{self.base}/images/{rng.choice(ids)}/signed-url", headers=headers, timeout=30
            )
        else:
            chosen = rng.sample(ids, min(20, len(ids)))
            response = http.post(
                f"{self.base}/images/signed-urls", json={"ids": chosen}, headers=headers, timeout=30
            )
        return None if response.status_code == 200 else f"{op} {response.status_code}"


def pick(rng: random.Random) -> str:
    """An operation drawn from the mix."""
    roll, edge = rng.random(), 0.0
    for op, share in MIX:
        edge += share
        if roll < edge:
            return op
    return MIX[-1][0]


def timed(
    mix: Mix, recorder: Recorder, op: str, rng: random.Random, due: float | None = None
) -> None:
    """Run one operation and record its latency (from when it was due), whatever happens."""
    started = due if due is not None else time.perf_counter()
    try:
        error = mix.run(op, rng)
    except requests.RequestException as e:
        error = f"{op} {type(e).__name__}"
    recorder.record(op, time.perf_counter() - started, error)


def probe_capacity(mix: Mix, seconds: float, clients: int) -> float:
    """Operations per second with ``clients`` closed-loop callers running flat out."""
    recorder = Recorder()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            timed(mix, recorder, pick(rng), rng)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    errors = sum(len(v) for v in recorder.errors.values())
    if errors:
        raise RuntimeError(f"{errors} errors while probing capacity: {dict(recorder.errors)}")
    return recorder.total() / seconds


def rss_bytes(pid: int) -> int:
    """Resident memory of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def soak(mix: Mix, master_pid: int, rate: float, seconds: float, clients: int) -> dict[str, Any]:
    """Send the mix at ``rate`` operations/s for ``seconds`` (open loop); sample worker memory.

    At most ``clients`` operations are in flight, as many as measured the capacity: more
    concurrency would measure how the servers cope with contention, not with the rate.
    """
    recorder = Recorder()
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample_memory() -> None:
        start = time.monotonic()
        while not stop.wait(5.0):
            workers = children_of(master_pid)
            samples.append((time.monotonic() - start, sum(rss_bytes(pid) for pid in workers)))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    rng = random.Random(7)
    interval = 1.0 / rate
    start = time.perf_counter()
    late = 0
    next_report = 30.0
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for n in range(int(rate * seconds)):
            due = start + n * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.5:
                late += 1
            op = pick(rng)
            pool.submit(timed, mix, recorder, op, random.Random(n), due)
            if due - start >= next_report:
                print(f"  {next_report:.0f} s: {recorder.total()} done", flush=True)
                next_report += 30.0
    stop.set()
    sampler.join()
    # Wall time until the last operation finished: a server that fell behind took longer.
    elapsed = time.perf_counter() - start
    return summarise(recorder, samples, rate, seconds, elapsed, late)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summarise(
    recorder: Recorder,
    samples: list[tuple[float, int]],
    rate: float,
    seconds: float,
    elapsed: float,
    late: int,
) -> dict[str, Any]:
    """Figures of one soak run."""
    ops = {}
    for op, values in sorted(recorder.latencies.items()):
        ops[op] = {
            "count": len(values),
            "errors": len(recorder.errors.get(op, [])),
            "p50_ms": round(percentile(values, 0.50) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
            "first_errors": recorder.errors.get(op, [])[:5],
        }
    all_latencies = [v for values in recorder.latencies.values() for v in values]
    minute = [rss for t, rss in samples if t <= 60]
    last_minute = [rss for t, rss in samples if t >= samples[-1][0] - 60] if samples else []
    first = statistics.mean(minute) if minute else 0
    last = statistics.mean(last_minute) if last_minute else 0
    return {
        "target_rate": round(rate, 1),
        "achieved_rate": round(recorder.total() / elapsed, 1),
        "duration_s": seconds,
        "elapsed_s": round(elapsed, 1),
        "operations": recorder.total(),
        "errors": sum(o["errors"] for o in ops.values()),
        "late_sends": late,
        "p50_ms": round(percentile(all_latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(all_latencies, 0.99) * 1000, 1),
        "per_operation": ops,
        "worker_rss_mib": {
            "first_minute": round(first / 2**20, 1),
            "last_minute": round(last / 2**20, 1),
            "growth_percent": round((last - first) / first * 100, 1) if first else None,
            "samples": [(round(t), round(rss / 2**20, 1)) for t, rss in samples],
        },
    }


def markdown(result: dict[str, Any]) -> str:
    """The soak figures as a README-ready table."""
    memory = result["worker_rss_mib"]
    lines = [
        "# Soak results",
        "",
        f"- date: {result['date']}",
        f"- machine: {result['machine']}",
        f"- capacity (closed loop, {result['probe_clients']} clients): "
        f"{result['capacity']} operations/s; soak at 80%: {result['target_rate']} operations/s "
        f"for {result['duration_s']:.0f} s ({result['operations']} operations; all done after "
        f"{result['elapsed_s']:.0f} s: {result['achieved_rate']}/s)",
        f"- errors: {result['errors']}; p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms",
        f"- gunicorn workers' resident memory: {memory['first_minute']} MiB in the first minute, "
        f"{memory['last_minute']} MiB in the last ({memory['growth_percent']}%)",
        "",
        "| operation | count | errors | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for op, figures in result["per_operation"].items():
        lines.append(
            f"| {op} | {figures['count']} | {figures['errors']} | {figures['p50_ms']} | "
            f"{figures['p99_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Start the services, probe capacity, soak at 80%, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="soak seconds")
    parser.add_argument("--probe", type=float, default=30.0, help="capacity probe seconds")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop probe clients")
    args = parser.parse_args()
    viewers = [f"viewer-{i}" for i in range(VIEWERS)]
    uploaders = [f"uploader-{i}" for i in range(UPLOADERS)]
    work = Path(tempfile.mkdtemp(prefix="broker-soak-"))
    with mongo_server(work / "mongo") as mongo, running_rgw() as s3:
        env = broker_env(mongo.uri, "soak", s3, PROMETHEUS_MULTIPROC_DIR=str(work / "metrics"))
        (work / "metrics").mkdir()
        app = create_app({**env, "BROKER_ENV": "test"})
        with app.app_context():
            broker = current_broker()
        broker.db.ensure_indexes()
        broker.bucket.ensure_bucket()
        broker.db.client.close()
        with Gunicorn(env, work / "gunicorn.log") as server:
            assert server.process is not None
            mix = Mix(server.url, viewers, uploaders)

            def seed(user: str) -> None:
                rng = random.Random(user)
                for _ in range(LIBRARY_SIZE):
                    error = mix.run("upload", rng, user)
                    if error:
                        raise RuntimeError(f"seeding failed: {error}")

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(seed, viewers))
            print(f"seeded {VIEWERS} libraries of {LIBRARY_SIZE} images", flush=True)
            capacity = probe_capacity(mix, args.probe, args.clients)
            print(f"capacity: {capacity:.1f} operations/s", flush=True)
            result = soak(mix, server.process.pid, capacity * 0.8, args.duration, args.clients)
    result.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}",
        capacity=round(capacity, 1),
        probe_clients=args.clients,
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "soak.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
