"""The production entry point: ``gunicorn wsgi:app`` configured from the environment only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from broker.devservers import MongoServer, S3Server, free_port
from tests.helpers import JWT_SECRET, auth

ROOT = Path(__file__).resolve().parents[2]


def production_env(mongo_server: MongoServer, s3_server: S3Server, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROKER_", "AWS_", "MONGODB_"))}
    env.update(
        MONGODB_URI=mongo_server.uri,
        BROKER_MONGODB_DB="wsgi_test",
        BROKER_JWT_SECRET=JWT_SECRET,
        BROKER_S3_ENDPOINT_URL=s3_server.endpoint_url,
        BROKER_S3_BUCKET="wsgi-test",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    env.update(extra)
    return env


def gunicorn(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_gunicorn_serves_the_api_from_environment_variables(
    mongo_server: Any, s3_server: Any
) -> None:
    env = production_env(mongo_server, s3_server)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ensure-indexes"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = gunicorn(env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(f"{base}/healthz", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                # Workers still booting: the socket is open before the app is imported.
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert health.status_code == 200
        listed = requests.get(f"{base}/images", headers=auth(), timeout=5)
        assert listed.status_code == 200 and listed.json() == {"images": [], "next_cursor": None}
        assert requests.get(f"{base}/images", timeout=5).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout:
            server.stdout.close()


def test_refuses_to_start_without_a_way_to_verify_tokens(mongo_server: Any, s3_server: Any) -> None:
    env = production_env(mongo_server, s3_server)
    del env["BROKER_JWT_SECRET"]
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert result.returncode != 0
    assert b"BROKER_JWT_SECRET" in result.stderr and b"refuses to start" in result.stderr
