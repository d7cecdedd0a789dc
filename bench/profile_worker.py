"""``/bare``, ``/healthz`` and a signed URL inside one gunicorn worker: where the extra CPU goes.

``bench/profile_request.py`` profiles requests sent straight into the WSGI app: gunicorn's part
of a request (parsing, the WSGI environment, checking and sending the headers, closing) is not
in it. Here four answers are served by gunicorn as the benchmark serves them (same settings and
``gunicorn.conf.py``, but one sync worker each): the bare Flask route, ``/healthz``, ``GET
/images/<id>/signed-url`` (the fast signer, no rate limit: what the shared counters cost is the
database's, which ``bench/dbcost.py`` shows; 100 users of a small database of its own asking
for their own image in turn) and the bare app's route of the signed URL's shape (the same
callers, tokens and ids; an answer as long, none of the work). :func:`measure` reports, for
each:

- unprofiled CPU per request: the master's and the worker's CPU time over a wrk run divided by
  the requests wrk counted (best of ``rounds``), and the same answer in-process (requests
  straight into the WSGI app, in a process of its own set up as gunicorn's workers are: metrics
  in multiprocess mode, the access log to a file). The difference between the two is what
  gunicorn spends around the app; the gap between the paths splits into "the app: Y µs more"
  and "gunicorn: X µs more" from these figures alone;
- a cProfile of the worker under wrk (switched on and off by ``bench/gunicorn_profiling.py``,
  so only the loaded seconds are in it), per request (the calls of Flask's ``__call__``):
  function calls, profiled µs, own time by component on each side (gunicorn: its own code and
  the stdlib and C functions it calls; the app: Flask, werkzeug, the broker, their libraries and
  what they call), the app's side by what it is for (:data:`PURPOSES`), and the functions whose
  own time grows most from ``/bare`` to ``/healthz`` and from ``/healthz`` to the signed URL.
  It counts the worker's CPU time, but the profiler's own cost lands in every call, so its µs
  only say how the cost shares out;
- the headers each answer carries on the wire (count and bytes of the response head, and the
  bytes of the request head: the signed URL's carries a bearer token).

``python -m bench.profile_worker`` runs it alone (a fresh test MongoDB; ``/healthz`` touches
neither it nor S3, and signing needs no S3: an endpoint nobody listens on will do) and prints
the report's section.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import io
import json
import marshal
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bare_app
from bench.gunicorn_profiling import PROFILE_FILE
from bench.load import WrkRequest, children_of, run_wrk
from bench.profile_request import _component, _label
from bench.services import (
    Gunicorn,
    broker_env,
    seed_dataset,
    signed_url_requests,
)
from tests.support import REPO
from tests.support.gunicorn import clean_environment
from tests.support.s3 import S3Endpoint

HOOKS = Path(__file__).with_name("gunicorn_profiling.py")
# Two connections per worker, as the benchmark's four for its two.
CONNECTIONS = 2
# (app, path answering 200 once it is up) of each answer compared, as the benchmark serves them.
ANSWERS = {
    "bare": ("bench.bare_app:app", bare_app.PATH),
    "healthz": ("wsgi:app", "/healthz"),
    "signed_url": ("wsgi:app", "/healthz"),
    "bare_shaped": ("bench.bare_app:shaped_app", bare_app.PATH),
}
# The signed URL's callers: one image each, asked for in turn (as the benchmark's signed-url
# runs), in a database of their own so that its size is theirs alone.
SIGNED_URL_USERS = 100
SIGNED_URL_DATABASE = "bench_worker_profile"
TOP = 10
COMPONENTS = 5
GUNICORN = "gunicorn"
APP = "the app"
# What the app's side of a request is for: the modules whose own time is each purpose's (dotted
# names; a class of the broker after its module, as broker.caches.TokenCache), the first
# purpose naming a module wins. The broker's other modules are "the rest". The stdlib, C
# functions and libraries named nowhere here (cachetools, logging, hmac, ...) work for their
# callers: their time goes to their callers' purposes in proportion to the own time of each
# caller's calls (as gunicorn_shares splits them between gunicorn and the app).
PURPOSES = {
    "authentication": ("broker.auth", "broker.caches.TokenCache", "flask_jwt_extended", "jwt"),
    "the image lookup": ("broker.caches.LookupCache", "broker.db", "pymongo", "bson"),
    "signing": ("broker.signing", "broker.images.downloads", "broker.caches.SignedUrlMemo"),
    "the answer": ("broker.schemas", "broker.http.payloads", "json", "marshmallow"),
    "logs and metrics": ("broker.observability", "broker.metrics", "prometheus_client"),
    "the framework": ("flask", "werkzeug", "blinker"),
}
REST = "the rest"
PURPOSE_COMPONENTS = 4

Key = tuple[str, int, str]
Stats = dict[Key, tuple[int, int, float, float, dict[Key, tuple[int, int, float, float]]]]
Log = Callable[[str], None]


def measure(
    mongo_uri: str,
    s3: S3Endpoint,
    work_dir: Path,
    *,
    seconds: float = 5.0,
    rounds: int = 3,
    log: Log = lambda message: None,
) -> dict[str, Any]:
    """Serve ``/bare``, ``/healthz``, the signed URL and the bare route of its shape from one
    sync worker each; their figures side by side."""
    work_dir.mkdir(parents=True, exist_ok=True)
    broker = broker_env(mongo_uri, "bench", s3, BROKER_SIGNER="fast")
    unlimited = broker_env(
        mongo_uri, SIGNED_URL_DATABASE, s3, BROKER_SIGNER="fast", BROKER_RATE_LIMIT_SIGN=""
    )
    dataset = seed_dataset(
        mongo_uri, SIGNED_URL_DATABASE, single_users=SIGNED_URL_USERS, batch_users=0
    )
    envs: dict[str, dict[str, str]] = {
        "bare": {},
        "healthz": broker,
        "signed_url": unlimited,
        "bare_shaped": {},
    }
    requests = {
        "bare": [WrkRequest("GET", bare_app.PATH)],
        "healthz": [WrkRequest("GET", "/healthz")],
        "signed_url": signed_url_requests(dataset),
        # The same callers and ids, to the bare route of the signed URL's shape.
        "bare_shaped": signed_url_requests(dataset, bare_app.shaped_path),
    }
    profiles = {name: work_dir / f"worker-{name}.prof" for name in ANSWERS}
    servers = {}
    for name, (app, ready_path) in ANSWERS.items():
        profiles[name].unlink(missing_ok=True)
        env = {
            **envs[name],
            "GUNICORN_CMD_ARGS": f"--config={HOOKS}",
            PROFILE_FILE: str(profiles[name]),
        }
        log_path = work_dir / f"gunicorn-worker-profile-{name}.log"
        servers[name] = Gunicorn(env, log_path, workers=1, app=app, ready_path=ready_path)
    cpu: dict[str, list[float]] = {name: [] for name in ANSWERS}
    results: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "connections": CONNECTIONS}
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        results["heads"] = {
            name: response_head(servers[name].port, requests[name][0]) for name in ANSWERS
        }
        for name in ANSWERS:
            run_wrk(servers[name].url, requests[name], seconds=1, warmup_seconds=0)
        # Alternated, so a change in background load hits each alike.
        for round_number in range(1, rounds + 1):
            for name in ANSWERS:
                log(f"worker profile: CPU per request of {name}, round {round_number}/{rounds}")
                server = servers[name]
                before = server.cpu_seconds()
                load = run_wrk(
                    server.url,
                    requests[name],
                    seconds=seconds,
                    warmup_seconds=0,
                    connections=CONNECTIONS,
                )
                if load.errors.get("status"):  # a benchmark of errors is void
                    raise RuntimeError(f"worker profile: {name} answered errors: {load.errors}")
                cpu[name].append((server.cpu_seconds() - before) / load.requests * 1e6)
        stats = {}
        for name in ANSWERS:
            log(f"worker profile: cProfile of the worker serving {name}")
            stats[name] = _profile_worker(servers[name], requests[name], profiles[name], seconds)
    log("worker profile: the same answers in-process")

    def path_and_user(name: str) -> list[list[str]]:
        return [
            [request.path, user]
            for request, (user, _) in zip(requests[name], dataset.singles, strict=True)
        ]

    signed = {
        "env": unlimited,
        "requests": path_and_user("signed_url"),
        "shaped": path_and_user("bare_shaped"),
    }
    in_process = _in_process(broker, signed, work_dir)
    for name in ANSWERS:
        results[name] = {
            "gunicorn_cpu_us": round(min(cpu[name]), 1),
            "gunicorn_cpu_us_rounds": [round(value, 1) for value in cpu[name]],
            "in_process_cpu_us": round(in_process[name], 1),
            "profile": summarise(stats[name]),
        }
    results["signed_url"]["users"] = len(dataset.singles)
    results["grows"] = growth(stats["bare"], stats["healthz"])
    results["grows_signed_url"] = growth(stats["healthz"], stats["signed_url"])
    return results


def response_head(port: int, request: WrkRequest) -> dict[str, Any]:
    """The status line and headers one answer carries on the wire: count, bytes, names; and the
    bytes of the request's head."""
    authorization = f"Authorization: Bearer {request.token}\r\n" if request.token else ""
    sent = (
        f"{request.method} {request.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(sent)
        received = b""
        # The sync worker closes the connection after each answer.
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].split(" ")[1:2] == ["200"]:
        raise RuntimeError(f"worker profile: {request.path} answered {lines[0]}")
    return {
        "status": lines[0],
        "headers": len(lines) - 1,
        "head_bytes": len(head) + 4,
        "body_bytes": len(body),
        "names": [line.split(":", 1)[0] for line in lines[1:]],
        "request_head_bytes": len(sent),
    }


