"""``/healthz`` against ``/bare`` inside one gunicorn worker: where the broker's extra CPU goes.

``bench/profile_request.py`` profiles requests sent straight into the WSGI app: gunicorn's part
of a request (parsing, the WSGI environment, checking and sending the headers, closing) is not
in it. Here both answers are served by gunicorn as the benchmark serves them (same settings and
``gunicorn.conf.py``, but one sync worker) and :func:`measure` reports, for each:

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
  what they call), and the functions whose own time grows most from ``/bare`` to ``/healthz``.
  It counts the worker's CPU time, but the profiler's own cost lands in every call, so its µs
  only say how the cost shares out;
- the headers each answer carries on the wire (count and bytes of the response head).

``python -m bench.profile_worker`` runs it alone (a fresh test MongoDB; ``/healthz`` touches
neither it nor S3) and prints the report's section.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import marshal
import os
import signal
import socket
import subprocess
import sys
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
from bench.services import Gunicorn, broker_env
from tests.support import REPO
from tests.support.gunicorn import clean_environment
from tests.support.s3 import S3Endpoint

HOOKS = Path(__file__).with_name("gunicorn_profiling.py")
# Two connections per worker, as the benchmark's four for its two.
CONNECTIONS = 2
# (app, path) of each answer compared, as the benchmark serves them.
ANSWERS = {"bare": ("bench.bare_app:app", bare_app.PATH), "healthz": ("wsgi:app", "/healthz")}
TOP = 10
COMPONENTS = 5
GUNICORN = "gunicorn"
APP = "the app"

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
    """Serve ``/bare`` and ``/healthz`` from one sync worker each; their figures side by side."""
    work_dir.mkdir(parents=True, exist_ok=True)
    broker = broker_env(mongo_uri, "bench", s3, BROKER_SIGNER="fast")
    envs: dict[str, dict[str, str]] = {"bare": {}, "healthz": broker}
    profiles = {name: work_dir / f"worker-{name}.prof" for name in ANSWERS}
    servers = {}
    for name, (app, path) in ANSWERS.items():
        profiles[name].unlink(missing_ok=True)
        env = {
            **envs[name],
            "GUNICORN_CMD_ARGS": f"--config={HOOKS}",
            PROFILE_FILE: str(profiles[name]),
        }
        log_path = work_dir / f"gunicorn-worker-profile-{name}.log"
        servers[name] = Gunicorn(env, log_path, workers=1, app=app, ready_path=path)
    cpu: dict[str, list[float]] = {name: [] for name in ANSWERS}
    results: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "connections": CONNECTIONS}
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            stack.enter_context(server)
        results["heads"] = {
            name: response_head(servers[name].port, path) for name, (_, path) in ANSWERS.items()
        }
        for name, (_, path) in ANSWERS.items():
            run_wrk(servers[name].url, [WrkRequest("GET", path)], seconds=1, warmup_seconds=0)
        # Alternated, so a change in background load hits both alike.
        for round_number in range(1, rounds + 1):
            for name, (_, path) in ANSWERS.items():
                log(f"worker profile: CPU per request of {path}, round {round_number}/{rounds}")
                server = servers[name]
                before = server.cpu_seconds()
                load = run_wrk(
                    server.url,
                    [WrkRequest("GET", path)],
                    seconds=seconds,
                    warmup_seconds=0,
                    connections=CONNECTIONS,
                )
                cpu[name].append((server.cpu_seconds() - before) / load.requests * 1e6)
        stats = {}
        for name, (_, path) in ANSWERS.items():
            log(f"worker profile: cProfile of the worker serving {path}")
            stats[name] = _profile_worker(servers[name], path, profiles[name], seconds)
    log("worker profile: the same answers in-process")
    in_process = _in_process(broker, work_dir)
    for name in ANSWERS:
        results[name] = {
            "gunicorn_cpu_us": round(min(cpu[name]), 1),
            "gunicorn_cpu_us_rounds": [round(value, 1) for value in cpu[name]],
            "in_process_cpu_us": round(in_process[name], 1),
            "profile": summarise(stats[name]),
        }
    results["grows"] = growth(stats["bare"], stats["healthz"])
    return results


def response_head(port: int, path: str) -> dict[str, Any]:
    """The status line and headers one answer carries on the wire: count, bytes, names."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        received = b""
        # The sync worker closes the connection after each answer.
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return {
        "status": lines[0],
        "headers": len(lines) - 1,
        "head_bytes": len(head) + 4,
        "body_bytes": len(body),
        "names": [line.split(":", 1)[0] for line in lines[1:]],
    }


