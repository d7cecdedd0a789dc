"""``make run``: the broker with embedded defaults, for trying it out and developing against.

Starts a MongoDB-wire server (secantusdb, a separate process, data under ``BROKER_DEMO_DIR``)
unless ``MONGODB_URI`` is set, and moto's S3 server in a thread unless ``BROKER_S3_ENDPOINT_URL``
is set; generates a dev JWT secret; creates the bucket and applies ``s3-cors.json``; serves the
broker; seeds a sample library through the API (``BROKER_DEMO_SEED``: on by default with the
embedded MongoDB, off with one's own); prints the admin link, tokens for an admin, two users and
a reader, and a curl line to start from. Everything embedded is ephemeral: each start begins
empty.

Stopping is one path whatever stops it. SIGINT (Ctrl-C), SIGTERM (process managers, IDEs,
containers, ``timeout``) and SIGHUP (the terminal closed) are only recorded when they arrive, so
none of them can cut a start-up in half (a child started but not yet known); the main thread
then unwinds one stack holding a stop for everything the demo started, in reverse order of
starting: the seeder, the variant worker (``flask worker``, a process of its own, as in
production), the HTTP server (its port freed), S3, MongoDB (its process ended). The exit code
is 0 after a stop signal, 1 when something could not start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from broker import create_app
from broker.auth import create_token
from broker.bucket_policy import setup_bucket
from broker.devservers import MongoServer, S3Server, stop_process
from broker.extension import current_broker
from broker.observability import TextFormatter
from broker.samples import HTTP_TIMEOUT_S, SAMPLES, SeedError, seed
from broker.stopping import StopSignals

log = logging.getLogger("broker.demo")

TOKEN_TTL = timedelta(hours=12)
# The banner waits this long at most for the sample library, so it is printed after the
# seeding's log lines (and stays on screen) without ever holding it up for long.
SEED_WAIT_S = 3.0
# Who gets a token: the name (the token's sub) and its roles.
IDENTITIES: dict[str, list[str]] = {
    "admin": ["admin"],
    "alice": [],
    "bob": [],
    "reader": ["reader"],
}


class Seeder(threading.Thread):
    """Uploads the sample library through the running API, in the background."""

    def __init__(self, api_url: str, tokens: Mapping[str, str]) -> None:
        super().__init__(name="demo-seed", daemon=True)
        self.api_url = api_url
        self.tokens = tokens
        self.stopping = threading.Event()
        self.outcome = "seeding"

    def run(self) -> None:
        """Seed, and log what happened: a failure never stops the demo."""
        try:
            images = seed(self.api_url, self.tokens, self.stopping)
        except SeedError as e:
            self.outcome = "failed"
            log.error("sample library not seeded: %s", e)
        except Exception:  # the demo goes on without samples, whatever went wrong
            self.outcome = "failed"
            log.exception("sample library not seeded")
        else:
            self.outcome = "stopped" if self.stopping.is_set() else "seeded"
            log.info("sample library: %d images uploaded for %s", len(images), _owners())

    def stop(self) -> None:
        """Stop after the current upload (each HTTP call is bounded by its timeout)."""
        self.stopping.set()
        self.join(timeout=4 * HTTP_TIMEOUT_S)


@dataclass
class Demo:
    """What the demo started, as the banner tells it."""

    base_url: str
    tokens: dict[str, str]
    mongo: MongoServer | None
    s3: S3Server | None
    seeder: Seeder | None
    worker: subprocess.Popen[bytes] | None = None


def main() -> int:
    """Start the embedded services and serve the broker until a stop signal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the broker logs each request
    with StopSignals() as signals, contextlib.ExitStack() as running:
        try:
            demo = start(dict(os.environ), running)
        except (OSError, RuntimeError, ValueError) as e:
            log.error("the demo could not start: %s", e)
            return 1
        if demo.seeder is not None:
            demo.seeder.join(timeout=SEED_WAIT_S)
        if signals.received is None:
            print(banner(demo), flush=True)
        log.info("%s received: stopping", signals.wait())
    log.info("stopped; every process and port the demo started is released")
    return 0


def start(env: dict[str, str], running: contextlib.ExitStack) -> Demo:
    """Start everything, pushing a stop for each part onto ``running`` as it starts."""
    host = env.get("BROKER_HOST", "127.0.0.1")
    port = int(env.get("BROKER_PORT", "8000"))
    # Samples go into the fresh embedded library; a database of one's own gets none unasked.
    seeding = env.get("BROKER_DEMO_SEED", "").strip() or ("0" if env.get("MONGODB_URI") else "1")
    if seeding not in ("0", "1"):
        raise ValueError(f"BROKER_DEMO_SEED must be 1 (seed sample images) or 0, not {seeding!r}")
    env.setdefault("BROKER_ENV", "demo")
    env.setdefault("BROKER_LOG_FORMAT", "text")
    env.setdefault("BROKER_JWT_SECRET", secrets.token_urlsafe(32))
    env.setdefault("BROKER_CORS_ORIGINS", f"http://localhost:{port},http://127.0.0.1:{port}")

    log.info("starting the embedded services and the broker on port %d", port)
    mongo = None if env.get("MONGODB_URI") else start_mongo(env, running)
    s3 = None if env.get("BROKER_S3_ENDPOINT_URL") else start_s3(env, running)
    app = create_app(env)
    with app.app_context():
        broker = current_broker()
    running.callback(broker.db.client.close)
    if s3 is not None:
        broker.bucket.ensure_bucket()
        # moto applies a policy's Deny whatever its condition: the copy-refusing one would
        # refuse every upload.
        setup_bucket(broker.bucket, broker.settings, copy_policy=False)
    with app.app_context():
        tokens = {
            name: create_token(name, roles=roles, ttl=TOKEN_TTL)
            for name, roles in IDENTITIES.items()
        }
    serve(app, host, port, running)
    worker = start_worker(env, running) if broker.settings.variants else None
    seeder = None
    if seeding == "1":
        seeder = Seeder(f"http://{_loopback(host)}:{port}", tokens)
        seeder.start()
        running.callback(seeder.stop)
    return Demo(_public_url(host, port), tokens, mongo, s3, seeder, worker)


