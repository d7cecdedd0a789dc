"""The text log format: one readable line per record, carrying what the JSON lines carry."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from broker.observability import JsonFormatter, TextFormatter

STAMP = r"\d\d:\d\d:\d\d\.\d{3}"


def record(
    msg: str = "request", *, name: str = "broker.access", level: int = logging.INFO, **extra: Any
) -> logging.LogRecord:
    made = logging.getLogger(name).makeRecord(name, level, __file__, 1, msg, (), None, extra=extra)
    return made


def access(**overrides: Any) -> logging.LogRecord:
    fields: dict[str, Any] = {
        "request_id": "0f3c9a",
        "user": "alice",
        "method": "GET",
        "route": "/images/<image_id>",
        "path": "/images/65f1c2d3e4f5a6b7c8d9e0f1",
        "status": 200,
        "duration_ms": 3.14,
    }
    return record(**{**fields, **overrides})


def test_an_access_line_reads_method_path_status_duration_user_and_request_id() -> None:
    line = TextFormatter().format(access())
    assert re.fullmatch(
        STAMP + r" GET /images/65f1c2d3e4f5a6b7c8d9e0f1 200 3\.1 ms user=alice rid=0f3c9a", line
    )


def test_the_time_is_the_records_local_wall_clock_time() -> None:
    made = access()
    made.created, made.msecs = 1_700_000_000.042, 42.0
    expected = time.strftime("%H:%M:%S", time.localtime(1_700_000_000.042)) + ".042"
    assert TextFormatter().format(made).startswith(expected + " GET ")


def test_an_anonymous_request_and_a_slow_one() -> None:
    line = TextFormatter().format(access(user=None, duration_ms=1234.56, status=401))
    assert line.endswith(" 401 1234.6 ms user=- rid=0f3c9a")


def test_the_line_carries_every_field_the_json_line_carries() -> None:
    made = access(variant="thumb")  # a field added later shows up too
    line = TextFormatter().format(made)
    entry = json.loads(JsonFormatter().format(made))
    shown = {
        "method": " GET ",
        "path": " /images/65f1c2d3e4f5a6b7c8d9e0f1 ",
        "status": " 200 ",
        "duration_ms": " 3.1 ms ",
        "user": " user=alice ",
        "variant": " variant=thumb ",
        "request_id": " rid=0f3c9a",
    }
    # ts, level and logger are the line's time and kind; route is the rule the path matched.
    assert set(entry) - {"ts", "level", "logger", "msg", "route"} == set(shown)
    for key, text in shown.items():
        assert text in line, key


def test_nothing_in_a_field_can_break_the_line_or_forge_another() -> None:
    line = TextFormatter().format(
        access(
            path="/images/a b\n12:00:00.000 GET /admin 200 0.1 ms user=admin rid=x/caf\u00e9%",
            user='eve "the" admin\u2028',
            method="G\x1bET",
        )
    )
    assert "\n" not in line and "\u2028" not in line and "\x1b" not in line
    forged = "12:00:00.000%20GET%20/admin%20200%200.1%20ms%20user=admin%20rid=x"
    assert f" /images/a%20b%0A{forged}/" in line
    assert "caf%C3%A9%25 " in line
    assert 'user="eve \\"the\\" admin\\u2028"' in line
    assert line.split(" ")[1] == "G\\x1bET"


def test_other_lines_name_level_and_logger_and_keep_the_request_id() -> None:
    line = TextFormatter().format(
        record(
            "upload %s rejected: %s",
            name="broker.service",
            level=logging.WARNING,
            request_id="trace-2",
        )
    )
    assert line.endswith(" WARNING broker.service: upload %s rejected: %s rid=trace-2")
    made = record("sweep %s", name="broker.service", reason="S3 down")
    made.args = ("a\nb",)
    assert (
        TextFormatter().format(made).endswith(' INFO broker.service: sweep a\\nb reason="S3 down"')
    )


def test_outside_a_request_there_is_no_request_id() -> None:
    line = TextFormatter().format(record("listening", name="broker.demo"))
    assert re.fullmatch(STAMP + " INFO broker.demo: listening", line)


def test_a_traceback_follows_on_its_own_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = logging.getLogger("broker.errors").makeRecord(
            "broker.errors",
            logging.ERROR,
            __file__,
            1,
            "unexpected error",
            (),
            sys.exc_info(),
            extra={"request_id": "r9"},
        )
    first, *rest = TextFormatter().format(made).split("\n")
    assert first.endswith(" ERROR broker.errors: unexpected error rid=r9")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"
