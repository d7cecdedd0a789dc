"""Request ids, JSON access logs without secrets, Prometheus metrics, security headers."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from broker.observability import JsonFormatter, TextFormatter
from tests.support.tokens import auth
from tests.support.upload import Uploader


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "broker.access"]


class TestRequestId:
    def test_generated_and_echoed(self, client: FlaskClient) -> None:
        first = client.get("/healthz").headers["X-Request-ID"]
        second = client.get("/healthz").headers["X-Request-ID"]
        assert len(first) == 32 and first != second

    def test_a_sane_caller_id_is_kept_a_hostile_one_replaced(self, client: FlaskClient) -> None:
        assert (
            client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
            == "abc-123"
        )
        hostile = client.get("/healthz", headers={"X-Request-ID": "x\u2028<script>" + "y" * 500})
        assert len(hostile.headers["X-Request-ID"]) == 32

    def test_errors_carry_it_too(self, client: FlaskClient) -> None:
        response = client.get("/images", headers={"X-Request-ID": "req-404"})
        assert response.status_code == 401 and response.headers["X-Request-ID"] == "req-404"


class TestAccessLog:
    def test_one_line_per_request_with_user_route_status_duration(
        self, client: FlaskClient, upload: Uploader, caplog: pytest.LogCaptureFixture
    ) -> None:
        image = upload().image
        token_header = auth()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="broker"):
            response = client.get(
                f"/images/{image['id']}/signed-url?expires_in=60",
                headers={**token_header, "X-Request-ID": "trace-1"},
            )
        (line,) = access_lines(caplog)
        assert line.request_id == "trace-1"  # type: ignore[attr-defined]
        assert line.user == "alice"  # type: ignore[attr-defined]
        assert line.route == "/images/<image_id>/signed-url"  # type: ignore[attr-defined]
        assert line.status == 200 and line.duration_ms >= 0  # type: ignore[attr-defined]
        as_json = JsonFormatter().format(line)
        assert json.loads(as_json)["path"] == f"/images/{image['id']}/signed-url"
        # BROKER_LOG_FORMAT=text: the same request as one line of exactly this shape.
        as_text = TextFormatter().format(line)
        assert re.fullmatch(
            rf"\d\d:\d\d:\d\d\.\d{{3}} GET /images/{image['id']}/signed-url 200 \d+\.\d ms"
            r" user=alice rid=trace-1",
            as_text,
        ), as_text
        # Neither the token, nor the signed URL's signature, nor the query string.
        token = token_header["Authorization"].split()[1]
        for rendered in (as_json, as_text):
            assert token not in rendered and "X-Amz-Signature" not in rendered
            assert "expires_in" not in rendered and response.json["url"] not in rendered

    def test_operators_configure_the_access_logger_as_any_logger(self, client: FlaskClient) -> None:
        access = logging.getLogger("broker.access")
        handler = _Collecting()
        seen = handler.records
        access.addHandler(handler)
        try:
            with _level(access, logging.INFO):
                client.get("/healthz", headers={"X-Request-ID": "configured-1"})
            with _level(access, logging.WARNING):
                client.get("/healthz", headers={"X-Request-ID": "silenced-1"})
        finally:
            access.removeHandler(handler)
        # A handler of its own sees the line; a level above INFO silences it.
        assert [record.request_id for record in seen] == ["configured-1"]  # type: ignore[attr-defined]
        assert seen[0].getMessage() == "request" and seen[0].levelno == logging.INFO

    def test_json_formatter_renders_extras_and_exceptions(self) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.getLogger("broker.test").makeRecord(
                "broker.test",
                logging.ERROR,
                __file__,
                1,
                "failed %s",
                ("x",),
                __import__("sys").exc_info(),
                extra={"request_id": "r1"},
            )
        entry = json.loads(JsonFormatter().format(record))
        assert entry["msg"] == "failed x" and entry["request_id"] == "r1"
        assert entry["level"] == "ERROR" and "ValueError: boom" in entry["exc"]
        assert entry["ts"].endswith("Z")


class _Collecting(logging.Handler):
    """A handler an operator might add: keeps what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)


