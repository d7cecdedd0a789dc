"""``make bench``: one run of every broker benchmark on this machine, figures side by side.

Starts its own services on loopback (``secantusdb`` for MongoDB, Ceph RGW as a real S3, the
broker under ``gunicorn --workers 2`` with the sync and the gthread worker classes, configured
by environment variables only), seeds MongoDB directly, and measures:

1. µs per presigned URL: the fast signer, boto3 and the bare HMAC floor (bench_signer.py);
2. requests/s and p50/p99 under wrk of a bare Flask route (``bench/bare_app.py``, the ceiling,
   same gunicorn), ``GET /healthz``, ``GET /images/<id>/signed-url``, ``POST
   /images/signed-urls`` (100 ids), ``GET /images?limit=100&sign=1`` and the same with
   ``&variant=thumb``, with ``BROKER_SIGNER=fast`` and ``boto3``, under each worker class;
3. confirm (``POST /images``) on RGW: its MongoDB and S3 round trips and their latency
   (in-process), and its latency under gunicorn with several clients at once;
4. bytes the broker sends and receives per upload (1 MiB and 100 MiB), through counting proxies
   between client and broker and between broker and S3, and the CPU it spends per upload;
5. the latency of list page 1 and page 1000 of a 50,000-image library;
6. variants: pyvips vs Pillow on a 24 Mpx JPEG and a 40 Mpx PNG (bench_variants.py), and
   ``flask --app wsgi worker --once`` on RGW making both default variants of each;

and what the test database spends on the two database-bound operations of section 2 (the
rate-limit lease, the list query) by the size of their collection (bench/dbcost.py).

Prints a table and whether each target was met, writes ``bench/results/latest.json`` and
``bench/results/latest.md``, and profiles the request path of any missed endpoint target.
A missed ``/healthz`` or signed-URL target (their share of the bare route's requests/s) is also
profiled inside a gunicorn worker, against the bare route (bench/profile_worker.py).
``--only endpoints,confirm`` runs some sections (written to ``var/bench/results``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare_app, confirm, dbcost, report
from bench.countproxy import CountingProxy, ProxyThread
from bench.load import WrkRequest, ensure_wrk, process_cpu_seconds, run_wrk
from bench.services import (
    Dataset,
    Gunicorn,
    bench_token,
    broker_env,
    image_documents,
    mongo_server,
    seed_dataset,
    seed_images,
    signed_url_requests,
)
from broker import create_app
from broker.devservers import MongoServer, free_port
from broker.extension import current_broker
from broker.pagination import encode_cursor
from broker.sliding_window import lease_cap
from tests.support import REPO
from tests.support.gunicorn import LOOPBACK
from tests.support.images import png_of_size
from tests.support.s3 import S3Endpoint, running_rgw
from tests.support.tokens import bearer
from tests.support.upload import HttpApi, UploadFailed, loopback_session, upload
from tests.support.workers import log_records, start_worker

WORK_DIR = REPO / "var" / "bench"
BATCH_USERS = 20
# Uploads (presign, PUT, confirm) whose CPU is measured: 25 per user, under the presign limit.
UPLOADS = 100
RESULTS_DIR = REPO / "bench" / "results"
MIB = 1024 * 1024
DEEP_USER = "deep"
BATCH = 100
PAGE_SIZE = 50
DEEP_PAGE = 1000
# Clients confirming at once: twice the workers, so a sync worker waiting on S3 shows.
CONFIRM_CLIENTS = 4
SECTIONS = ("signer", "endpoints", "dbcost", "confirm", "upload", "pagination", "variants")


STARTED = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, with the time since start."""
    print(f"[bench {time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# ---- small HTTP client ------------------------------------------------------------------------


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, Any]:
    """One HTTP request; returns the status and the decoded JSON body (or None)."""
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with LOOPBACK.open(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def expect(status: int, payload: Any, wanted: int, what: str) -> Any:
    """Stop the run when a request did not answer as it must (a benchmark of errors is void)."""
    if status != wanted:
        raise SystemExit(f"{what}: expected HTTP {wanted}, got {status}: {payload!r}"[:2000])
    return payload


# ---- setup ------------------------------------------------------------------------------------


def prepare(mongo_uri: str, database: str, s3: S3Endpoint) -> None:
    """Create the bucket and the indexes through the app, as an operator would."""
    # Building the indexes over a seeded 50,000-image library on the test server can take
    # longer than a request may wait (the socket timeout is 3 x this, at least 10 s).
    app = create_app(broker_env(mongo_uri, database, s3, BROKER_MONGODB_TIMEOUT_MS="60000"))
    with app.app_context():
        broker = current_broker()
    broker.bucket.ensure_bucket()
    broker.db.ensure_indexes()
    broker.db.client.close()


# ---- 1. signer --------------------------------------------------------------------------------


def bench_signer() -> dict[str, Any]:
    """Run bench_signer.py and return its figures."""
    out = WORK_DIR / "signer.json"
    command = [sys.executable, str(REPO / "bench" / "bench_signer.py"), "--json", str(out)]
    subprocess.run(command, check=True, cwd=REPO, timeout=300, stdout=sys.stderr)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


# ---- 2 and 3. endpoints under gunicorn --------------------------------------------------------


def batch_requests(dataset: Dataset) -> list[WrkRequest]:
    """Each batch user asks for signed GETs of their 100 images in one call, in turn."""
    return [
        WrkRequest("POST", "/images/signed-urls", bench_token(user), json.dumps({"ids": ids}))
        for user, ids in dataset.batches
    ]


# Each broker the HTTP benchmarks run: its settings beyond the defaults.
BROKERS: dict[str, dict[str, str]] = {
    "fast": {"BROKER_SIGNER": "fast"},
    "boto3": {"BROKER_SIGNER": "boto3"},
    "limits_memory": {"BROKER_SIGNER": "fast", "BROKER_RATE_LIMIT_STORAGE_URI": "memory://"},
    "limits_off": {"BROKER_SIGNER": "fast", "BROKER_RATE_LIMIT_SIGN": ""},
}
# The rate limiter on the hot path: signed-url on the brokers whose counters differ from the
# default (the broker's MongoDB, shared by every process).
LIMITER_RUNS = ("limits_memory", "limits_off")
# BROKER_RATE_LIMIT_SIGN's default, per minute: the limit the signed-url runs count against.
SIGN_LIMIT = 1200
# The signed-url runs are first sent this many times the requests their callers' leases need to
# ramp up to the cap in each worker (see lease_warmup_requests).
LEASE_WARMUP_MARGIN = 1.5
# The runs limited by BROKER_RATE_LIMIT_SIGN that are warmed so (a single URL, a batch, with
# either signer); the signed pages answer a few per second, too few for the ramp to matter.
LEASE_WARMED = ("signed_url", "batch")


def lease_ramp_hits(limit: int) -> int:
    """Hits of one caller through one process before its leases reach the cap (1, 2, 4, ...)."""
    hits, lease = 0, 1
    while lease < lease_cap(limit):
        hits, lease = hits + lease, 2 * lease
    return hits


def lease_warmup_requests(callers: int, workers: int = 2) -> int:
    """Requests that bring every caller's lease in every worker to its cap, with a margin (the
    requests do not split evenly between the workers)."""
    return math.ceil(LEASE_WARMUP_MARGIN * lease_ramp_hits(SIGN_LIMIT) * callers * workers)


def warm_up_leases(url: str, requests: list[WrkRequest], workers: int) -> None:
    """Load ``url`` with ``requests`` until every caller's lease in each worker reached its cap:
    the run after it measures a long-lived broker's steady state, not a fresh one's ramp."""
    needed, sent = lease_warmup_requests(len(requests), workers), 0
    while sent < needed:
        sent += run_wrk(url, requests, seconds=5, warmup_seconds=0).requests


def database_ops(client: MongoClient[dict[str, Any]]) -> dict[str, int]:
    """The database's operation counters (``serverStatus`` opcounters: every round trip)."""
    counters = client.admin.command("serverStatus").get("opcounters", {})
    return {kind: int(count) for kind, count in counters.items()}


def list_sign_requests(dataset: Dataset, query: str = "") -> list[WrkRequest]:
    """Each batch user lists their 100 images with a signed GET embedded in each, in turn
    (``query`` adds to the query string, e.g. ``&variant=thumb``)."""
    return [
        WrkRequest("GET", f"/images?limit={BATCH}&sign=1{query}", bench_token(user))
        for user, _ids in dataset.batches
    ]


# The worker classes the endpoints are measured under: gunicorn's default (one request at a time
# per worker process, a connection per request) and threads (keep-alive; a worker serves
# another request while one waits on MongoDB or S3).
WORKER_CLASSES: dict[str, dict[str, Any]] = {
    "sync": {"worker_class": "sync"},
    "gthread": {"worker_class": "gthread", "threads": 4},
}


def server_line(worker_class: str) -> str:
    """The gunicorn command line of a worker class, as the report prints it."""
    threads = WORKER_CLASSES[worker_class].get("threads")
    extra = f" --threads {threads}" if threads else ""
    return f"gunicorn --workers 2 --worker-class {worker_class}{extra}"


def bench_endpoints(
    args: argparse.Namespace, mongo: MongoServer, s3: S3Endpoint, dataset: Dataset
) -> dict[str, dict[str, Any]]:
    """wrk on the bare Flask ceiling, /healthz, the signed-URL endpoint and the batches, with
    each signer, under each worker class; the figures by worker class."""
    load = {
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "connections": args.connections,
    }
    both = ("fast", "boto3")
    plans = {
        "signed_url": ("GET /images/<id>/signed-url", signed_url_requests(dataset), both),
        "batch": (f"POST /images/signed-urls, {BATCH} ids", batch_requests(dataset), both),
        "list_sign": (f"GET /images?limit={BATCH}&sign=1", list_sign_requests(dataset), both),
        # The same pages signing each image's thumb: the records carry the variants, so it
        # must cost what sign=1 does (no lookup per image).
        "list_thumb": (
            f"GET /images?limit={BATCH}&sign=1&variant=thumb",
            list_sign_requests(dataset, "&variant=thumb"),
            ("fast",),
        ),
    }
    # Every server runs side by side and the runs alternate between them, so that a change in
    # background load during the benchmark hits the ceiling and each broker alike. The limiter's
    # brokers differ from "fast" only in the rate limiter's counters (in each process; none), to
    # measure its cost; they run under the first worker class only.
    servers: dict[tuple[str, str], Gunicorn] = {}
    for worker_class in args.worker_classes:
        options = WORKER_CLASSES[worker_class]
        servers[worker_class, "bare"] = Gunicorn(
            {},
            WORK_DIR / f"gunicorn-bare-{worker_class}.log",
            app="bench.bare_app:app",
            ready_path=bare_app.PATH,
            **options,
        )
        for name, env in BROKERS.items():
            if name in LIMITER_RUNS and worker_class != args.worker_classes[0]:
                continue
            servers[worker_class, name] = Gunicorn(
                broker_env(mongo.uri, "bench", s3, **env),
                WORK_DIR / f"gunicorn-{name}-{worker_class}.log",
                **options,
            )
    runs: list[tuple[str, str, str, str, list[WrkRequest]]] = []
    for worker_class in args.worker_classes:
        runs += [
            ("bare", worker_class, "bare", "GET /bare (bare Flask)", [WrkRequest("GET", "/bare")]),
            ("healthz", worker_class, "fast", "GET /healthz", [WrkRequest("GET", "/healthz")]),
        ]
        for name, (label, requests, signers) in plans.items():
            runs += [
                (f"{name}_{signer}", worker_class, signer, label, requests) for signer in signers
            ]
    label, requests, _ = plans["signed_url"]
    runs += [
        (f"signed_url_{name}", args.worker_classes[0], name, label, requests)
        for name in LIMITER_RUNS
    ]
    database_pid = mongo.process.pid if mongo.process is not None else -1
    ops_client: MongoClient[dict[str, Any]] = MongoClient(mongo.uri)

    def database_cpu() -> float:
        return process_cpu_seconds(database_pid)

    def ops() -> dict[str, int]:
        return database_ops(ops_client)

    with contextlib.ExitStack() as stack:
        stack.callback(ops_client.close)
        for (worker_class, signer), server in servers.items():
            stack.enter_context(server)
            log(f"gunicorn ({worker_class}) up for {signer} on {server.url}")
            if signer != "bare":
                check_endpoints(server.url, dataset)
        rounds: dict[tuple[str, str], list[dict[str, Any]]] = {
            (worker_class, key): [] for key, worker_class, *_ in runs
        }
        for round_number in range(1, args.rounds + 1):
            for key, worker_class, signer, label, requests in runs:
                log(f"wrk {label} ({signer}, {worker_class}), round {round_number}/{args.rounds}")
                server = servers[worker_class, signer]
                cpu_of = {"broker": server.cpu_seconds, "database": database_cpu}
                if key.startswith(LEASE_WARMED):
                    warm_up_leases(server.url, requests, server.workers)
                result = run_wrk(server.url, requests, cpu_of=cpu_of, counters=ops, **load)
                if any(result.errors.values()):
                    log(f"WARNING: {key} ({worker_class}): wrk saw errors {result.errors}")
                rounds[worker_class, key].append(result.as_dict())
    # Other work on the machine only ever slows a run down: the best round is the least
    # disturbed one. Every round is kept in the JSON (what changed between rounds is reported).
    results: dict[str, dict[str, Any]] = {worker_class: {} for worker_class in args.worker_classes}
    for (worker_class, key), measured in rounds.items():
        best = max(measured, key=lambda figures: figures["requests_per_s"])
        results[worker_class][key] = {
            **best,
            "rounds_requests_per_s": [figures["requests_per_s"] for figures in measured],
            "rounds": measured,
        }
    return results


def check_endpoints(url: str, dataset: Dataset) -> None:
    """Each endpoint answers what the contract says before it is loaded."""
    user, image_id = dataset.singles[0]
    token = bench_token(user)
    signed = call("GET", f"{url}/images/{image_id}/signed-url", token=token)
    signed_body = expect(*signed, 200, "signed-url")
    if not signed_body["url"].startswith("http") or not signed_body["expires_at"]:
        raise SystemExit(f"signed-url: unexpected answer {signed_body!r}")
    user, ids = dataset.batches[0]
    token = bench_token(user)
    batch = call("POST", f"{url}/images/signed-urls", token=token, body={"ids": ids})
    if len(expect(*batch, 200, "batch")["urls"]) != BATCH:
        raise SystemExit(f"batch: not {BATCH} URLs")
    page = expect(*call("GET", f"{url}/images?limit={BATCH}&sign=1", token=token), 200, "list")
    if len(page["images"]) != BATCH or not all(image.get("url") for image in page["images"]):
        raise SystemExit(f"list sign=1: not {BATCH} images each with a url")
    thumbs = call("GET", f"{url}/images?limit={BATCH}&sign=1&variant=thumb", token=token)
    shown = [image.get("variant") for image in expect(*thumbs, 200, "list thumb")["images"]]
    if shown != ["thumb"] * BATCH:
        raise SystemExit(f"list sign=1&variant=thumb: not {BATCH} thumbs signed: {shown[:3]}")


# ---- confirm ----------------------------------------------------------------------------------


def bench_confirm(args: argparse.Namespace, mongo_uri: str, s3: S3Endpoint) -> dict[str, Any]:
    """Confirm's round trips (in-process) and its latency under gunicorn, by worker class."""
    results: dict[str, Any] = {
        "round_trips": confirm.round_trips(
            mongo_uri, s3, args.confirms, WORK_DIR / "confirm-access.log"
        )
    }
    for worker_class in args.worker_classes:
        env = broker_env(mongo_uri, "bench", s3)
        log_path = WORK_DIR / f"gunicorn-confirm-{worker_class}.log"
        with Gunicorn(env, log_path, **WORKER_CLASSES[worker_class]) as server:
            results[worker_class] = confirm.latency_under_load(
                server.url, clients=CONFIRM_CLIENTS, per_client=args.confirms // 2, log=log
            )
    return results


# ---- 4. bytes per upload ----------------------------------------------------------------------


def upload_once(broker_url: str, token: str, body: bytes, name: str) -> dict[str, Any]:
    """The one upload flow (presign, PUT straight to the bucket, confirm); the image."""
    with loopback_session() as session:
        api = HttpApi(broker_url, timeout=120, session=session)
        try:
            uploaded = upload(
                api, body, headers=bearer(token), filename=name, session=session, timeout=300
            )
        except UploadFailed as failed:
            raise SystemExit(str(failed)) from None
    if uploaded.image["size"] != len(body):
        raise SystemExit(f"confirmed size {uploaded.image['size']} != {len(body)}")
    return uploaded.image


def bench_upload_bytes(mongo_uri: str, s3: S3Endpoint) -> dict[str, Any]:
    """Bytes client↔broker and broker↔S3 for one upload of 1 MiB and one of 100 MiB."""
    token = bench_token("uploader")
    broker_port, client_proxy_port, s3_proxy_port = free_port(), free_port(), free_port()
    client_side = CountingProxy(client_proxy_port, "127.0.0.1", broker_port)
    s3_side = CountingProxy(s3_proxy_port, "127.0.0.1", s3.port)
    env = broker_env(
        mongo_uri,
        "bench",
        s3,
        BROKER_MAX_UPLOAD_BYTES=str(128 * MIB),
        # The broker reaches S3 through the counting proxy; clients PUT to S3 directly.
        BROKER_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_proxy_port}",
        BROKER_S3_PUBLIC_ENDPOINT_URL=s3.endpoint_url,
    )
    proxied = f"http://127.0.0.1:{client_proxy_port}"
    results: dict[str, Any] = {}
    with (
        ProxyThread([client_side, s3_side]) as proxies,
        Gunicorn(env, WORK_DIR / "gunicorn-upload.log", port=broker_port),
    ):
        log("upload: warm-up upload (1 MiB)")
        upload_once(proxied, token, png_of_size(MIB, 640, 480), "warmup.png")
        for label, size in (("1 MiB", MIB), ("100 MiB", 100 * MIB)):
            body = png_of_size(size, 640, 480)
            proxies.wait_quiet()
            proxies.reset()
            log(f"upload: {label}")
            started = time.perf_counter()
            upload_once(proxied, token, body, f"upload-{size}.png")
            elapsed = time.perf_counter() - started
            proxies.wait_quiet()
            results[label] = {
                "file_bytes": size,
                "client_to_broker": client_side.counters.up,
                "broker_to_client": client_side.counters.down,
                "broker_to_s3": s3_side.counters.up,
                "s3_to_broker": s3_side.counters.down,
                "seconds": round(elapsed, 3),
            }
    return results