def _profile_worker(server: Gunicorn, path: str, out: Path, seconds: float) -> Stats:
    """Profile the server's one worker while wrk loads ``path``; the profile's raw stats."""
    assert server.process is not None
    workers = children_of(server.process.pid)
    if len(workers) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {workers}")
    os.kill(workers[0], signal.SIGUSR2)
    try:
        run_wrk(
            server.url,
            [WrkRequest("GET", path)],
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


def gunicorn_shares(stats: Stats) -> dict[Key, float]:
    """The share of each function's own time spent on gunicorn's side of the request.

    gunicorn's code (and the profiling hook) is gunicorn's; Flask, werkzeug, the broker and any
    other package are the app's. A stdlib or C function is on the side of its callers, in
    proportion to the own time each caller's calls took (solved by iterating, as calls may go
    round in cycles); one with no profiled caller runs from the worker's loop: gunicorn's.
    """
    shares: dict[Key, float] = {}
    callers: dict[Key, list[tuple[Key, float]]] = {}
    for key, entry in stats.items():
        filename, _line, function = key
        component = _component(filename, function)
        if component == "gunicorn" or filename == str(HOOKS):
            shares[key] = 1.0
        elif component == "builtins (C)" or component.startswith("stdlib:"):
            shares[key] = 1.0
            callers[key] = [
                (caller, own or calls * 1e-9)
                for caller, (calls, _primitive, own, _cumulative) in entry[4].items()
                if caller in stats and caller != key
            ]
        else:
            shares[key] = 0.0
    for _ in range(100):
        change = 0.0
        for key, weights in callers.items():
            total = sum(weight for _, weight in weights)
            if total:
                share = sum(weight * shares[caller] for caller, weight in weights) / total
                change, shares[key] = max(change, abs(share - shares[key])), share
        if change < 1e-6:
            break
    return shares


def summarise(stats: Stats) -> dict[str, Any]:
    """Per request: calls, profiled µs, each side's µs and components, the app call's µs."""
    requests = _requests(stats)
    per_request = 1e6 / requests
    shares = gunicorn_shares(stats)
    sides: dict[str, dict[str, float]] = {GUNICORN: defaultdict(float), APP: defaultdict(float)}
    app_call = start_response = 0.0
    for key, (_cc, _calls, own, cumulative, _callers) in stats.items():
        filename, _line, function = key
        component = _component(filename, function)
        sides[GUNICORN][component] += own * shares[key] * per_request
        sides[APP][component] += own * (1 - shares[key]) * per_request
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
        "components_us": {
            side: [
                (component, round(us, 1))
                for component, us in sorted(parts.items(), key=lambda item: -item[1])[:COMPONENTS]
            ]
            for side, parts in sides.items()
        },
        # The call-tree view: inside Flask's __call__, gunicorn's start_response included.
        "app_call_us": round(app_call, 1),
        "start_response_us": round(start_response, 1),
    }


def growth(bare: Stats, healthz: Stats) -> list[dict[str, Any]]:
    """The functions whose own µs per request grow most from ``bare`` to ``healthz``."""
    per_bare, per_healthz = 1e6 / _requests(bare), 1e6 / _requests(healthz)
    shares = {**gunicorn_shares(bare), **gunicorn_shares(healthz)}
    rows: list[dict[str, Any]] = []
    for key in set(bare) | set(healthz):
        _, calls_before, own_before, *_ = bare.get(key, (0, 0, 0.0, 0.0, {}))
        _, calls_after, own_after, *_ = healthz.get(key, (0, 0, 0.0, 0.0, {}))
        share = shares[key]
        rows.append(
            {
                "function": _label(key),
                "side": GUNICORN if share >= 0.5 else APP,
                "us_more": round(own_after * per_healthz - own_before * per_bare, 1),
                "calls": [
                    round(calls_before * per_bare / 1e6, 2),
                    round(calls_after * per_healthz / 1e6, 2),
                ],
            }
        )
    rows.sort(key=lambda row: -row["us_more"])
    return rows[:TOP]


def _in_process(broker: dict[str, str], work_dir: Path) -> dict[str, float]:
    """CPU µs per request of each answer in-process, in a child set up as a gunicorn worker."""
    with tempfile.TemporaryDirectory(prefix="bench-worker-profile-") as metrics:
        env = {**clean_environment(), "PROMETHEUS_MULTIPROC_DIR": metrics, **broker}
        with open(work_dir / "worker-profile-in-process.log", "wb") as log:
            done = subprocess.run(
                [sys.executable, "-m", "bench.profile_worker", "--in-process"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                check=True,
                timeout=300,
            )
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def in_process_child(rounds: int = 5, count: int = 2000) -> dict[str, float]:
    """(In the child.) CPU µs per request of ``/bare`` and ``/healthz``, best of ``rounds``."""
    from werkzeug.test import EnvironBuilder

    from bench.profile_request import _wsgi_sender

    # What gunicorn loads: the broker from the environment (stdout carries the figures only).
    with contextlib.redirect_stdout(io.StringIO()):
        wsgi = importlib.import_module("wsgi")
    senders = {
        name: _wsgi_sender(app, [(EnvironBuilder(path=path).get_environ(), b"")])
        for name, app, path in (
            ("bare", bare_app.app, bare_app.PATH),
            ("healthz", wsgi.app, "/healthz"),
        )
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
        print(json.dumps(in_process_child()))
        return
    from bench.report import worker_profile_lines
    from bench.services import mongo_server

    work_dir = REPO / "var" / "bench"
    # /healthz reaches neither S3 nor MongoDB: an S3 endpoint nobody listens on will do.
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
