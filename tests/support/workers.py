"""Helpers for the variant worker's tests: upload through the one flow, run ``flask worker`` in
this process (the CLI runner) or as real processes (``flask --app wsgi worker``), read its log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from tests.support import REPO
from tests.support.apps import broker_of
from tests.support.signals import as_from_a_terminal
from tests.support.tokens import auth
from tests.support.upload import upload as upload_flow

HTTP_TIMEOUT = 10
# Variables of the environment that would point a worker at other services than the test's.
_FOREIGN_ENV = re.compile(r"^(BROKER_|MONGODB_URI$|AWS_|PROMETHEUS_)")


def upload(
    client: FlaskClient,
    data: bytes,
    *,
    filetype: str,
    filename: str = "",
    sub: str = "alice",
    public: bool = False,
) -> dict[str, Any]:
    """The suite's one upload flow for ``data`` as ``filetype`` (shared when ``public``); the
    image as confirm answered."""
    filename = filename or "photo." + filetype.split("/")[1]
    visibility = "public" if public else "private"
    shared = upload_flow(
        client, data, sub=sub, filetype=filetype, filename=filename, visibility=visibility
    )
    return shared.image


def image_of(client: FlaskClient, image_id: str, sub: str = "alice") -> dict[str, Any]:
    """The image as the API shows it now."""
    answer = client.get(f"/images/{image_id}", headers=auth(sub))
    assert answer.status_code == 200, answer.json
    image: dict[str, Any] = answer.json["image"]
    return image


def run_once(app: Flask) -> Result:
    """``flask worker --once`` on ``app``, in this process."""
    return app.test_cli_runner().invoke(args=["worker", "--once"])


def drain(app: Flask) -> dict[str, Any]:
    """``worker --once`` that must succeed; its summary line."""
    result = run_once(app)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return summary


def signed(client: FlaskClient, image_id: str, sub: str = "alice", **query: str) -> dict[str, Any]:
    """``GET /images/<id>/signed-url`` with ``query``; the answer's body."""
    answer = client.get(f"/images/{image_id}/signed-url", query_string=query, headers=auth(sub))
    assert answer.status_code == 200, answer.json
    body: dict[str, Any] = answer.json
    return body


def download(url: str) -> requests.Response:
    """GET a signed URL as a browser would."""
    response = requests.get(url, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    return response


def bucket_keys(app: Flask, prefix: str = "") -> list[str]:
    """Every key in the app's bucket under ``prefix``."""
    return [stored.key for stored in broker_of(app).bucket.list_keys(prefix, limit=10_000)]


# ---- workers as processes ------------------------------------------------------------------------


def worker_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker process configured with ``settings`` (and nothing else)."""
    env = {name: value for name, value in os.environ.items() if not _FOREIGN_ENV.match(name)}
    # Production mode, as operators run it (and it logs JSON lines, which test mode does not).
    env.update({"BROKER_ENV": "production", "BROKER_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update({name: str(value) for name, value in settings.items()})
    return env


def start_worker(
    settings: Mapping[str, str], log_path: Path, *args: str
) -> subprocess.Popen[bytes]:
    """``flask --app wsgi worker`` as a process of its own (its log to ``log_path``)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *args],
            cwd=REPO,
            env=worker_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A test's SIGINT must reach the worker whatever the suite was started from.
            preexec_fn=as_from_a_terminal,
        )


def log_records(log_path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a worker wrote (other lines skipped)."""
    records = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``.

    A bound for a test that would otherwise hang, not a speed assertion: it is generous.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