def _profile_worker(
    server: Gunicorn, requests: list[WrkRequest], out: Path, seconds: float
) -> Stats:
    """Profile the server's one worker while wrk loads it with ``requests``; the profile's raw
    stats."""
    assert server.process is not None
    workers = children_of(server.process.pid)
    if len(workers) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {workers}")
    os.kill(workers[0], signal.SIGUSR2)
    try:
        run_wrk(
            server.url,
            requests,
            seconds=seconds,
            warmup_seconds=0,
            connections=CONNECTIONS,
        )
    finally:
        os.kill(workers[0], signal.SIGUSR2)
    deadline = time.monotonic() + 30
    while not out.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker wrote no profile to {out}")
        time.sleep(0.05)
    stats: Stats = marshal.loads(out.read_bytes())
    return stats


def _requests(stats: Stats) -> int:
    """Requests in a profile: the calls of Flask's WSGI entry point."""
    calls = [
        entry[1]
        for (filename, _line, function), entry in stats.items()
        if filename.replace("\\", "/").endswith("flask/app.py") and function == "__call__"
    ]
    if not calls or not calls[0]:
        raise RuntimeError("the profile holds no call of Flask.__call__")
    return calls[0]


def _shares(stats: Stats, label: Callable[[Key], tuple[str, bool]]) -> dict[Key, dict[str, float]]:
    """Each function's own time shared out between labels.

    ``label`` gives a function's label and whether it works for its callers instead: such a
    function is on its callers' labels, in proportion to the own time each caller's calls took
    (solved by iterating, as calls may go round in cycles); one with no profiled caller keeps
    its own label.
    """
    shares: dict[Key, dict[str, float]] = {}
    callers: dict[Key, list[tuple[Key, float]]] = {}
    for key, entry in stats.items():
        own_label, for_callers = label(key)
        shares[key] = {own_label: 1.0}
        if for_callers:
            callers[key] = [
                (caller, own or calls * 1e-9)
                for caller, (calls, _primitive, own, _cumulative) in entry[4].items()
                if caller in stats and caller != key
            ]
    for _ in range(100):
        change = 0.0
        for key, weights in callers.items():
            total = sum(weight for _, weight in weights)
            if total:
                mixed: dict[str, float] = defaultdict(float)
                for caller, weight in weights:
                    for name, share in shares[caller].items():
                        mixed[name] += weight * share / total
                before = shares[key]
                for name in mixed.keys() | before.keys():
                    change = max(change, abs(mixed.get(name, 0.0) - before.get(name, 0.0)))
                shares[key] = dict(mixed)
        if change < 1e-6:
            break
    return shares


