"""The broker under gunicorn, configured by environment variables only, as in production.

``Gunicorn`` runs ``gunicorn --workers 2 --worker-class sync wsgi:app`` from the repository (so
its ``gunicorn.conf.py`` applies) on a free loopback port, waits until ``/healthz`` answers, and
stops what it started. The benchmarks and the tests of the production entry point use it; the
benchmarks also run other worker classes and their bare-Flask ceiling app with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from broker.devservers import free_port
from tests.support import REPO

GUNICORN = Path(sys.executable).with_name("gunicorn")
# Loopback only: no proxy from the environment may carry these requests.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def clean_environment() -> dict[str, str]:
    """The caller's environment without anything that would configure the broker or a proxy."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BROKER_", "AWS_", "MONGODB_", "PROMETHEUS_"))
        and not name.lower().endswith("_proxy")
    }


@dataclass
class Gunicorn:
    """``gunicorn --workers 2 --worker-class sync wsgi:app`` on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    workers: int = 2
    port: int = 0
    app: str = "wsgi:app"
    worker_class: str = "sync"
    # Threads per worker: gthread only (sync workers serve one request at a time).
    threads: int = 1
    # What answers 200 once the app is up.
    ready_path: str = "/healthz"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the broker."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start it and wait until ``ready_path`` answers 200."""
        self.port = self.port or free_port()
        command = [
            str(GUNICORN),
            f"--workers={self.workers}",
            f"--worker-class={self.worker_class}",
            *([f"--threads={self.threads}"] if self.worker_class == "gthread" else []),
            f"--bind=127.0.0.1:{self.port}",
            self.app,
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # As the README says to run it under gunicorn: metrics summed over the workers.
        metrics_dir = self.log_path.with_suffix(".metrics")
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        env = {**clean_environment(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **self.env}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{tail}")
            try:
                with LOOPBACK.open(f"{self.url}{self.ready_path}", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not answer in {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the master we started), SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
