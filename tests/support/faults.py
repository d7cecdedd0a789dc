"""Broken services on demand: a switchable S3 stand-in in front of moto, and a port that hangs.

``FaultyS3`` listens on loopback and, per connection, either forwards the bytes to the real
(moto) S3 server, refuses (accepts then closes at once), hangs (accepts and never answers),
or answers every request with a 500 and an S3 XML error. Switching the mode also cuts the
connections already open, so pooled keep-alive connections cannot carry on forwarding.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

FORWARD = "forward"
REFUSE = "refuse"
HANG = "hang"
ERROR_500 = "error500"
MODES = (FORWARD, REFUSE, HANG, ERROR_500)

S3_ERROR_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>InternalError</Code>"
    b"<Message>We encountered an internal error. Please try again.</Message>"
    b"<RequestId>FAULT</RequestId></Error>"
)

# Short timeouts so every failing S3 or MongoDB call gives up in about a second.
FAST_FAIL = {
    "BROKER_S3_CONNECT_TIMEOUT": "0.5",
    "BROKER_S3_READ_TIMEOUT": "0.5",
    "BROKER_MONGODB_TIMEOUT_MS": "500",
}
# A request that depends on a broken service must still answer within this (sanity bound).
BOUNDED_SECONDS = 10.0


class FaultyS3:
    """A loopback TCP endpoint whose behaviour is switched between the modes above."""

    def __init__(self, upstream: tuple[str, int] | None = None, mode: str = FORWARD) -> None:
        self.upstream = upstream
        self._mode = mode
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def endpoint_url(self) -> str:
        """The endpoint to configure as ``BROKER_S3_ENDPOINT_URL``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        """The current mode."""
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Switch modes and cut every open connection (pooled ones included)."""
        assert mode in MODES, mode
        assert mode != FORWARD or self.upstream is not None, "no upstream to forward to"
        with self._lock:
            self._mode = mode
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop accepting, cut every connection and join every thread."""
        self._stopping.set()
        self.set_mode(REFUSE)
        self._acceptor.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def client_sent(self, data: bytes) -> None:
        """Called (in the connection's thread) with each chunk a client sends, before it is
        forwarded; a subclass may look at it, or hold it back a while."""

    # ---- internals ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.update(sockets)

    def _untrack(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(sockets)
        for sock in sockets:
            sock.close()

    def _serve(self, conn: socket.socket) -> None:
        self._track(conn)
        try:
            mode = self._mode
            if mode == FORWARD:
                self._forward(conn)
            elif mode == HANG:
                # Accept, read whatever comes, never answer, until cut or stopped.
                self._drain_until_cut(conn, answer=None)
            elif mode == ERROR_500:
                self._drain_until_cut(conn, answer=self._error_response())
            # REFUSE: close at once.
        except OSError:
            pass
        finally:
            self._untrack(conn)

    @staticmethod
    def _error_response() -> bytes:
        return (
            b"HTTP/1.1 500 Internal Server Error\r\n"
            b"Content-Type: application/xml\r\n"
            b"Content-Length: " + str(len(S3_ERROR_XML)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + S3_ERROR_XML
        )

    def _drain_until_cut(self, conn: socket.socket, answer: bytes | None) -> None:
        received = b""
        while not self._stopping.is_set():
            ready, _, _ = select.select([conn], [], [], 0.1)
            if not ready:
                continue
            chunk = conn.recv(65536)
            if not chunk:
                return
            received += chunk
            if answer is not None and b"\r\n\r\n" in received:
                conn.sendall(answer)
                return

    def _forward(self, conn: socket.socket) -> None:
        assert self.upstream is not None
        upstream = socket.create_connection(self.upstream, timeout=5)
        upstream.settimeout(None)
        self._track(upstream)
        try:
            pair = {conn: upstream, upstream: conn}
            while not self._stopping.is_set():
                ready, _, _ = select.select(list(pair), [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is conn:
                        self.client_sent(data)
                    pair[sock].sendall(data)
        finally:
            self._untrack(upstream)


class Blackhole:
    """A loopback port whose connection attempts hang: exercises the S3 *connect* timeout.

    The listener's accept queue (backlog 0) is filled by one connection that is never
    accepted; Linux then drops further SYNs, so a connect waits until its own timeout.
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)

    @property
    def endpoint_url(self) -> str:
        """The endpoint to configure as ``BROKER_S3_ENDPOINT_URL``."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Close the filling connection and the listener."""
        self._filler.close()
        self._listener.close()


def timed(call: Callable[[], Any]) -> Any:
    """Run a request; it must answer within the sanity bound even with a service down."""
    started = time.monotonic()
    result = call()
    elapsed = time.monotonic() - started
    assert elapsed < BOUNDED_SECONDS, f"took {elapsed:.1f}s"
    return result


def recovers(call: Callable[[], Any], status: int = 200) -> Any:
    """Repeat a request until it answers ``status``; it must within the sanity bound.

    The driver notices a restarted service on its next heartbeat, so the first request after a
    restart may still see it down; recovery is the property, not its first instant.
    """
    deadline = time.monotonic() + BOUNDED_SECONDS
    while True:
        response = timed(call)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


# A request line as a client sends it (the tapped traffic is plain HTTP/1.1 on loopback).
REQUEST_LINE = re.compile(rb"(?:^|\r\n)([A-Z]+) (/[^ ]*) HTTP/1\.1\r\n")


class TappedS3(FaultyS3):
    """A forwarding :class:`FaultyS3` that records each request's method and path (a request
    line split across two chunks is missed: clients send the head in one), and holds each
    DELETE back ``delete_delay`` seconds (so work of concurrent clients overlaps)."""

    def __init__(self, upstream: tuple[str, int], delete_delay: float = 0.0) -> None:
        super().__init__(upstream)
        self.delete_delay = delete_delay
        self.requests: list[tuple[str, str]] = []
        self._requests_lock = threading.Lock()

    def client_sent(self, data: bytes) -> None:
        """Record the request lines in ``data``; hold a DELETE back."""
        found = [(m.decode(), unquote(p.decode())) for m, p in REQUEST_LINE.findall(data)]
        with self._requests_lock:
            self.requests.extend(found)
        if self.delete_delay and any(method == "DELETE" for method, _ in found):
            time.sleep(self.delete_delay)

    def paths(self, method: str) -> list[str]:
        """The paths of the requests of ``method`` seen so far."""
        with self._requests_lock:
            return [path for m, path in self.requests if m == method]