def _side(key: Key) -> tuple[str, bool]:
    """gunicorn's code (and the profiling hook) is gunicorn's; the stdlib and C functions work
    for their callers (from the worker's loop: gunicorn's); anything else is the app's."""
    filename, _line, function = key
    component = _component(filename, function)
    if component == "gunicorn" or filename == str(HOOKS):
        return GUNICORN, False
    if component == "builtins (C)" or component.startswith("stdlib:"):
        return GUNICORN, True
    return APP, False


def gunicorn_shares(stats: Stats) -> dict[Key, float]:
    """The share of each function's own time spent on gunicorn's side of the request.

    gunicorn's code (and the profiling hook) is gunicorn's; Flask, werkzeug, the broker and any
    other package are the app's. A stdlib or C function is on the side of its callers, in
    proportion to the own time each caller's calls took; one with no profiled caller runs from
    the worker's loop: gunicorn's.
    """
    return {key: shares.get(GUNICORN, 0.0) for key, shares in _shares(stats, _side).items()}


_STDLIB = sysconfig.get_paths()["stdlib"].rstrip("/") + "/"


def _module(filename: str) -> str:
    """The dotted module of a profiled file (``flask.app``, ``broker.images.downloads``,
    ``json.encoder``); empty for C functions."""
    if filename.startswith("~") or filename == "<built-in>":
        return ""
    path = filename.replace("\\", "/")
    if path.startswith(_STDLIB):
        return path[len(_STDLIB) :].removesuffix(".py").replace("/", ".")
    parts = path.removesuffix(".py").split("/")
    if "site-packages" in parts:
        return ".".join(parts[parts.index("site-packages") + 1 :])
    if "broker" in parts:
        return ".".join(parts[len(parts) - 1 - parts[::-1].index("broker") :])
    return parts[-1]