def start_mongo(env: dict[str, str], running: contextlib.ExitStack) -> MongoServer:
    """A fresh embedded MongoDB process under ``BROKER_DEMO_DIR``; sets ``MONGODB_URI``."""
    state_dir = Path(env.get("BROKER_DEMO_DIR", "var/demo"))
    mongo = MongoServer(state_dir / "mongo", log_path=state_dir / "mongo.log")
    mongo.wipe()  # ephemeral: the embedded S3 forgets its objects, so must the records
    running.callback(mongo.stop)  # pushed first: a start that fails half-way is stopped too
    mongo.start()
    env["MONGODB_URI"] = mongo.uri
    return mongo


def start_s3(env: dict[str, str], running: contextlib.ExitStack) -> S3Server:
    """moto's S3 server in a thread; sets ``BROKER_S3_ENDPOINT_URL`` and demo credentials."""
    s3 = S3Server().start()
    running.callback(s3.stop)
    env["BROKER_S3_ENDPOINT_URL"] = s3.endpoint_url
    env.setdefault("AWS_ACCESS_KEY_ID", "demo")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
    os.environ["AWS_ACCESS_KEY_ID"] = env["AWS_ACCESS_KEY_ID"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = env["AWS_SECRET_ACCESS_KEY"]
    return s3


def start_worker(env: dict[str, str], running: contextlib.ExitStack) -> subprocess.Popen[bytes]:
    """One variant worker, ``flask worker`` as production runs it, logging to the demo's stderr.

    Stopped with SIGTERM (it finishes or puts back its job), killed if it has not ended in ten
    seconds; its render process dies with it.
    """
    worker = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "broker:create_app", "worker"],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    running.callback(stop_process, worker)
    return worker


def serve(app: Flask, host: str, port: int, running: contextlib.ExitStack) -> BaseWSGIServer:
    """Serve ``app`` from a thread until the stack unwinds, which also frees the port."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="broker-http", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join()
        server.server_close()

    running.callback(stop)
    return server


def banner(demo: Demo) -> str:
    """What a newcomer needs first, aligned in two columns."""
    base, tokens = demo.base_url, demo.tokens
    library = {
        None: "no sample images (BROKER_DEMO_SEED=1 adds them)",
        "seeding": f"seeding {len(SAMPLES)} sample images for {_owners()}...",
        "seeded": f"{len(SAMPLES)} sample images of {_owners()} (BROKER_DEMO_SEED=0: start empty)",
        "stopped": "seeding stopped",
        "failed": "empty: seeding failed (see the log above)",
    }[demo.seeder.outcome if demo.seeder else None]
    rows = [
        ("Admin UI", f"{base}/admin/#token={tokens['admin']}"),
        ("API", f"{base}/images   (OpenAPI: {base}/openapi.json)"),
        ("MongoDB", f"embedded {demo.mongo.uri}" if demo.mongo else "MONGODB_URI"),
        ("S3", f"embedded {demo.s3.endpoint_url}" if demo.s3 else "BROKER_S3_ENDPOINT_URL"),
        ("Library", library),
        ("Worker", _worker_row(demo)),
        ("Logs", "one line per request: GET /images 200 3.1 ms user=alice rid=..."),
        ("Stop", "Ctrl-C or SIGTERM: ends MongoDB and S3 too and frees every port"),
    ]
    lines = ["", "Image broker, demo mode (embedded services; nothing is kept after exit)", ""]
    lines += [f"  {label:<10} {value}" for label, value in rows]
    lines += ["", f"  Tokens (valid {TOKEN_TTL.total_seconds() / 3600:g} hours):"]
    for name, roles in IDENTITIES.items():
        role_text = f"roles: {', '.join(roles)}" if roles else "user"
        lines.append(f"    {name:<8} {role_text:<14} {tokens[name]}")
    lines += [
        "",
        "  List alice's images:",
        f'    curl -H "Authorization: Bearer {tokens["alice"]}" {base}/images',
        "",
    ]
    return "\n".join(lines)


def _worker_row(demo: Demo) -> str:
    if demo.worker is None:
        return "none: variants are off (BROKER_VARIANTS is empty)"
    return f"one variant worker (pid {demo.worker.pid}): thumbnails appear as it makes them"


def _owners() -> str:
    return " and ".join(dict.fromkeys(sample.owner for sample in SAMPLES))


def _loopback(host: str) -> str:
    # The seeder calls the server over loopback whatever address it listens on.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _public_url(host: str, port: int) -> str:
    shown = "localhost" if host in ("", "127.0.0.1", "0.0.0.0") else _loopback(host)
    return f"http://{shown}:{port}"


if __name__ == "__main__":
    sys.exit(main())
