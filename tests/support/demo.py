"""The demo (``python -m broker.demo``, what ``make run`` starts) as the tests start, read and
stop it: in its own session, from a clean environment, its banner parsed, every process of its
group gone afterwards."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import REPO
from tests.support.signals import as_from_a_terminal

# Variables that would point the demo at other services or another identity: it must start
# its own embedded MongoDB and S3.
_FOREIGN_ENV = re.compile(r"^(BROKER_|MONGODB_URI$|AWS_)")


def start_demo(port: int, state: Path, log_path: Path, **settings: str) -> subprocess.Popen[str]:
    """``python -m broker.demo`` as ``make run`` starts it, from a clean environment.

    It runs in its own session, so it and what it starts form one process group to clean up
    (never more); stdout is a text pipe (the banner), stderr goes to ``log_path``.
    """
    env = {name: value for name, value in os.environ.items() if not _FOREIGN_ENV.match(name)}
    env.update(BROKER_PORT=str(port), BROKER_DEMO_DIR=str(state), PYTHONUNBUFFERED="1")
    env.update(settings)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "broker.demo"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
            preexec_fn=as_from_a_terminal,
        )


START_TIMEOUT_S = 90
_TOKEN_LINE = re.compile(r"^ {4}(\w+) +(?:roles: [\w, ]+|user) +(eyJ\S+)$")


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces and ")"
    return fields[0], int(fields[1]), fields[19]


def _alive(pid: int, started: str) -> bool:
    """Whether that very process (not a later one with its pid) still runs; zombies are dead."""
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[0] != "Z"


def port_in_use(port: int) -> bool:
    """Whether something on this machine listens on (or holds) the loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like any server binding it: connections still in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@dataclass
class DemoRun:
    """A running ``python -m broker.demo``: its process, what it printed, its ports."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path
    stdout: list[str] = field(default_factory=list)
    base_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    curl: str = ""
    mongo_port: int = 0
    s3_port: int = 0

    def api(self, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the API with the printed token of ``who``."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)

    def log(self) -> str:
        """Everything the demo logged so far (its stderr)."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        """Until a line of the log matches ``pattern``; fails with the log if none does."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.log(), re.MULTILINE)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no log line matched {pattern!r}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        return found

    def descendants(self) -> dict[int, str]:
        """Every process below the demo's (children, grandchildren…): pid → start time."""
        parents: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
                parents.setdefault(stat[1], []).append(int(entry.name))
        found: dict[int, str] = {}
        todo = list(parents.get(self.process.pid, []))
        while todo:
            pid = todo.pop()
            if (stat := _stat(pid)) is not None:
                found[pid] = stat[2]
                todo += parents.get(pid, [])
        return found

    def ports(self) -> dict[str, int]:
        """The ports the demo announced: the broker's, and the embedded MongoDB's and S3's."""
        return {"broker": self.port, "mongodb": self.mongo_port, "s3": self.s3_port}

    def stop(self, signum: signal.Signals, timeout: float = 60) -> int:
        """Send ``signum`` to the demo alone (not its group) and wait for it to exit."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


def survivors(processes: dict[int, str]) -> list[str]:
    """Those of ``processes`` still running, with their command lines."""
    left = []
    for pid, started in processes.items():
        if _alive(pid, started):
            with contextlib.suppress(OSError):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                left.append(f"{pid}: {command.decode(errors='replace')}")
    return left


def pump_lines(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Copy the demo's stdout into ``lines`` until it closes (then a None)."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def read_banner(run: DemoRun, lines: queue.Queue[str | None]) -> None:
    """Fill ``run`` from the banner: base URL, embedded services' ports, tokens, curl line."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not run.curl:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            pytest.fail(f"the demo printed no banner:\n{run.log()[-4000:]}")
        run.stdout.append(line)
        if match := re.search(r"Admin UI\s+(http://\S+)/admin/#token=", line):
            run.base_url = match.group(1)
        elif match := re.search(r"MongoDB\s+embedded mongodb://127\.0\.0\.1:(\d+)/", line):
            run.mongo_port = int(match.group(1))
        elif match := re.search(r"S3\s+embedded http://127\.0\.0\.1:(\d+)", line):
            run.s3_port = int(match.group(1))
        elif match := _TOKEN_LINE.match(line):
            run.tokens[match.group(1)] = match.group(2)
        elif line.lstrip().startswith("curl "):
            run.curl = line.strip()


def wait_until_serving(run: DemoRun) -> None:
    """Until the demo answers ``/healthz``; fails with its log if it dies or times out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(run.base_url + "/healthz", timeout=2).status_code == 200:
                return
        if run.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the demo is not serving /healthz:\n{run.log()[-4000:]}")
        time.sleep(0.1)


def clean_up(process: subprocess.Popen[str]) -> None:
    """The demo and everything in its process group end, whatever state the test left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # survivors of its group, if the test found any
    if process.poll() is None:
        process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
