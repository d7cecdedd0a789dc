"""Fixtures that start the demo exactly as ``make run`` does: ``python -m broker.demo``.

``run_demo`` starts one on free ports with its own state directory, in its own session (so it
and whatever it starts form one process group), reads what it prints, and waits until it
serves ``/healthz``. Whatever happens in the test, the demo and every process of its group are
gone afterwards: SIGTERM first, then SIGKILL to the whole group (``tests/support/demo.py``).

Tests using it carry ``pytestmark = pytest.mark.demo``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.devservers import free_port
from tests.support.demo import (
    DemoRun,
    clean_up,
    pump_lines,
    read_banner,
    start_demo,
    wait_until_serving,
)


@pytest.fixture
def launch_demo(tmp_path: Path) -> Iterator[Callable[..., DemoRun]]:
    """Start ``python -m broker.demo`` (settings as keyword arguments); nothing is waited for."""
    runs: list[DemoRun] = []

    def launch(**settings: str) -> DemoRun:
        state = tmp_path / f"demo-{len(runs)}"
        state.mkdir()
        port = free_port()
        log_path = state / "demo.log"
        process = start_demo(port, state, log_path, **settings)
        run = DemoRun(process=process, port=port, log_path=log_path)
        runs.append(run)
        return run

    yield launch
    for run in runs:
        clean_up(run.process)


@pytest.fixture
def run_demo(launch_demo: Callable[..., DemoRun]) -> Callable[..., DemoRun]:
    """Start the demo and wait until it has printed its banner and serves ``/healthz``."""

    def run(**settings: str) -> DemoRun:
        demo = launch_demo(**settings)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=pump_lines, args=(demo.process, lines), daemon=True).start()
        read_banner(demo, lines)
        wait_until_serving(demo)
        return demo

    return run
