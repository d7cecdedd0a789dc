"""Lines logged during a request, in the text format (``BROKER_LOG_FORMAT=text``).

The access line itself is tested with the JSON one in ``test_observability.py``.
"""

from __future__ import annotations

import logging
import re

import pytest
from flask.testing import FlaskClient

from broker.observability import RequestIdFilter, TextFormatter
from tests.support.tokens import auth
from tests.support.upload import pending_upload


def test_other_lines_of_a_request_keep_its_request_id(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"not an image at all, whatever the upload said"
    grant = pending_upload(client, data, filename="lying.png")
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
        r"\d\d:\d\d:\d\d\.\d{3} INFO broker\.uploads\.service: upload \S+ rejected: .* rid=trace-2",
        lines[0],
    ), lines[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} POST /images 422 \d+\.\d ms user=alice rid=trace-2", lines[1]
    ), lines[1]
