"""Two requests made to race deterministically: each held at one call until both reach it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

TIMEOUT = 60
RACERS = 2


def both_at(target: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold the first two calls of ``target.name`` until both have been made, then let them on
    (so neither request gets past that point before the other has reached it)."""
    barrier = threading.Barrier(RACERS, timeout=TIMEOUT)
    real = getattr(target, name)
    held = iter(range(RACERS))
    lock = threading.Lock()

    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            hold = next(held, None) is not None
        if hold:
            barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, call)


def together(call: Callable[[], Any]) -> list[Any]:
    """``call`` from two threads at once (make each request with its own test client)."""
    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        futures = [pool.submit(call) for _ in range(RACERS)]
        return [future.result(timeout=TIMEOUT) for future in futures]
