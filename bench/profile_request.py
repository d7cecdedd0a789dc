"""cProfile of one request path through the broker's WSGI app, summarised by function and package.

``profile_misses`` is what ``bench/run.py`` calls for the targets a run missed: it builds the app
against the benchmark's MongoDB and S3, warms it up, profiles a few hundred requests and reports
which functions and which packages (flask, werkzeug, marshmallow, jwt, the broker, ...) the
time goes to. Requests go straight into the WSGI app (environments built beforehand), so the
figures are the application's share of a request: gunicorn's socket and HTTP parsing are not
in them.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import itertools
import json
import pstats
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from bench import bare_app
from bench.services import Dataset, bench_token, broker_env, broker_logs_to
from broker import create_app
from broker.signing import Credentials, SigV4Presigner
from tests.support import REPO
from tests.support.s3 import S3Endpoint

TOP = 12
# Frames that wrap the whole request say nothing by their cumulative share; nor do the
# framework's dispatch layers, which wrap the steps worth naming.
WRAPPER_SHARE = 90.0
FRAMEWORK = frozenset({"flask", "werkzeug", "bench", "stdlib:contextlib", "stdlib:threading"})

Request = Callable[[], object]


def _component(filename: str, function: str) -> str:
    """The package a frame belongs to: ``flask``, ``broker.signing``, ``stdlib:json``, ..."""
    if filename.startswith("~") or filename == "<built-in>":
        return "builtins (C)"
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "broker" in parts:
        index = len(parts) - 1 - parts[::-1].index("broker")
        return ".".join(parts[index:]).removesuffix(".py")
    if "bench" in parts:
        return "bench"
    return "stdlib:" + parts[-1].removesuffix(".py")


def _where(filename: str) -> str:
    """A short file name: the path inside site-packages, the repository or the stdlib."""
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    if filename.startswith(f"{REPO}/"):
        return filename[len(str(REPO)) + 1 :]
    return "/".join(parts[-2:])


def _label(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename.startswith("~"):
        return function
    return f"{function} ({_where(filename)}:{line})"


def profile_calls(request: Request, count: int, warmup: int = 50) -> dict[str, Any]:
    """Time ``count`` calls of ``request`` plainly, then profile them; summarise the profile."""
    for _ in range(warmup):
        request()
    started = time.perf_counter()
    for _ in range(count):
        request()
    per_call_us = (time.perf_counter() - started) / count * 1e6
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        request()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1e-12
    by_component: dict[str, float] = defaultdict(float)
    for (filename, _line, function), entry in stats.items():
        by_component[_component(filename, function)] += entry[2]
    own = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:TOP]
    cumulative: list[tuple[tuple[str, int, str], float]] = []
    for key, entry in sorted(stats.items(), key=lambda item: item[1][3], reverse=True):
        share = entry[3] / total * 100
        component = _component(key[0], key[2])
        if share >= WRAPPER_SHARE or component in FRAMEWORK or key[0].startswith("~"):
            continue
        # A chain of calls inside one package (pymongo's layers, say) shows as its top only.
        previous = cumulative[-1] if cumulative else None
        if previous and _component(previous[0][0], "") == component and previous[1] - share < 1:
            continue
        cumulative.append((key, share))
        if len(cumulative) == TOP:
            break
    return {
        "requests": count,
        "us_per_request": per_call_us,
        "by_component": sorted(
            ((name, seconds / total * 100) for name, seconds in by_component.items()),
            key=lambda item: item[1],
            reverse=True,
        )[:8],
        "top_own": [(_label(key), entry[2] / total * 100) for key, entry in own],
        "top_cumulative": [(_label(key), share) for key, share in cumulative],
    }


def _discard(data: bytes) -> None:
    """The WSGI ``write`` callable: the profiled app returns its body instead."""


def _client_requests(
    mongo_uri: str, s3: S3Endpoint, signer: str, requests: list[tuple[str, str, str, Any]]
) -> Request:
    """A callable sending the next of ``requests`` (method, path, user, body) in turn."""
    app = create_app(broker_env(mongo_uri, "bench", s3, BROKER_SIGNER=signer))
    return _wsgi_sender(app, _prepared(requests))


def _prepared(requests: list[tuple[str, str, str, Any]]) -> list[tuple[dict[str, Any], bytes]]:
    """The WSGI environment and body of each of ``requests`` (method, path, user, body), with
    the user's bearer token."""
    # Environments are built once: each call goes straight into the WSGI app, as from gunicorn,
    # without the test client's own request building in the profile.
    prepared = []
    for method, path, user, body in requests:
        data = json.dumps(body).encode() if body is not None else b""
        builder = EnvironBuilder(
            path=path,
            method=method,
            headers=Headers({"Authorization": f"Bearer {bench_token(user)}"}),
            data=data,
            content_type="application/json" if body is not None else None,
        )
        prepared.append((builder.get_environ(), data))
    return prepared


