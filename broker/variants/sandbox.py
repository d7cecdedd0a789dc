"""The renderer in a child process: a memory ceiling, a wall-clock limit, and crash isolation.

libvips is C: an allocation it cannot make aborts the process, a hostile file can hang or crash
a decoder, and a decode is not interruptible from Python. So the worker never renders in its own
process. A :class:`RenderSandbox` owns one child (started with ``spawn``: no inherited locks or
threads from the worker, pymongo's included) that imports libvips only after it has limited
itself: ``RLIMIT_AS`` (the memory ceiling), no core dumps, and death with its parent. The parent
sends one image at a time and waits at most the time limit; then it kills the child and starts a
new one for the next image. A child that dies (abort at the memory ceiling, a decoder crash) is
reported, never fatal. The child is also replaced after any failure (its heap may be fragmented
near the ceiling) and every ``max_renders`` images, so memory never creeps.

Failures are :class:`~broker.variants.results.RenderError`: permanent ones (the bytes cannot be
rendered within the limits) make the variants ``failed`` at once; transient ones (the sandbox
could not start, the system's OOM killer) are retried by the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from broker.variants.results import RenderedVariant, RenderError, Source
from broker.variants.spec import VariantSettings, VariantSpec

# Seconds a new child may take to import libvips and say it is ready.
STARTUP_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
# glibc's own default threshold, made fixed (see tune_allocator).
_MMAP_THRESHOLD = 128 * 1024


class RenderSandbox:
    """Renders images one at a time in a child process limited in memory and time."""

    def __init__(self, settings: VariantSettings, *, max_renders: int = 200) -> None:
        self.settings = settings
        self.max_renders = max_renders
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._renders = 0
        # The child's peak resident memory when it answered the last render (logs, metrics).
        self.last_peak_rss: int | None = None

    def __enter__(self) -> RenderSandbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def child_pid(self) -> int | None:
        """The process id of the current child, or None when none is running."""
        return self._process.pid if self._process is not None else None

    def child_peak_rss(self) -> int | None:
        """The current child's peak resident memory in bytes (Linux), or None."""
        pid = self.child_pid
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def render(
        self,
        source: Source,
        *,
        expected_type: str | None = None,
        specs: tuple[VariantSpec, ...] | None = None,
        on_wait: Callable[[], None] | None = None,
        wait_slice: float = 10.0,
    ) -> list[RenderedVariant]:
        """Render the variants of ``source`` in the child (``specs``, else every configured
        one), or raise a RenderError.

        While it waits, ``on_wait`` is called every ``wait_slice`` seconds (the worker extends
        its lease there); whatever it raises stops the child and propagates.
        """
        conn = self._ready_child()
        self.last_peak_rss = None
        job = (source if isinstance(source, bytes) else os.fspath(source), expected_type)
        settings = self.settings if specs is None else replace(self.settings, specs=specs)
        try:
            conn.send((job, settings))
        except OSError:
            self._stop()
            raise RenderError(
                "unavailable", "the render process went away", permanent=False
            ) from None
        timeout = self.settings.limits.timeout_seconds
        if not self._wait(conn, timeout, on_wait, wait_slice):
            self._stop()
            raise RenderError("time_limit", f"rendering took longer than {timeout:g} s")
        try:
            status, payload = conn.recv()
        except (EOFError, OSError):
            self.last_peak_rss = None
            raise self._death() from None
        self.last_peak_rss = self.child_peak_rss()
        self._renders += 1
        if status != "ok":
            self._stop()  # a fresh child for the next image, whatever this one went through
            raise (
                payload
                if isinstance(payload, RenderError)
                else RenderError(
                    "internal", "the render process answered nonsense", permanent=False
                )
            )
        if self._renders >= self.max_renders:
            self._stop()
        return list(payload)

    def close(self) -> None:
        """Stop the child, if any."""
        self._stop()

    def _wait(
        self,
        conn: Connection,
        timeout: float,
        on_wait: Callable[[], None] | None,
        wait_slice: float,
    ) -> bool:
        """Wait for the child's answer at most ``timeout`` s, calling ``on_wait`` between
        slices; whether the answer came."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if conn.poll(min(left, wait_slice) if on_wait is not None else left):
                return True
            if on_wait is not None:
                try:
                    on_wait()
                except BaseException:
                    self._stop()  # the render is abandoned: its child must not outlive it
                    raise

    def _ready_child(self) -> Connection:
        """The running child's connection, starting a child first if there is none."""
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn
        self._stop()
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(child_end, self.settings),
            name="broker-render",
            daemon=True,
        )
        try:
            process.start()
        except OSError as exc:
            raise RenderError(
                "unavailable", f"cannot start a render process: {exc.strerror}", permanent=False
            ) from None
        child_end.close()
        self._process, self._conn, self._renders = process, parent_end, 0
        try:
            ready = parent_end.poll(STARTUP_TIMEOUT) and parent_end.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._stop()
            raise RenderError(
                "unavailable",
                "the render process did not start (is BROKER_VARIANT_MEMORY_MB too low?)",
                permanent=False,
            )
        return parent_end

    def _death(self) -> RenderError:
        """Explain why the child died mid-render, and forget it."""
        process = self._process
        if process is not None:
            process.join(5)
        code = process.exitcode if process is not None else None
        self._stop()
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            if -code == signal.SIGKILL:
                # Not ours (we kill only on timeout, and say so): the system's OOM killer, most
                # likely, which is about the machine, not the image.
                return RenderError(
                    "crashed", "the render process was killed (SIGKILL)", permanent=False
                )
            return RenderError(
                "crashed",
                f"the decoder crashed ({name}); at the memory ceiling libvips aborts",
            )
        return RenderError(
            "crashed", f"the render process exited unexpectedly ({code})", permanent=False
        )

    def _stop(self) -> None:
        """Kill and reap the child (it holds no state worth a graceful stop)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(10)
            with contextlib.suppress(ValueError):
                process.close()


def _serve(conn: Connection, settings: VariantSettings) -> None:
    """The child: limit itself, import libvips, prove it works, then render what it receives."""
    _limit_self(settings.limits.memory_bytes)
    from broker.variants import render  # only now: libvips starts under the limits

    render.configure_libvips(settings.limits.threads)
    try:
        # A ceiling too low for libvips itself fails here, once, not as every image's fault.
        render.self_test(settings)
    except (render.RenderError, MemoryError):
        return
    conn.send("ready")
    while True:
        try:
            (source, expected_type), settings = conn.recv()
        except (EOFError, OSError):
            return
        answer: tuple[str, Any]
        try:
            answer = ("ok", render.render_variants(source, settings, expected_type=expected_type))
        except render.RenderError as exc:
            answer = ("error", exc)
        except MemoryError:
            answer = ("error", RenderError("memory_limit", "the image needs more memory"))
        except Exception as exc:  # a bug, not the image: the worker retries, then gives up
            answer = ("error", RenderError("internal", type(exc).__name__, permanent=False))
        release_memory()  # between images the child holds only what libvips itself needs
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return


def tune_allocator() -> None:
    """Set glibc's malloc up for a process that renders one large image after another.

    Two arenas: glibc reserves 64 MiB of address space per thread arena, and with libvips'
    threads that alone would eat the memory ceiling. A fixed mmap threshold: by default glibc
    raises it to the size of each large block freed (up to 32 MiB), so the next image's
    multi-megabyte pixel buffers come from the heap, fragment it, and every image leaves the
    peak a little higher (a 40 Mpx PNG's peak RSS: 71 MiB after one render, 120 MiB after six;
    with this and :func:`release_memory` between images, 73 MiB). A no-op off glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def release_memory() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``), after a render."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _limit_self(memory_bytes: int) -> None:
    """Memory ceiling, no core files, and die with the parent (Linux) even if it is killed."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    tune_allocator()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not glibc/Linux: the ceiling still holds, the child ends at its parent's EOF
