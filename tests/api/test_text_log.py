"""Requests through the app, rendered by the text log format (``BROKER_LOG_FORMAT=text``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from broker.observability import RequestIdFilter, TextFormatter
from tests.api.conftest import Uploader, put_to_bucket
from tests.helpers import auth, md5_b64


def test_one_request_is_one_line_of_exactly_this_shape(
    client: FlaskClient, upload: Uploader, caplog: pytest.LogCaptureFixture
) -> None:
    image = upload().image
    token_header = auth()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker"):
        response = client.get(
            f"/images/{image['id']}/signed-url?expires_in=60&disposition=attachment",
            headers={**token_header, "X-Request-ID": "trace-1"},
        )
    assert response.status_code == 200
    lines = [TextFormatter().format(r) for r in caplog.records if r.name == "broker.access"]
    (line,) = lines
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} GET /images/"
        + image["id"]
        + r"/signed-url 200 \d+\.\d ms user=alice rid=trace-1",
        line,
    ), line
    # Neither the query string, nor the token, nor the signed URL.
    assert "expires_in" not in line and "X-Amz" not in line
    assert token_header["Authorization"].split()[1] not in line


def test_other_lines_of_a_request_keep_its_request_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"not an image at all, whatever the upload said"
    presigned = client.post(
        "/images/presign-upload",
        json={
            "filename": "lying.png",
            "filetype": "image/png",
            "size": len(data),
            "content_md5": md5_b64(data),
        },
        headers=auth(),
    )
    grant: dict[str, Any] = presigned.get_json()
    assert put_to_bucket(grant, data).status_code == 200
    caplog.clear()
    # As on the broker's own handler: records get the request id while the request runs.
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="broker"):
        confirmed = client.post(  # not a PNG: confirm rejects it, and says so in the log
            "/images",
            json={"key": grant["key"]},
            headers={**auth(), "X-Request-ID": "trace-2"},
        )
    assert confirmed.status_code == 422
    lines = [TextFormatter().format(r) for r in caplog.records if r.name.startswith("broker")]
    assert len(lines) == 2
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO broker\.service: upload \S+ rejected: .* rid=trace-2",
        lines[0],
    ), lines[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} POST /images 422 \d+\.\d ms user=alice rid=trace-2", lines[1]
    ), lines[1]
