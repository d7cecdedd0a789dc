"""The broker as it is run at scale: several hosts on one MongoDB and one bucket.

An :class:`Instance` is one host: ``gunicorn --workers 2 wsgi:app`` (``tests/support/gunicorn.py``,
configured by environment variables only, in production mode) plus the commands cron or a
supervisor runs on that host (``flask --app wsgi sweep``, ``flask --app wsgi worker --once``)
with the same environment. A :class:`Cluster` starts its instances at once, spreads requests
across them, runs a command on every host at the same moment, and stops everything it started.

Tests reach the API over real HTTP: :meth:`Instance.call` for one request, :attr:`Cluster.api`
for the upload flow of ``tests/support/upload.py`` with each request on the next instance (a
presign on one host, its confirm on the other, as a load balancer would spread them).
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests

from tests.support import REPO
from tests.support.gunicorn import Gunicorn, clean_environment
from tests.support.tokens import auth
from tests.support.upload import HttpAnswer, HttpApi, loopback_session

T = TypeVar("T")
FLASK = Path(sys.executable).with_name("flask")
# Requests at once on one host in on_every_worker: more than its workers, so each serves some.
PER_HOST = 8
# A command a host runs (a sweep, a worker pass) finishes well within this on loopback.
COMMAND_TIMEOUT_S = 120.0


@dataclass
class Instance:
    """One broker host: gunicorn with its workers, and the host's commands."""

    name: str
    env: dict[str, str]
    server: Gunicorn
    _local: threading.local = field(default_factory=threading.local, init=False)
    _sessions: list[requests.Session] = field(default_factory=list, init=False)

    @property
    def session(self) -> requests.Session:
        """This thread's keep-alive session with the host (a session is not thread-safe)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = loopback_session()
            self._sessions.append(session)
        return session

    @property
    def url(self) -> str:
        """The host's base URL."""
        return self.server.url

    @property
    def api(self) -> HttpApi:
        """This host's API for the upload flow."""
        return HttpApi(self.url, session=self.session)

    def call(
        self,
        method: str,
        path: str,
        *,
        sub: str = "alice",
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> requests.Response:
        """One request to this host as ``sub`` (or with ``headers``), on a keep-alive session."""
        return self.session.request(
            method,
            self.url + path,
            headers=dict(auth(sub) if headers is None else headers),
            timeout=30,
            **options,
        )

    def command(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``flask --app wsgi <args>`` on this host (its environment, ``env`` on top)."""
        return subprocess.Popen(
            [str(FLASK), "--app", "wsgi", *args],
            cwd=REPO,
            env={**clean_environment(), **self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> None:
        """Stop gunicorn and close the sessions."""
        for session in self._sessions:
            session.close()
        self.server.stop()


@dataclass(frozen=True)
class Finished:
    """What a command on one host did."""

    host: str
    returncode: int
    stdout: str
    stderr: str


@dataclass
class SpreadApi:
    """An API client whose every request goes to the next instance in turn."""

    instances: Sequence[Instance]
    _turns: Iterator[Instance] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(self.instances)

    def next(self) -> Instance:
        """The instance whose turn it is."""
        with self._lock:
            return next(self._turns)

    def post(self, path: str, *, json: Any, headers: Mapping[str, str]) -> HttpAnswer:
        """POST a JSON body to the next instance."""
        return self.next().api.post(path, json=json, headers=headers)


@dataclass
class Cluster:
    """Instances sharing one MongoDB database and one bucket (``settings`` are what they share)."""

    settings: dict[str, str]
    instances: list[Instance]
    api: SpreadApi = field(init=False)

    def __post_init__(self) -> None:
        self.api = SpreadApi(self.instances)

    def call(self, method: str, path: str, **options: Any) -> requests.Response:
        """One request to the next instance in turn (see :meth:`Instance.call`)."""
        return self.api.next().call(method, path, **options)

    def on_every_worker(
        self, method: str, path: str, *, per_host: int = PER_HOST, **options: Any
    ) -> dict[str, list[requests.Response]]:
        """The same request sent ``per_host`` times at once to every host (more than a host's
        workers, so each worker serves some); the answers by host name."""
        calls = [
            partial(instance.call, method, path, **options)
            for instance in self.instances
            for _ in range(per_host)
        ]
        answers = at_once(calls)
        return {
            instance.name: answers[n * per_host : (n + 1) * per_host]
            for n, instance in enumerate(self.instances)
        }

    def everywhere(self, *args: str, env: Mapping[str, str] | None = None) -> list[Finished]:
        """``flask --app wsgi <args>`` on every host at the same moment (cron on each), with
        ``env`` on top of the hosts' settings; each host's outcome, in the order of the hosts."""
        started = [(i.name, i.command(*args, env=env)) for i in self.instances]
        finished = []
        for host, process in started:
            try:
                stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            finished.append(Finished(host, process.returncode, stdout, stderr))
        return finished

    def stop(self) -> None:
        """Stop every instance (each stop is attempted even if one fails)."""
        with contextlib.ExitStack() as stack:
            for instance in self.instances:
                stack.callback(instance.stop)


def at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run the calls in threads released together; their results in order (a failure raises)."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(released, calls))


def start_cluster(
    settings: Mapping[str, str], log_dir: Path, *, hosts: int = 2, workers: int = 2
) -> Cluster:
    """``hosts`` instances of ``workers`` gunicorn workers each, all started at once, every one
    with ``settings``; returns when each answers ``/healthz`` (stops them all if one cannot)."""
    env = {"BROKER_ENV": "production", **settings}
    instances = [
        Instance(
            f"host{n}", dict(env), Gunicorn(dict(env), log_dir / f"host{n}.log", workers=workers)
        )
        for n in range(1, hosts + 1)
    ]
    cluster = Cluster(dict(settings), instances)
    try:
        at_once([instance.server.start for instance in instances])
    except BaseException:
        cluster.stop()
        raise
    return cluster


def statuses(answers: Mapping[str, Sequence[requests.Response]]) -> dict[str, set[int]]:
    """The statuses each host answered (of :meth:`Cluster.on_every_worker`'s answers)."""
    return {host: {a.status_code for a in host_answers} for host, host_answers in answers.items()}


def sleep_until(moment: float) -> None:
    """Sleep until ``time.time()`` reaches ``moment`` (a bound a test waits out, not a timing)."""
    time.sleep(max(0.0, moment - time.time()))
