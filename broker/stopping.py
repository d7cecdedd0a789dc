"""Stop signals as a request to stop, for the processes the broker runs itself (the demo, the
variant worker): SIGINT, SIGTERM and SIGHUP are recorded when they arrive and waited for where
the main loop chooses, so none of them can cut a step in half.

The handlers only write the signal's number to a pipe (the self-pipe trick): a signal never
interrupts the code it arrives in, and a wait wakes at once when one comes. A signal the process
was started ignoring (``nohup``, a background job in a script) stays ignored, as Unix tools do.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP as requests to stop; use it as a context manager."""

    def __enter__(self) -> StopSignals:
        self.received: str | None = None  # the name of the first stop signal, once one came
        self.count = 0  # stop signals received so far: a second one means "now"
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous = {
            signum: signal.signal(signum, self._record)
            for signum in STOP_SIGNALS
            if signal.getsignal(signum) is not signal.SIG_IGN
        }
        return self

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signal.Signals(signum).name
        self.count += 1
        with contextlib.suppress(BlockingIOError):  # a full pipe already holds a stop request
            os.write(self._write, bytes([signum]))

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until a stop signal arrives (at once if one came already), at most ``timeout``
        seconds; the signal's name, or None when the time ran out first."""
        if self.received is not None:
            return self.received
        ready, _, _ = select.select([self._read], [], [], timeout)
        if not ready:
            return None
        return signal.Signals(os.read(self._read, 1)[0]).name

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self._read)
        os.close(self._write)