@functools.cache
def _classes(filename: str) -> tuple[tuple[int, int, str], ...]:
    """(first line, last line, name) of each top-level class of a source file."""
    try:
        tree = ast.parse(Path(filename).read_text())
    except (OSError, SyntaxError, ValueError):
        return ()
    return tuple(
        (node.lineno, node.end_lineno or node.lineno, node.name)
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    )


def _qualified(key: Key) -> str:
    """A function's module, and for the broker's its class too (``broker.caches.TokenCache``)."""
    filename, line, _function = key
    module = _module(filename)
    if module.startswith("broker."):
        for first, last, name in _classes(filename):
            if first <= line <= last:
                return f"{module}.{name}"
    return module


def _purpose(key: Key) -> tuple[str, bool]:
    """What a function's own time is for (:data:`PURPOSES`), or that it works for its callers."""
    filename, _line, function = key
    component = _component(filename, function)
    if component == "gunicorn" or filename == str(HOOKS):
        return GUNICORN, False
    name = _qualified(key)
    for purpose, modules in PURPOSES.items():
        if any(name == module or name.startswith(module + ".") for module in modules):
            return purpose, False
    if component.startswith("broker") or component == "bench":
        return REST, False
    if component == "builtins (C)" or component.startswith("stdlib:"):
        return GUNICORN, True
    return REST, True


def summarise(stats: Stats) -> dict[str, Any]:
    """Per request: calls, profiled µs, each side's µs and components, the app call's µs, and
    the app's side by purpose (µs and its largest components)."""
    requests = _requests(stats)
    per_request = 1e6 / requests
    shares = gunicorn_shares(stats)
    purposes = _shares(stats, _purpose)
    sides: dict[str, dict[str, float]] = {GUNICORN: defaultdict(float), APP: defaultdict(float)}
    by_purpose: dict[str, dict[str, float]] = {name: defaultdict(float) for name in PURPOSES}
    by_purpose[REST] = defaultdict(float)
    app_call = start_response = 0.0
    for key, (_cc, _calls, own, cumulative, _callers) in stats.items():
        filename, _line, function = key
        component = _component(filename, function)
        sides[GUNICORN][component] += own * shares[key] * per_request
        sides[APP][component] += own * (1 - shares[key]) * per_request
        for purpose, share in purposes[key].items():
            if purpose != GUNICORN:
                by_purpose[purpose][component] += own * share * per_request
        where = filename.replace("\\", "/")
        if where.endswith("flask/app.py") and function == "__call__":
            app_call = cumulative * per_request
        elif where.endswith("gunicorn/http/wsgi.py") and function == "start_response":
            start_response = cumulative * per_request
    return {
        "requests": requests,
        "calls": round(sum(entry[1] for entry in stats.values()) / requests, 1),
        "profiled_us": round(sum(entry[2] for entry in stats.values()) * per_request, 1),
        "sides_us": {side: round(sum(parts.values()), 1) for side, parts in sides.items()},
        "components_us": {side: _largest(parts, COMPONENTS) for side, parts in sides.items()},
        # The call-tree view: inside Flask's __call__, gunicorn's start_response included.
        "app_call_us": round(app_call, 1),
        "start_response_us": round(start_response, 1),
        "purposes_us": {
            purpose: {
                "us": round(sum(parts.values()), 1),
                "components": _largest(parts, PURPOSE_COMPONENTS),
            }
            for purpose, parts in by_purpose.items()
        },
    }


def _largest(parts: dict[str, float], count: int) -> list[tuple[str, float]]:
    """The ``count`` largest (component, µs) of ``parts``, largest first."""
    return [
        (component, round(us, 1))
        for component, us in sorted(parts.items(), key=lambda item: -item[1])[:count]
    ]


