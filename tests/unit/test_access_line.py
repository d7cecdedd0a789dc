"""The access line written straight to the broker's JSON handler is the line a record makes."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker.observability import JsonFormatter, RequestIdFilter, TextFormatter, access_line

FIELDS: list[dict[str, Any]] = [
    {
        "request_id": "0f3c9a",
        "user": "alice",
        "method": "GET",
        "route": "/images/<image_id>",
        "path": "/images/65f1c2d3e4f5a6b7c8d9e0f1",
        "status": 200,
        "duration_ms": 3.14,
    },
    {
        "request_id": "a" * 32,
        "user": None,
        "method": "POST",
        "route": "<unmatched>",
        "path": '/p/"quoted"\n\u2028é',
        "status": 404,
        "duration_ms": 0.0,
    },
]


class Recorded(logging.Filter):
    """Lets every record through, counting them (a record path was taken)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.records += 1
        return True


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The broker's own JSON handler, as configure_logging installs it, writing to a buffer;
    the clock stopped so that both paths stamp the same time."""
    # The record's clock: time.time up to Python 3.12, time.time_ns from 3.13.
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.1234)
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_400_000)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler._broker_handler = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("broker")
    saved = (root.handlers[:], root.propagate, root.level)
    root.handlers[:] = [handler]
    root.propagate, root.level = False, logging.INFO
    try:
        yield buffer
    finally:
        root.handlers[:], root.propagate, root.level = saved[0], saved[1], saved[2]


def alone() -> logging.Handler:
    """Leave the broker's handler alone on its logger (pytest adds capture handlers to the
    loggers after fixtures ran); return it."""
    root = logging.getLogger("broker")
    ours = [handler for handler in root.handlers if getattr(handler, "_broker_handler", False)]
    root.handlers[:] = ours
    return ours[0]


def lines(buffer: io.StringIO) -> list[str]:
    written = buffer.getvalue().splitlines()
    buffer.seek(0)
    buffer.truncate()
    return written


@pytest.mark.parametrize("fields", FIELDS)
def test_the_direct_line_is_the_line_the_record_makes(
    stream: io.StringIO, fields: dict[str, Any]
) -> None:
    access = logging.getLogger("broker.access")
    alone()
    access_line(**fields)
    direct = lines(stream)
    counting = Recorded()
    access.addFilter(counting)  # an operator's filter: every line must go through it
    try:
        access_line(**fields)
    finally:
        access.removeFilter(counting)
    through_logging = lines(stream)
    assert counting.records == 1
    assert len(direct) == 1
    assert direct == through_logging


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """The access records handed to the logging machinery (none when the line went direct)."""
    handled: list[logging.LogRecord] = []
    handle = logging.Logger.handle

    def counted(logger: logging.Logger, record: logging.LogRecord) -> None:
        if logger.name == "broker.access":
            handled.append(record)
        handle(logger, record)

    monkeypatch.setattr(logging.Logger, "handle", counted)
    return handled


def test_the_broker_handler_alone_gets_the_line_without_a_record(
    stream: io.StringIO, records: list[logging.LogRecord]
) -> None:
    alone()
    access_line(**FIELDS[0])
    assert records == []
    assert len(lines(stream)) == 1


@pytest.mark.parametrize(
    "configure",
    [
        lambda root, handler: handler.setFormatter(TextFormatter()),
        lambda root, handler: root.addHandler(logging.NullHandler()),
        lambda root, handler: handler.addFilter(Recorded()),
        lambda root, handler: handler.setLevel(logging.WARNING),
        lambda root, handler: logging.getLogger("broker.access").addHandler(logging.NullHandler()),
    ],
    ids=["text format", "another handler", "a handler filter", "a handler level", "own handler"],
)
def test_an_operators_logging_setup_takes_the_record_path(
    stream: io.StringIO, records: list[logging.LogRecord], configure: Any
) -> None:
    root = logging.getLogger("broker")
    access = logging.getLogger("broker.access")
    saved = access.handlers[:]
    configure(root, alone())
    try:
        access_line(**FIELDS[0])
    finally:
        access.handlers[:] = saved
    assert len(records) == 1
