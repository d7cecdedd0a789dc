"""Embedded backing services for the demo (``make run``) and the test suite.

MongoDB: the wire-compatible ``secantusdb`` server, run as a separate process from the dev
requirements (it is GPL-2.0: the broker never imports it, it only talks to it over a socket).
S3: moto's server in a thread. Neither enforces anything a production deployment relies on;
both are stand-ins for development and tests only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """End a child process: SIGTERM, then SIGKILL if it is still there after ``timeout`` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class MongoServer:
    """A ``secantusdb`` server process on loopback, its data under ``data_dir``."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        """The connection string (direct connection: it is a single node)."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 30.0) -> MongoServer:
        """Start the server and wait until it answers ``ping``."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.port = self.port or free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path or self.data_dir.parent / f"{self.data_dir.name}.log"
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "secantus",
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                    "--storage-path",
                    str(self.data_dir),
                    "--log-level",
                    "WARNING",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready(timeout, log_path)
        return self

    def _wait_ready(self, timeout: float, log_path: Path) -> None:
        deadline = time.monotonic() + timeout
        client: MongoClient[dict[str, Any]] = MongoClient(self.uri, serverSelectionTimeoutMS=500)
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the MongoDB test server exited ({self.process.returncode}); "
                        f"see {log_path}:\n{log_path.read_text(errors='replace')[-2000:]}"
                    )
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"the MongoDB test server did not answer in {timeout}s"
                        ) from None
                    time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is not None:
            stop_process(self.process)

    def kill(self) -> None:
        """Kill the server abruptly (to test recovery from a crashed database)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wipe(self) -> None:
        """Delete the data directory (the server must be stopped)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)


class S3Server:
    """moto's S3 server in a thread on loopback (no signature checks: development only)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.server import ThreadedMotoServer  # a dev dependency, imported only here

        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.host = host
        self.port = port

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> S3Server:
        """Start serving."""
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.stop()
        # moto's stop() ends the serving loop but leaves the listening socket open.
        listener = getattr(self._server, "_server", None)
        if listener is not None:
            listener.server_close()