def growth(before: Stats, after: Stats) -> list[dict[str, Any]]:
    """The functions whose own µs per request grow most from ``before`` (``/bare``, say) to
    ``after`` (``/healthz``)."""
    per_before, per_after = 1e6 / _requests(before), 1e6 / _requests(after)
    shares = {**gunicorn_shares(before), **gunicorn_shares(after)}
    rows: list[dict[str, Any]] = []
    for key in set(before) | set(after):
        _, calls_before, own_before, *_ = before.get(key, (0, 0, 0.0, 0.0, {}))
        _, calls_after, own_after, *_ = after.get(key, (0, 0, 0.0, 0.0, {}))
        share = shares[key]
        rows.append(
            {
                "function": _label(key),
                "side": GUNICORN if share >= 0.5 else APP,
                "us_more": round(own_after * per_after - own_before * per_before, 1),
                "calls": [
                    round(calls_before * per_before / 1e6, 2),
                    round(calls_after * per_after / 1e6, 2),
                ],
            }
        )
    rows.sort(key=lambda row: -row["us_more"])
    return rows[:TOP]


def _in_process(
    broker: dict[str, str], signed_url: dict[str, Any], work_dir: Path
) -> dict[str, float]:
    """CPU µs per request of each answer in-process, in a child set up as a gunicorn worker.

    ``signed_url`` is the signed URL's broker (``env``) and its ``requests`` (path, user): the
    child reads them on its standard input, as its standard output carries the figures only.
    """
    with tempfile.TemporaryDirectory(prefix="bench-worker-profile-") as metrics:
        env = {**clean_environment(), "PROMETHEUS_MULTIPROC_DIR": metrics, **broker}
        with open(work_dir / "worker-profile-in-process.log", "wb") as log:
            done = subprocess.run(
                [sys.executable, "-m", "bench.profile_worker", "--in-process"],
                cwd=REPO,
                env=env,
                input=json.dumps(signed_url).encode(),
                stdout=subprocess.PIPE,
                stderr=log,
                check=True,
                timeout=300,
            )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def in_process_child(
    signed_url: dict[str, Any], rounds: int = 5, count: int = 2000
) -> dict[str, float]:
    """(In the child.) CPU µs per request of ``/bare``, ``/healthz``, the signed URL (its
    broker and ``requests`` in ``signed_url``) and the bare route of its shape (its
    ``shaped`` requests), best of ``rounds``."""
    from werkzeug.test import EnvironBuilder

    from bench.profile_request import _prepared, _wsgi_sender
    from broker import create_app

    # What gunicorn loads: the broker from the environment (stdout carries the figures only);
    # the signed URL's broker differs from it by its rate limit alone.
    with contextlib.redirect_stdout(io.StringIO()):
        wsgi = importlib.import_module("wsgi")
        signing = create_app(signed_url["env"])

    def prepared(key: str) -> list[tuple[dict[str, Any], bytes]]:
        return _prepared([("GET", path, user, None) for path, user in signed_url[key]])

    senders = {
        **{
            name: _wsgi_sender(app, [(EnvironBuilder(path=path).get_environ(), b"")])
            for name, app, path in (
                ("bare", bare_app.app, bare_app.PATH),
                ("healthz", wsgi.app, "/healthz"),
            )
        },
        "signed_url": _wsgi_sender(signing, prepared("requests")),
        "bare_shaped": _wsgi_sender(bare_app.shaped_app, prepared("shaped")),
    }
    best = {name: float("inf") for name in senders}
    for round_number in range(rounds + 1):
        for name, send in senders.items():
            started = time.process_time()
            for _ in range(count):
                send()
            if round_number:  # the first round warms up
                us = (time.process_time() - started) / count * 1e6
                best[name] = min(best[name], us)
    return best


def main() -> None:
    """Measure on a fresh test MongoDB and print the report's section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="unprofiled wrk runs per answer")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        print(json.dumps(in_process_child(json.load(sys.stdin))))
        return
    from bench.report import worker_profile_lines
    from bench.services import mongo_server

    work_dir = REPO / "var" / "bench"
    # /healthz reaches neither S3 nor MongoDB, and signing needs no S3: an S3 endpoint nobody
    # listens on will do.
    s3 = S3Endpoint("http://127.0.0.1:9", "bench-access-key", "bench-secret-key")
    with mongo_server(work_dir / "mongo-worker-profile") as mongo:
        figures = measure(
            mongo.uri,
            s3,
            work_dir,
            seconds=args.seconds,
            rounds=args.rounds,
            log=lambda message: print(message, file=sys.stderr, flush=True),
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print("\n".join(worker_profile_lines(figures)))


if __name__ == "__main__":
    main()
