"""``make run``: the broker with embedded defaults, for trying it out and developing against.

Starts a MongoDB-wire server (secantusdb, a separate process, data under ``var/demo``) unless
``MONGODB_URI`` is set, and moto's S3 server in a thread unless ``BROKER_S3_ENDPOINT_URL`` is
set; generates a dev JWT secret; creates the bucket and applies ``s3-cors.json``; prints the
admin URL and an admin token. Everything embedded is ephemeral: each start begins empty.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

from broker import create_app
from broker.bucket_policy import apply_bucket_cors, apply_bucket_lifecycle
from broker.devservers import MongoServer, S3Server

STATE_DIR = Path(os.environ.get("BROKER_DEMO_DIR", "var/demo"))


def main() -> int:
    """Start the embedded services and serve the broker until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host = os.environ.get("BROKER_HOST", "127.0.0.1")
    port = int(os.environ.get("BROKER_PORT", "8000"))
    env = dict(os.environ)
    env.setdefault("BROKER_ENV", "demo")
    env.setdefault("BROKER_LOG_FORMAT", "text")
    env.setdefault("BROKER_JWT_SECRET", secrets.token_urlsafe(32))
    env.setdefault("BROKER_CORS_ORIGINS", f"http://localhost:{port},http://127.0.0.1:{port}")

    mongo: MongoServer | None = None
    s3: S3Server | None = None
    try:
        if not env.get("MONGODB_URI"):
            mongo = MongoServer(STATE_DIR / "mongo", log_path=STATE_DIR / "mongo.log")
            mongo.stop()
            mongo.wipe()  # ephemeral: the embedded S3 forgets its objects, so must the records
            mongo.start()
            env["MONGODB_URI"] = mongo.uri
        if not env.get("BROKER_S3_ENDPOINT_URL"):
            s3 = S3Server().start()
            env["BROKER_S3_ENDPOINT_URL"] = s3.endpoint_url
            env.setdefault("AWS_ACCESS_KEY_ID", "demo")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "demo")
            os.environ["AWS_ACCESS_KEY_ID"] = env["AWS_ACCESS_KEY_ID"]
            os.environ["AWS_SECRET_ACCESS_KEY"] = env["AWS_SECRET_ACCESS_KEY"]
        app = create_app(env)
        broker = app.extensions["broker"]
        broker.db.ensure_indexes()
        if s3 is not None:
            broker.bucket.ensure_bucket()
            broker.bucket.block_public_access()
            apply_bucket_cors(broker)
            apply_bucket_lifecycle(broker)
        with app.app_context():
            from broker.auth import create_token

            token = create_token("admin", admin=True, ttl=timedelta(hours=12))
        _announce(host, port, token, mongo, s3)
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if s3 is not None:
            s3.stop()
        if mongo is not None:
            mongo.stop()
    return 0


def _announce(
    host: str, port: int, token: str, mongo: MongoServer | None, s3: S3Server | None
) -> None:
    shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    base = f"http://{shown_host}:{port}"
    lines = [
        "",
        "Image broker (demo mode: embedded services, all state is ephemeral)",
        f"  API        {base}/images   (OpenAPI: {base}/openapi.json)",
        f"  Admin UI   {base}/admin/#token={token}",
        f"  MongoDB    {'embedded ' + mongo.uri if mongo else 'MONGODB_URI'}",
        f"  S3         {'embedded ' + s3.endpoint_url if s3 else 'BROKER_S3_ENDPOINT_URL'}",
        "  Dev admin token (valid 12 hours):",
        f"  {token}",
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