# ---- 6. variants ------------------------------------------------------------------------------

WORKER_IMAGES = 6  # per original kind
ORIGINALS = {"jpeg-24mpx": (".jpg", "image/jpeg"), "png-40mpx": (".png", "image/png")}


def bench_renderers(out: Path) -> dict[str, Any]:
    """Run bench_variants.py (pyvips vs Pillow, a fresh process per measurement); its figures."""
    command = [sys.executable, str(REPO / "bench" / "bench_variants.py"), "--json", str(out)]
    subprocess.run(command, check=True, cwd=REPO, timeout=1800, stdout=sys.stderr)
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def bench_worker(mongo_uri: str, s3: S3Endpoint) -> dict[str, Any]:
    """``flask worker --once`` on RGW for each kind of original: seconds per job, CPU per image
    (worker and render child), the worker's and the render child's peak RSS."""
    database = "bench-worker"
    env = broker_env(mongo_uri, database, s3)
    prepare(mongo_uri, database, s3)
    client = create_app(env).test_client()
    token = bench_token("worker")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        maker = [sys.executable, str(REPO / "bench" / "bench_variants.py")]
        subprocess.run(
            [*maker, "--child", "make-originals", tmp, "0"],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        for case, (suffix, filetype) in ORIGINALS.items():
            data = (Path(tmp) / (case + suffix)).read_bytes()
            log(f"worker: {WORKER_IMAGES} uploads of {case} ({len(data) / MIB:.1f} MiB each)")
            for i in range(WORKER_IMAGES):
                headers = bearer(token)
                upload(
                    client, data, headers=headers, filename=f"{case}-{i}{suffix}", filetype=filetype
                )
            results[case] = _drain_once(env, case)
    return results


def _drain_once(env: dict[str, str], case: str) -> dict[str, Any]:
    """Run one ``worker --once`` to the end; its figures."""
    log_path = WORK_DIR / f"worker-{case}.log"
    log_path.unlink(missing_ok=True)
    log(f"worker: flask worker --once on {case}")
    started, cpu_before = time.perf_counter(), _children_cpu_seconds()
    process = start_worker(env, log_path, "--once")
    worker_peak_kib = 0
    while process.poll() is None:
        # The worker's own high-water mark (its child has its own, logged per job).
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{process.pid}/status").read_text()
            worker_peak_kib = max(worker_peak_kib, _status_kib(status, "VmHWM"))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"worker --once failed ({process.returncode}): see {log_path}")
    # Reaped children's CPU: the worker's, and its render child's (which the worker reaped).
    cpu = _children_cpu_seconds() - cpu_before
    jobs = [record for record in log_records(log_path) if record.get("outcome") == "made"]
    if len(jobs) != WORKER_IMAGES:
        raise SystemExit(f"worker --once made {len(jobs)} of {WORKER_IMAGES}: see {log_path}")
    seconds = statistics.median(record["seconds"] for record in jobs)
    return {
        "images": WORKER_IMAGES,
        "wall_s": round(wall, 3),
        "seconds_per_image": seconds,
        "images_per_s": 1 / seconds,
        "cpu_s_per_image": cpu / WORKER_IMAGES,
        "worker_peak_rss_mib": worker_peak_kib / 1024,
        "render_peak_rss_mib": max(record["render_peak_rss_mb"] or 0 for record in jobs),
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _status_kib(status: str, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status."""
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---- 5. list pagination -----------------------------------------------------------------------


def bench_upload_cpu(mongo: MongoServer, s3: S3Endpoint, clients: int = 4) -> dict[str, Any]:
    """CPU the broker and the database spend per upload (presign and confirm: the bytes go to
    S3), from ``UPLOADS`` uploads by ``clients`` users at once (each under its rate limits)."""
    server = Gunicorn(broker_env(mongo.uri, "bench", s3), WORK_DIR / "gunicorn-uploads.log")
    database_pid = mongo.process.pid if mongo.process is not None else -1
    per_client = UPLOADS // clients

    def uploads_of(user: str) -> None:
        with loopback_session() as session:
            api = HttpApi(server.url, session=session)
            for n in range(per_client):
                data = png_of_size(4096 + n, 64, 48)
                upload(api, data, headers=bearer(bench_token(user)), session=session)

    with server:
        uploads_of("cost-warmup")
        broker_before, database_before = server.cpu_seconds(), process_cpu_seconds(database_pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(uploads_of, [f"cost-{n}" for n in range(clients)]))
        elapsed = time.perf_counter() - started
        broker_cpu = server.cpu_seconds() - broker_before
        database_cpu = process_cpu_seconds(database_pid) - database_before
    count = per_client * clients
    return {
        "uploads": count,
        "clients": clients,
        "uploads_per_s": count / elapsed,
        "broker_cpu_ms_per_upload": broker_cpu * 1000 / count,
        "database_cpu_ms_per_upload": database_cpu * 1000 / count,
    }


def bench_pagination(args: argparse.Namespace, mongo_uri: str, s3: S3Endpoint) -> dict[str, Any]:
    """Latency of page 1 and page 1000 of a 50,000-image library (``limit=50``)."""
    database = "bench_pages"
    total = PAGE_SIZE * DEEP_PAGE
    # Without variant maps: on secantusdb a page costs more the more documents the owner and the
    # whole collection hold (database_keys_examined, bench/dbcost.py), so their size would be
    # measured rather than the cursors (a real MongoDB reads 51 index entries).
    documents = image_documents(
        DEEP_USER, total, datetime(2024, 1, 1, tzinfo=UTC), with_variants=False
    )
    log(f"pagination: seeding {total} images with insert_many")
    started = time.perf_counter()
    seed_images(mongo_uri, database, documents)
    seeded = time.perf_counter() - started
    log(f"pagination: seeded in {seeded:.1f}s; creating the indexes")
    started = time.perf_counter()
    prepare(mongo_uri, database, s3)
    indexed = time.perf_counter() - started
    # Newest first: row r of the listing is documents[total - 1 - r].
    newest_first = documents[::-1]

    def expected_cursor(page: int) -> str:
        return encode_cursor("newest", newest_first[page * PAGE_SIZE - 1])

    token = bench_token(DEEP_USER)
    # The test server's hinted walk reads every index key of the owner (see
    # database_keys_examined), here the whole library, and besides costs more the larger the
    # whole collection is (bench/dbcost.py): about 5 s a page here, and 10 to 20 s while other
    # work shares the machine. The default timeouts (a 10 s socket timeout, gunicorn's 30 s
    # worker timeout), there to cut a production broker loose from a stuck database, then fail
    # the run; this measurement wants the answer however slow.
    env = {
        **broker_env(mongo_uri, database, s3, BROKER_MONGODB_TIMEOUT_MS="60000"),
        "GUNICORN_CMD_ARGS": "--timeout=600",
    }
    with Gunicorn(env, WORK_DIR / "gunicorn-pages.log") as broker:

        def fetch(cursor: str | None) -> tuple[float, dict[str, Any]]:
            url = f"{broker.url}/images?limit={PAGE_SIZE}"
            if cursor:
                url += f"&cursor={cursor}"
            began = time.perf_counter()
            payload = expect(*call("GET", url, token=token), 200, "list page")
            return (time.perf_counter() - began) * 1000, payload

        # Follow next_cursor from page 1 as a client does, as deep as the time budget allows.
        log(f"pagination: following next_cursor (up to {args.walk_seconds:.0f}s)")
        walk_started = time.monotonic()
        walk_ms: list[float] = []
        cursor: str | None = None
        page_number = 0
        while page_number < DEEP_PAGE - 1 and time.monotonic() - walk_started < args.walk_seconds:
            elapsed_ms, payload = fetch(cursor)
            page_number += 1
            walk_ms.append(elapsed_ms)
            cursor = payload["next_cursor"]
            if cursor != expected_cursor(page_number):
                raise SystemExit(f"page {page_number}: next_cursor is not the expected one")
        walked = page_number
        # The rest of the way is computed by the broker's own cursor encoder, which the walk
        # just proved yields byte for byte the cursors the API returns.
        deep_cursor = cursor if walked == DEEP_PAGE - 1 else expected_cursor(DEEP_PAGE - 1)
        _, last = fetch(deep_cursor)
        wanted_ids = [str(doc["_id"]) for doc in newest_first[-PAGE_SIZE:]]
        if [image["id"] for image in last["images"]] != wanted_ids or last["next_cursor"]:
            raise SystemExit("page 1000 is not the last 50 images of the library")
        first_ms: list[float] = []
        deep_ms: list[float] = []
        for _ in range(args.page_repeats):  # interleaved, so background load hits both alike
            first_ms.append(fetch(None)[0])
            deep_ms.append(fetch(deep_cursor)[0])
    keys_examined = database_keys_examined(mongo_uri, database)
    log(f"pagination: the database examines {keys_examined} index keys for page 1")
    return {
        "images": total,
        "page_size": PAGE_SIZE,
        "deep_page": DEEP_PAGE,
        "seed_seconds": round(seeded, 1),
        "index_seconds": round(indexed, 1),
        "pages_walked_via_next_cursor": walked,
        "walk_page_ms_median": round(report.median(walk_ms), 1),
        "deep_cursor": "followed" if walked == DEEP_PAGE - 1 else "encoded (walk verified)",
        "page1_ms": [round(value, 1) for value in first_ms],
        "page1000_ms": [round(value, 1) for value in deep_ms],
        "database_keys_examined_page1": keys_examined,
    }


def database_keys_examined(mongo_uri: str, database: str) -> int | None:
    """Index keys the database reads for page 1 of the deep library (its ``explain``).

    The query is the one the broker sends for ``GET /images?limit=50`` (the owner's live images,
    newest first, one more than the page, hinted to the owner's list index). A real MongoDB
    reads 51 keys at any depth; a test server that reads the whole library measures its scan,
    not the cursor, and the report says so.
    """
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, socketTimeoutMS=600_000)
    try:
        return dbcost.keys_examined(client[database], DEEP_USER, PAGE_SIZE + 1)
    finally:
        client.close()


# ---- main -------------------------------------------------------------------------------------


def main() -> None:
    """Run every benchmark once and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up before each run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="wrk rounds (targets: median of paired ratios)"
    )
    parser.add_argument("--connections", type=int, default=4, help="wrk connections (2/worker)")
    parser.add_argument("--page-repeats", type=int, default=5, help="fetches of page 1 and 1000")
    parser.add_argument(
        "--walk-seconds", type=float, default=30.0, help="time budget to follow next_cursor"
    )
    parser.add_argument("--confirms", type=int, default=40, help="confirms counted in-process")
    parser.add_argument(
        "--worker-classes",
        type=lambda text: text.split(","),
        default=list(WORKER_CLASSES),
        help="comma-separated gunicorn worker classes to measure (sync,gthread)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SECTIONS),
        help=f"comma-separated sections to run ({','.join(SECTIONS)}); a partial run writes "
        "to var/bench/results unless --out is given",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip profiling misses")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args()
    if unknown := (args.only - set(SECTIONS)) | (set(args.worker_classes) - set(WORKER_CLASSES)):
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    if args.out is None:
        args.out = RESULTS_DIR if args.only == set(SECTIONS) else WORK_DIR / "results"

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    ensure_wrk()
    machine = report.machine_info()
    log(f"machine: {machine['cores']} cores, {machine['cpu']}, load {machine['load_start']}")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
    }
    if "signer" in args.only:
        log("signer micro-benchmark")
        results["signer"] = bench_signer()
    with mongo_server(WORK_DIR / "mongo") as mongo, running_rgw() as s3:
        log(f"MongoDB (secantusdb) at {mongo.uri}, S3 ({s3.server}) at {s3.endpoint_url}")
        results["services"] = {"mongodb": "secantusdb", "s3": s3.server}
        prepare(mongo.uri, "bench", s3)
        # The per-user rate limits count across processes: enough users that the load of each
        # stays under BROKER_RATE_LIMIT_SIGN (1200/minute) through every run.
        dataset = seed_dataset(mongo.uri, "bench", batch_users=BATCH_USERS)
        if "endpoints" in args.only:
            log("endpoints under gunicorn with wrk")
            lease_warmup = (
                lease_ramp_hits(SIGN_LIMIT),
                lease_warmup_requests(len(dataset.singles)),
                lease_warmup_requests(len(dataset.batches)),
            )
            results["settings"] = report.settings_used(args, server_line, lease_warmup)
            results["endpoints"] = bench_endpoints(args, mongo, s3, dataset)
        if "dbcost" in args.only:
            # Right after the endpoints, while their rate-limit counters are still there to count.
            log("what the test database spends per operation, by the size of its collection")
            results["dbcost"] = dbcost.measure(mongo.uri, WORK_DIR, SIGN_LIMIT, BATCH, log)
        if "confirm" in args.only:
            log("confirm: round trips in-process, latency under gunicorn")
            results["confirm"] = bench_confirm(args, mongo.uri, s3)
        if "upload" in args.only:
            log("bytes per upload through counting proxies")
            results["upload_bytes"] = bench_upload_bytes(mongo.uri, s3)
            log("CPU per upload (presign + confirm)")
            results["upload_cost"] = bench_upload_cpu(mongo, s3)
        if "pagination" in args.only:
            log("list page 1 vs page 1000")
            results["pagination"] = bench_pagination(args, mongo.uri, s3)
        if "variants" in args.only:
            log("variants: renderers (pyvips vs Pillow), then the worker on RGW")
            results["variants"] = {
                "renderers": bench_renderers(args.out / "variants.json"),
                "worker": bench_worker(mongo.uri, s3),
            }
        results["targets"] = report.evaluate(results)
        missed = [target for target in results["targets"] if not target["met"]]
        if missed and not args.no_profile:
            from bench.profile_request import profile_misses

            log("profiling the request path of missed targets")
            results["profiles"] = profile_misses(
                missed, mongo.uri, s3, dataset, WORK_DIR / "profile-access.log"
            )
            if any(target["name"] in report.WORKER_PROFILED for target in missed):
                # The in-process profiles cannot show gunicorn's part of the gap (~80 s).
                from bench import profile_worker

                log("profiling /healthz and the signed URL against /bare inside a gunicorn worker")
                results["worker_profile"] = profile_worker.measure(mongo.uri, s3, WORK_DIR, log=log)
    results["machine"]["load_end"] = report.load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results)
    (args.out / "latest.md").write_text(markdown)
    print(markdown)
    log(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
