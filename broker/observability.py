"""Request ids, structured JSON logs, Prometheus metrics, and security headers on every response.

Every request gets an id (the caller's ``X-Request-ID`` when it is sane, else a fresh one),
echoed back and stamped on every log line written while it is handled. One access line per
request records user, route, status and duration; never a token, and never a query string
(signed URLs carry their signature there).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from broker.errors import NotFound
from broker.http.errors import error_response
from broker.http.framework import add_valid_headers
from broker.metrics import UNMATCHED_ROUTE, method_label, observe_request
from broker.settings import Settings

log = logging.getLogger("broker.access")
# The message of every access line (its fields say what happened).
ACCESS = "request"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extra fields."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
    # What json.dumps(entry, default=str) builds on every call, built once.
    _ENCODER = json.JSONEncoder(default=str)

    def __init__(self) -> None:
        super().__init__()
        # The second last written, as text: a busy process writes many lines per second.
        self._second: tuple[float, str] = (-1.0, "")

    def _stamp(self, created: float) -> str:
        """``created`` as ISO 8601 UTC to the millisecond with a ``Z``, exactly as
        ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`` writes it
        (the same rounding to microseconds), with the date and time written once a second."""
        fraction, second = math.modf(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000 or micros < 0:  # rounded up into the next second, or before 1970
            moment = datetime.fromtimestamp(created, tz=UTC)
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self._second[0] != second:
            whole = datetime.fromtimestamp(second, tz=UTC).isoformat(timespec="seconds")
            self._second = (second, whole.replace("+00:00", ""))
        return f"{self._second[1]}.{micros // 1000:03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry: dict[str, Any] = {
            "ts": self._stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._ENCODER.encode(entry)

    def access(self, created: float, fields: dict[str, Any]) -> str:
        """The line :meth:`format` writes for an access record made at ``created`` with
        ``fields`` as its extra fields, built straight from them (no record)."""
        entry = {"ts": self._stamp(created), "level": "INFO", "logger": log.name, "msg": ACCESS}
        for key, value in fields.items():
            if not key.startswith("_"):
                entry[key] = value
        return self._ENCODER.encode(entry)


class TextFormatter(logging.Formatter):
    """One readable line per record, carrying what the JSON lines carry.

    A request reads ``10:42:07.118 GET /images/65f… 200 3.1 ms user=alice rid=…`` (time, method,
    path, status, duration, user, request id); any other line reads ``10:42:07.311 WARNING
    broker.uploads.sweep: message key=value rid=…``. Values that could break the line (spaces,
    control characters, quotes) are quoted and escaped, so one record is always one line
    (tracebacks follow on their own lines).
    """

    _STANDARD = JsonFormatter._STANDARD
    # The access line shows these in fixed places; ``route`` is the path's rule, left to JSON.
    _ACCESS = ("method", "path", "status", "duration_ms", "user", "route", "request_id")
    # Characters a path keeps as they are; everything else is percent-encoded as on the wire.
    _PATH_SAFE = "/:@!$&'()*+,;=-._~"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Local wall-clock time with milliseconds (the JSON lines keep the full UTC stamp)."""
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{clock}.{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one line."""
        stamp = self.formatTime(record)
        if all(hasattr(record, name) for name in ("method", "path", "status", "duration_ms")):
            fields = record.__dict__
            head = (
                f"{stamp} {_escape(str(fields['method']))} "
                f"{quote(str(fields['path']), safe=self._PATH_SAFE)} {fields['status']} "
                f"{float(fields['duration_ms']):.1f} ms user={_value(fields.get('user'))}"
            )
            skip = self._STANDARD.union(self._ACCESS)
        else:
            head = f"{stamp} {record.levelname} {record.name}: {_escape(record.getMessage())}"
            skip = self._STANDARD | {"request_id"}
        extras = [
            f"{key}={_value(value)}"
            for key, value in record.__dict__.items()
            if key not in skip and not key.startswith("_")
        ]
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            extras.append(f"rid={_value(request_id)}")
        line = " ".join([head, *extras])
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _escape(text: str) -> str:
    # A newline (or U+2028, or an escape sequence) in a path or message must not forge a line.
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _value(value: object) -> str:
    """A ``key=value`` value: bare when it is one plain word, else a quoted JSON string."""
    if value is None:
        return "-"
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    return _escape(json.dumps(text, ensure_ascii=False))


class RequestIdFilter(logging.Filter):
    """Stamp the current request's id on every record logged while handling it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id`` when inside a request."""
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = getattr(g, "request_id", None)
        return True


def configure_logging(settings: Settings) -> None:
    """Send the broker's logs to stderr as JSON lines (or plain text), once per process."""
    root = logging.getLogger("broker")
    root.setLevel(settings.log_level)
    if settings.mode == "test":
        return  # the test runner captures through the root logger
    if any(getattr(h, "_broker_handler", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._broker_handler = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.propagate = False


def _start() -> None:
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
    g.started = time.perf_counter()


# Every API response is JSON: nothing in it should ever be rendered, framed or sniffed. A view
# that sets one of these itself (the admin UI's own policy) keeps its own.
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
)
_REQUEST_ID_HEADER = "X-Request-ID"


def _finish(response: Response) -> Response:
    # The proxies are resolved once: each attribute read through one costs a context look-up.
    ctx, req = g._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]
    request_id = getattr(ctx, "request_id", None) or uuid.uuid4().hex
    started = getattr(ctx, "started", None)
    duration = time.perf_counter() - started if started is not None else 0.0
    _set_headers(response, request_id)
    rule = req.url_rule
    route = rule.rule if rule is not None else UNMATCHED_ROUTE
    status = response.status_code
    observe_request(method_label(req.method), route, status, duration)
    if log.isEnabledFor(logging.INFO):
        principal = getattr(ctx, "principal", None)
        access_line(
            request_id=request_id,
            user=principal.sub if principal is not None else None,
            method=req.method,
            route=route,
            # Never the query string (signed URLs keep secrets there), nor a path a view says
            # holds one (a public link's token): then the view's stand-in (``g.log_path``).
            path=getattr(ctx, "log_path", req.path),
            status=status,
            duration_ms=round(duration * 1000, 2),
        )
    return response


def _set_headers(response: Response, request_id: str) -> None:
    """The request id and the security headers a view did not set itself, in one pass over the
    response's headers (``Headers.setdefault`` scans them, and raises inside, once per header);
    appended unvalidated where the response allows it (all are valid: constants, a checked id)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    if "x-request-id" in present:
        headers.set(_REQUEST_ID_HEADER, request_id)
        added = []
    else:
        added = [(_REQUEST_ID_HEADER, request_id)]
    added += [pair for pair in _SECURITY_HEADERS if pair[0].lower() not in present]
    add_valid_headers(response, added)


def access_line(**fields: Any) -> None:
    """Log the request's access line on ``broker.access``, as ``log.info("request", extra=...)``
    would, without what that costs per record and an access line never needs.

    When the line can only reach the broker's own JSON handler (nothing added to the logger or
    its handler by an operator), it is built from the fields and written as that handler would
    write it, with no record at all. Otherwise a record goes through the logger's filters and
    handlers like any other (without looking up the caller's source line, a walk up the stack),
    so operators configure it as any logger (level, handlers, formatters, propagation)."""
    direct = _direct_handler()
    if direct is not None:
        formatter = cast(JsonFormatter, direct.formatter)
        try:
            line = formatter.access(time.time(), fields)
            with direct.lock:  # type: ignore[union-attr]  # handlers made by createLock have one
                direct.stream.write(line + direct.terminator)
                direct.stream.flush()
            return
        except Exception:  # the record path below reports write errors its own way
            pass
    record = log.makeRecord(
        log.name, logging.INFO, __file__, 0, ACCESS, (), None, "access_line", fields
    )
    log.handle(record)


def _direct_handler() -> logging.StreamHandler[Any] | None:
    """The broker's own JSON handler, when it is the only place an access record would go."""
    if log.handlers or log.filters or not log.propagate:
        return None
    parent = log.parent
    if parent is None or parent.name != "broker" or parent.filters or parent.propagate:
        return None
    handlers = parent.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        not getattr(handler, "_broker_handler", False)
        or type(handler.formatter) is not JsonFormatter
        or handler.level > logging.INFO
        or any(type(f) is not RequestIdFilter for f in handler.filters)
    ):
        return None
    return cast(logging.StreamHandler[Any], handler)


def metrics_response(settings: Settings, extra: Callable[[], bytes] | None = None) -> Response:
    """The Prometheus exposition of this process (or of every worker, in multiprocess mode),
    followed by what ``extra`` gives (called only once the caller may see metrics).

    With ``BROKER_METRICS_TOKEN`` set it answers only a request presenting it as a Bearer
    token; without one only in demo and test modes. Otherwise 404, as for any unknown path:
    nothing tells a prober the endpoint exists.
    """
    if settings.metrics_token:
        scheme, _, supplied = request.headers.get("Authorization", "").strip().partition(" ")
        presented = scheme.lower() == "bearer" and hmac.compare_digest(
            supplied.strip().encode(), settings.metrics_token.encode()
        )
        if not presented:
            return error_response(NotFound())
    elif settings.mode not in ("demo", "test"):
        return error_response(NotFound())
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    if extra is not None:
        body += extra()
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def init_observability(app: Flask, settings: Settings) -> None:
    """Request ids, access logs, metrics and security headers for every request (the metrics
    are served by the ops blueprint)."""
    configure_logging(settings)
    app.before_request(_start)
    app.after_request(_finish)
