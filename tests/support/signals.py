"""Starting the broker's own processes in tests as a person starts them from a terminal.

A shell running a command in the background without job control (``cmd &`` in a script,
``nohup``) makes it ignore SIGINT, and every process it starts inherits that; the broker's
processes (the demo, the variant worker) rightly keep a stop signal they were started ignoring
ignored, as Unix tools do. A suite run that way would then see a worker deaf to the Ctrl-C a
test sends it, so the tests start them with the stop signals' default dispositions.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def as_from_a_terminal() -> None:
    """(A ``preexec_fn``.) Give the child the default disposition of every stop signal."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def ignores_sigint(pid: int) -> bool:
    """Whether process ``pid`` ignores SIGINT (False when there is no such process)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    match = re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.MULTILINE)
    return bool(match and int(match.group(1), 16) & (1 << (signal.SIGINT - 1)))