@contextmanager
def _level(logger: logging.Logger, level: int) -> Iterator[None]:
    """``logger`` at ``level`` for a ``with`` block."""
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@pytest.mark.parametrize(
    "created",
    [
        *(random.Random(13).uniform(0, 4e9) for _ in range(200)),
        1700000000.9999996,  # rounds up into the next second
        1700000000.0000004,
        1700000000.9995,
        1e9 + 0.0005,
        0.0,
    ],
)
def test_json_times_are_what_datetime_writes(created: float) -> None:
    formatter = JsonFormatter()  # one formatter: the second it wrote last is reused
    for moment in (created, int(created) + 0.25, created):
        record = logging.makeLogRecord({"created": moment, "msg": "m"})
        written = json.loads(formatter.format(record))["ts"]
        expected = datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="milliseconds")
        assert written == expected.replace("+00:00", "Z")


class TestMetrics:
    def test_each_request_counts_once_in_its_series(self, client: FlaskClient) -> None:
        def count(status: str) -> float:
            labels = {"method": "GET", "route": "/healthz", "status": status}
            return REGISTRY.get_sample_value("broker_http_requests_total", labels) or 0.0

        def observed() -> float:
            labels = {"method": "GET", "route": "/healthz"}
            value = REGISTRY.get_sample_value("broker_http_request_duration_seconds_count", labels)
            return value or 0.0

        before, before_observed = count("200"), observed()
        for _ in range(3):
            client.get("/healthz")
        assert count("200") == before + 3
        assert observed() == before_observed + 3

    def test_exposes_requests_uploads_and_signatures(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        client.get(f"/images/{image['id']}/signed-url", headers=auth())
        body = client.get("/metrics").get_data(as_text=True)
        assert (
            'broker_http_requests_total{method="GET",route="/images/<image_id>/signed-url",status="200"}'
            in body
        )
        assert 'broker_uploads_total{outcome="confirmed"}' in body
        assert 'broker_signatures_total{method="GET"}' in body
        assert "broker_http_request_duration_seconds_bucket" in body

    def test_metrics_token_when_configured(self, make_app: Any) -> None:
        # The contract: 404 (as for any unknown path) unless the token is presented.
        client = make_app(BROKER_METRICS_TOKEN="scrape-secret").test_client()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 404 and refused.json["error"]["code"] == "not_found"
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200 and ok.mimetype == "text/plain"

    def test_dependency_errors_are_counted(self, make_app: Any) -> None:
        from broker.devservers import free_port

        app = make_app(
            prepare=False,
            BROKER_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
            BROKER_S3_CONNECT_TIMEOUT="0.2",
        )
        client = app.test_client()
        before = _sample(client, 'broker_dependency_errors_total{dependency="s3"}')
        client.get("/readyz")
        assert _sample(client, 'broker_dependency_errors_total{dependency="s3"}') > before

    def test_the_variant_queue_is_read_at_scrape_time(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        assert _sample(client, 'broker_variant_jobs{state="queued"}') == 0
        upload()
        upload()
        assert _sample(client, 'broker_variant_jobs{state="queued"}') == 2
        assert _sample(client, 'broker_variant_jobs{state="running"}') == 0
        assert _sample(client, "broker_variant_jobs_oldest_due_seconds") >= 0

    def test_without_mongodb_the_scrape_still_answers(self, make_app: Any) -> None:
        from broker.devservers import free_port

        app = make_app(
            prepare=False,
            MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
            BROKER_MONGODB_TIMEOUT_MS="200",
        )
        response = app.test_client().get("/metrics")
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and "broker_http_requests_total" in body
        assert "broker_variant_jobs" not in body


def _sample(client: FlaskClient, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class TestSecurityHeaders:
    # /metrics answers with a response of Flask's own class, the others with the broker's.
    @pytest.mark.parametrize("path", ["/healthz", "/images", "/nope", "/metrics"])
    def test_on_every_response(self, client: FlaskClient, path: str) -> None:
        response = client.get(path, headers=auth())
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        for name in ("X-Content-Type-Options", "Content-Security-Policy", "X-Request-ID"):
            assert len(response.headers.getlist(name)) == 1, name

    def test_admin_keeps_its_own_policy(self, app: Flask) -> None:
        response = app.test_client().get("/admin/")
        response.close()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]

    def test_api_cors_only_for_configured_origins(self, make_app: Any) -> None:
        client = make_app(BROKER_CORS_ORIGINS="https://app.example").test_client()
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        allowed = client.options(
            "/images/presign-upload", headers={"Origin": "https://app.example", **preflight}
        )
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
        refused = client.options(
            "/images/presign-upload", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "Access-Control-Allow-Origin" not in refused.headers
