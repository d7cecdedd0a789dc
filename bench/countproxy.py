"""A tiny counting TCP proxy (asyncio): forwards loopback connections and counts the bytes.

Used by the upload benchmark to measure what the broker sends and receives: one proxy sits
between the client and the broker, another between the broker and its S3 endpoint. Counts are
of TCP payload (HTTP headers and bodies), both directions, summed over every connection.

Standalone: ``python bench/countproxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT`` prints the
counters every second until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field

CHUNK = 256 * 1024


@dataclass
class Counters:
    """Bytes seen by one proxy: ``up`` flows client → target, ``down`` target → client."""

    up: int = 0
    down: int = 0
    connections: int = 0
    last_activity: float = field(default_factory=time.monotonic)


class CountingProxy:
    """Forward every connection on ``listen_port`` to ``target`` and count the bytes."""

    def __init__(self, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self.counters = Counters()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on 127.0.0.1 (loopback only)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def close(self) -> None:
        """Stop listening (open connections end with their peers)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Pipe one client connection to a fresh connection to the target."""
        self.counters.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        writers = (writer, upstream_writer)
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer, writers, upstream=True),
                self._pipe(upstream_reader, writer, writers, upstream=False),
            )
        finally:
            for each in writers:
                with contextlib.suppress(Exception):
                    each.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        writers: tuple[asyncio.StreamWriter, ...],
        *,
        upstream: bool,
    ) -> None:
        """Copy one direction until EOF, counting, then half-close; on an error close both."""
        try:
            while data := await reader.read(CHUNK):
                if upstream:
                    self.counters.up += len(data)
                else:
                    self.counters.down += len(data)
                self.counters.last_activity = time.monotonic()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            for each in writers:
                with contextlib.suppress(Exception):
                    each.close()


class ProxyThread:
    """Runs several :class:`CountingProxy` on one event loop in a daemon thread."""

    def __init__(self, proxies: list[CountingProxy]) -> None:
        self.proxies = proxies
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        for proxy in self.proxies:
            asyncio.run_coroutine_threadsafe(proxy.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        for proxy in self.proxies:
            asyncio.run_coroutine_threadsafe(proxy.close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def reset(self) -> None:
        """Zero every counter (between measured operations)."""
        for proxy in self.proxies:
            proxy.counters = Counters()

    def wait_quiet(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no proxy has moved a byte for ``quiet`` seconds (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            latest = max(proxy.counters.last_activity for proxy in self.proxies)
            if time.monotonic() - latest >= quiet:
                return
            time.sleep(quiet / 3)


def main() -> None:
    """Run one proxy from the command line and print its counters every second."""
    if len(sys.argv) != 3 or ":" not in sys.argv[2]:
        raise SystemExit(__doc__)
    host, port = sys.argv[2].rsplit(":", 1)
    proxy = CountingProxy(int(sys.argv[1]), host, int(port))
    with ProxyThread([proxy]), contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1)
            counters = proxy.counters
            print(f"up {counters.up} down {counters.down} connections {counters.connections}")


if __name__ == "__main__":
    main()
