"""gunicorn settings for ``bench/profile_worker.py``: the repository's, plus a switchable cProfile.

Loaded with ``--config`` (through ``GUNICORN_CMD_ARGS``), which replaces the repository's
``gunicorn.conf.py``: that file is executed here first, so its limits still apply. The hook
arms each worker after it loaded the app: ``SIGUSR2`` to the worker starts a profile, the next
``SIGUSR2`` stops it and writes it to the file ``BENCH_WORKER_PROFILE`` names (whole, by rename,
so the caller can wait for it). The profiler runs only between the two signals, so the start-up,
the readiness check and the warm-up are not in it, and it counts CPU time, so waits are not either.
"""

from __future__ import annotations

import cProfile
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

_REPOSITORY_SETTINGS = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
exec(compile(_REPOSITORY_SETTINGS.read_text(), str(_REPOSITORY_SETTINGS), "exec"))

PROFILE_FILE = "BENCH_WORKER_PROFILE"


def post_worker_init(worker: Any) -> None:
    """Let ``SIGUSR2`` turn a cProfile of this worker on, and then off and to its file."""
    out = os.environ[PROFILE_FILE]
    # CPU time of the worker's thread, not the wall clock: on a shared machine a worker is often
    # off its core (wrk, other work), and that time would land in whatever call was running.
    profiler = cProfile.Profile(time.thread_time)
    running = [False]

    def toggle(signum: int, frame: FrameType | None) -> None:
        if not running[0]:
            running[0] = True
            profiler.enable()
            return
        profiler.disable()
        running[0] = False
        partial = f"{out}.part"
        profiler.dump_stats(partial)
        os.replace(partial, out)

    # gunicorn leaves SIGUSR2 at its default in workers (which would end the process).
    signal.signal(signal.SIGUSR2, toggle)