def _wsgi_sender(app: Any, prepared: list[tuple[dict[str, Any], bytes]]) -> Request:
    """A callable sending the next prepared WSGI environment into ``app``, in turn."""
    turn = itertools.cycle(prepared)
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        statuses.append(status)
        return _discard

    def send() -> object:
        environ, data = next(turn)
        environ = {**environ, "wsgi.input": io.BytesIO(data)}
        statuses.clear()
        chunks = app(environ, start_response)
        body = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{environ['PATH_INFO']}: {statuses[0]} {body[:200]!r}")
        return body

    return send


def _bare_requests() -> Request:
    """``GET /bare`` on the bare Flask app the benchmark measures as the ceiling."""
    return _wsgi_sender(bare_app.app, [(EnvironBuilder(path=bare_app.PATH).get_environ(), b"")])


def _presign_request() -> Request:
    """One fast-signer presign of a GET with pinned response headers, as the broker does."""
    signer = SigV4Presigner(
        endpoint_url="https://s3.example.com",
        region="us-east-1",
        credentials=lambda: Credentials("AKIAIOSFODNN7EXAMPLE", "secret-key-example"),
    )
    query = {"response-content-type": "image/png", "response-content-disposition": "inline"}

    def send() -> object:
        return signer.presign("GET", "images", "bench/a.png", expires_in=900, query=query)

    return send


def profile_misses(
    missed: list[dict[str, Any]], mongo_uri: str, s3: S3Endpoint, dataset: Dataset, log_path: Path
) -> dict[str, Any]:
    """Profile the request path behind each missed target (each path once).

    The broker's access log goes to ``log_path``, as gunicorn's goes to its log file.
    """
    singles = [
        ("GET", f"/images/{image_id}/signed-url", user, None) for user, image_id in dataset.singles
    ]
    batches = [("POST", "/images/signed-urls", user, {"ids": ids}) for user, ids in dataset.batches]
    listings = [("GET", "/images?limit=100&sign=1", user, None) for user, _ in dataset.batches]
    health = [("GET", "/healthz", "nobody", None)]
    wanted: dict[str, tuple[Callable[[], Request], int]] = {}

    def client(signer: str, requests: list[tuple[str, str, str, Any]]) -> Callable[[], Request]:
        return lambda: _client_requests(mongo_uri, s3, signer, requests)

    for target in missed:
        name = target["name"]
        if name.startswith("signer:"):
            wanted["presign (fast signer)"] = (_presign_request, 20000)
        elif "bare Flask" in name:
            # The ceiling itself, profiled the same way: what any Flask request costs.
            wanted["GET /bare (bare Flask)"] = (_bare_requests, 2000)
            wanted["GET /healthz"] = (client("fast", health), 2000)
            if name.startswith("GET signed-url"):
                wanted["GET /images/<id>/signed-url (fast)"] = (client("fast", singles), 2000)
        elif name.startswith("GET signed-url"):
            wanted["GET /images/<id>/signed-url (fast)"] = (client("fast", singles), 2000)
            wanted["GET /images/<id>/signed-url (boto3)"] = (client("boto3", singles), 1000)
        elif name.startswith("POST signed-urls"):
            wanted["POST /images/signed-urls, 100 ids (fast)"] = (client("fast", batches), 200)
        elif name.startswith("GET /images?") and "variant=thumb" in name:
            thumbs = [(m, path + "&variant=thumb", u, b) for m, path, u, b in listings]
            wanted["GET /images?limit=100&sign=1&variant=thumb (fast)"] = (
                client("fast", thumbs),
                100,
            )
        elif name.startswith("GET /images?"):
            wanted["GET /images?limit=100&sign=1 (fast)"] = (client("fast", listings), 100)
    with open(log_path, "w") as log, contextlib.redirect_stderr(log), broker_logs_to(log):
        return {name: profile_calls(make(), count) for name, (make, count) in wanted.items()}
