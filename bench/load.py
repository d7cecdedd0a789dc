"""HTTP load over loopback with ``wrk`` (Debian's package) and ``bench/wrk_report.lua``.

:func:`run_wrk` sends a fixed list of requests in turn (each with its own bearer token and
optional JSON body) for a warm-up and then a measured run, and returns requests/s and
p50/p90/p99 latency as wrk reports them from its ``done()`` hook, plus where the machine's CPU
went during the measured run (the broker, the database, wrk, and everything else: other work on
a shared machine skews the figures, and this says by how much).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("wrk_report.lua")
RESULT_PREFIX = "BENCH_RESULT "
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over every core."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                children.append(int(entry))
    return children


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds of the given processes and their children."""
    total = 0.0
    for pid in pids:
        total += process_cpu_seconds(pid)
        total += sum(process_cpu_seconds(child) for child in children_of(pid))
    return total


def _wrk_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class WrkRequest:
    """One request wrk sends in turn with the others."""

    method: str
    path: str
    token: str | None = None
    body: str | None = None

    def line(self) -> str:
        """The tab-separated line wrk_report.lua reads."""
        fields = (self.method, self.path, self.token or "", self.body or "")
        if any("\t" in field or "\n" in field for field in fields):
            raise ValueError("requests for wrk cannot hold tabs or newlines")
        return "\t".join(fields)


@dataclass(frozen=True)
class LoadResult:
    """What one measured wrk run saw."""

    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: dict[str, int]
    connections: int
    cpu_percent: dict[str, float] = field(default_factory=dict)
    # What ``counters`` counted during the measured run (the database's operations, by kind).
    counted: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The figures, JSON-ready."""
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests_per_s, 1),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "errors": self.errors,
            "connections": self.connections,
            "cpu_percent_of_machine": self.cpu_percent,
            "database_ops": self.counted,
        }


def ensure_wrk() -> str:
    """The path of ``wrk``, installing Debian's package first when it is missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            "wrk is missing; as root run: apt-get install -y --no-install-recommends wrk"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    print("installing wrk (apt-get)", flush=True)
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, check=True, capture_output=True, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is still missing after apt-get install")
    return found


def run_wrk(
    base_url: str,
    requests: list[WrkRequest],
    *,
    seconds: float = 10.0,
    warmup_seconds: float = 2.0,
    connections: int = 4,
    threads: int = 1,
    timeout_s: int = 10,
    cpu_of: dict[str, Callable[[], float]] | None = None,
    counters: Callable[[], dict[str, int]] | None = None,
) -> LoadResult:
    """Warm up, then load ``base_url`` with ``requests`` in turn; return the measured run.

    ``cpu_of`` names functions returning the CPU seconds of the processes under test (the
    broker, the database); the result says which share of the machine each took during the
    measured run, with wrk's and the rest ("other") beside them. ``counters`` returns running
    counts (the database's operations): the result keeps how much each grew during the run.
    """
    cpu_of = cpu_of or {}
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="broker-bench-wrk-") as tmp:
        requests_file = Path(tmp, "requests")
        requests_file.write_text("".join(request.line() + "\n" for request in requests))
        env = dict(os.environ, BENCH_REQUESTS_FILE=str(requests_file))

        def once(duration: float) -> dict[str, object]:
            command = [
                wrk,
                f"--threads={threads}",
                f"--connections={connections}",
                f"--duration={max(1, round(duration))}s",
                f"--timeout={timeout_s}s",
                f"--script={LUA_SCRIPT}",
                base_url,
            ]
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=duration + 60
            )
            for line in done.stdout.splitlines():
                if line.startswith(RESULT_PREFIX):
                    parsed: dict[str, object] = json.loads(line[len(RESULT_PREFIX) :])
                    return parsed
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

        if warmup_seconds > 0:
            once(warmup_seconds)
        counted_before = counters() if counters else {}
        busy_before, total_before = machine_cpu_seconds()
        ours_before = {name: read() for name, read in cpu_of.items()}
        wrk_before = _wrk_cpu_seconds()
        raw = once(seconds)
        busy_after, total_after = machine_cpu_seconds()
        capacity = max(total_after - total_before, 1e-9)
        cpu = {name: (read() - ours_before[name]) / capacity * 100 for name, read in cpu_of.items()}
        cpu["wrk"] = (_wrk_cpu_seconds() - wrk_before) / capacity * 100
        busy = (busy_after - busy_before) / capacity * 100
        cpu["other"] = max(0.0, busy - sum(cpu.values()))
        cpu["idle"] = 100 - busy
        counted = counters() if counters else {}
    latency = raw["latency_us"]
    errors = raw["errors"]
    assert isinstance(latency, dict) and isinstance(errors, dict)
    answered = int(str(raw["requests"]))
    elapsed = int(str(raw["duration_us"])) / 1e6
    return LoadResult(
        requests=answered,
        seconds=elapsed,
        requests_per_s=answered / elapsed if elapsed else 0.0,
        p50_ms=round(latency["p50"] / 1000, 3),
        p90_ms=round(latency["p90"] / 1000, 3),
        p99_ms=round(latency["p99"] / 1000, 3),
        mean_ms=round(latency["mean"] / 1000, 3),
        errors={name: int(count) for name, count in errors.items()},
        connections=connections,
        cpu_percent={name: round(value, 1) for name, value in cpu.items()},
        counted={name: value - counted_before.get(name, 0) for name, value in counted.items()},
    )
