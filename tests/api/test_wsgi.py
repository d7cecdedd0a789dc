"""The production entry point: ``gunicorn wsgi:app`` configured from the environment only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from broker.devservers import MongoServer, S3Server
from tests.support.gunicorn import Gunicorn, clean_environment
from tests.support.s3 import S3Endpoint
from tests.support.settings import broker_settings
from tests.support.tokens import auth

ROOT = Path(__file__).resolve().parents[2]


def production_env(mongo_server: MongoServer, s3_server: S3Server) -> dict[str, str]:
    """This environment less any broker setting, plus the broker's settings on our services."""
    moto = S3Endpoint.of_moto(s3_server)
    return {
        **clean_environment(),
        **broker_settings(mongo_server.uri, "wsgi_test", moto, "wsgi-test"),
    }


def test_gunicorn_serves_the_api_from_environment_variables(
    mongo_server: MongoServer, s3_server: S3Server, tmp_path: Path
) -> None:
    env = production_env(mongo_server, s3_server)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ensure-indexes"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    # Serving means /healthz answered 200 (Gunicorn.start waits for it).
    with Gunicorn(env, tmp_path / "gunicorn.log") as server:
        listed = requests.get(f"{server.url}/images", headers=auth(), timeout=5)
        assert listed.status_code == 200 and listed.json() == {"images": [], "next_cursor": None}
        assert requests.get(f"{server.url}/images", timeout=5).status_code == 401


def test_refuses_to_start_without_a_way_to_verify_tokens(
    mongo_server: MongoServer, s3_server: S3Server
) -> None:
    env = production_env(mongo_server, s3_server)
    del env["BROKER_JWT_SECRET"]
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert result.returncode != 0
    assert b"BROKER_JWT_SECRET" in result.stderr and b"refuses to start" in result.stderr
