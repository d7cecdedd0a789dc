"""The variant worker: ``flask --app wsgi worker`` (until SIGTERM or SIGINT) and ``--once``.

One loop: catch up on images without current variants (at start, then every few minutes),
claim a job, make its variants (:func:`broker.variants.service.make_variants`), repeat. The
renderer runs in a sandboxed child process (:class:`broker.variants.sandbox.RenderSandbox`)
owned by this process's main thread, so the child dies with the worker whatever kills it.

- A stop signal lets the current job finish (it is bounded by ``BROKER_VARIANT_TIMEOUT`` and
  the S3 timeouts), then the worker exits 0; a second one puts the job back at once and exits.
- MongoDB or S3 down: the job goes back (the try not counted) and the worker waits, doubling
  its pause up to half a minute, then resumes by itself. ``--once`` gives up instead (exit 1)
  and leaves the work queued for the next run.
- The lease is renewed between the steps of a job and every third of it while the render
  runs; a worker that finds its lease taken over (it was stalled past it) drops the job.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from broker import domain
from broker.db.variant_jobs import Job
from broker.errors import Unavailable
from broker.extension import Broker
from broker.stopping import StopSignals
from broker.variants import service
from broker.variants.results import RenderedVariant
from broker.variants.sandbox import RenderSandbox
from broker.variants.service import KeepAlive, LostClaim, Renderer
from broker.variants.spec import VariantSpec

log = logging.getLogger(__name__)

# Seconds between looks at an empty queue (a new upload waits at most this long).
IDLE_POLL = 2.0
# Seconds between catch-ups (images confirmed while the queue could not be written, settings
# changed by another deployment).
CATCH_UP_EVERY = 300.0
# The pause after a backing service failed: doubled each time, at most this long.
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 30.0
# Seconds between looks at the stop signals (and the lease) while a render runs.
RENDER_WAIT_SLICE = 0.5


class Abort(Exception):
    """A second stop signal: put the job back and stop now."""


class OnceUnavailable(Exception):
    """``--once`` met an unreachable MongoDB or S3: the work stays queued for the next run."""


@dataclass
class Tally:
    """What a run did, for its last log line and for ``--once``'s caller."""

    made: int = 0
    failed: int = 0
    gone: int = 0
    retried: int = 0
    caught_up: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)


class Worker:
    """Claims and makes variant jobs until stopped (or, with ``once``, until none is due)."""

    def __init__(self, broker: Broker, *, once: bool = False, idle_poll: float = IDLE_POLL) -> None:
        self.broker = broker
        self.once = once
        self.idle_poll = idle_poll
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.tally = Tally()
        self._pause = FIRST_PAUSE
        self._next_catch_up = 0.0

    def run(self) -> Tally:
        """Work until a stop signal (or, with ``once``, until nothing is due); the tally.

        Raises OnceUnavailable when ``once`` could not reach MongoDB or S3.
        """
        settings = self.broker.settings
        lease = float(settings.variant_lease)
        log.info(
            "worker started",
            extra={"worker": self.name, "once": self.once, "variants": len(settings.variants)},
        )
        with (
            StopSignals() as signals,
            RenderSandbox(settings.variant_settings) as sandbox,
            tempfile.TemporaryDirectory(prefix="broker-worker-") as workdir,
        ):
            while signals.received is None:
                try:
                    self._catch_up_when_due()
                    job = self.broker.db.variant_jobs.claim(domain.utcnow(), lease, self.name)
                except Unavailable as e:
                    self._wait_out(e, signals)
                    continue
                if job is None:
                    if self.once:
                        break
                    signals.wait(self.idle_poll)
                    continue
                try:
                    self._work(job, sandbox, signals, Path(workdir))
                except Abort:
                    self._put_back(job)
                    break
                except Unavailable as e:
                    self._wait_out(e, signals)
                    continue
                self._pause = FIRST_PAUSE
        log.info(
            "worker stopped",
            extra={
                "worker": self.name,
                "made": self.tally.made,
                "failed": self.tally.failed,
                "retried": self.tally.retried,
                "gone": self.tally.gone,
            },
        )
        return self.tally

    def _catch_up_when_due(self) -> None:
        if time.monotonic() < self._next_catch_up:
            return
        queued = service.catch_up(self.broker)
        self.tally.caught_up += queued
        if queued:
            log.info("catch-up queued images", extra={"worker": self.name, "queued": queued})
        self._next_catch_up = time.monotonic() + CATCH_UP_EVERY

    def _work(self, job: Job, sandbox: RenderSandbox, signals: StopSignals, workdir: Path) -> None:
        started = time.monotonic()
        sandbox.last_peak_rss = None
        keep_alive = self._keep_alive(job, signals)
        render = self._renderer(job, sandbox, keep_alive)
        try:
            outcome = service.make_variants(self.broker, job, render, keep_alive, workdir)
        except (Abort, Unavailable):
            raise
        except Exception:  # a bug, not the image: retried with backoff, then given up on
            log.exception("job failed unexpectedly", extra={"image": job.image_id})
            delay = service.retry_delay(job.attempts, self.broker.settings.variant_retry_delay)
            service.release_job(self.broker, job, delay, "internal: unexpected error", counts=True)
            self.tally.retried += 1
            return
        self._count(job, outcome)
        log.info(
            "variants %s",
            outcome.result,
            extra={
                "worker": self.name,
                "image": job.image_id,
                "outcome": outcome.result,
                "names": list(outcome.names),
                "attempt": job.attempts,
                "seconds": round(time.monotonic() - started, 3),
                "render_peak_rss_mb": _mib(sandbox.last_peak_rss),
                "detail": outcome.detail,
            },
        )

    def _count(self, job: Job, outcome: service.Outcome) -> None:
        tally = self.tally
        tally.outcomes[job.image_id] = outcome.result
        if outcome.result == "made":
            tally.made += 1
        elif outcome.result == "failed":
            tally.failed += 1
        elif outcome.result == "gone":
            tally.gone += 1
        elif outcome.result == "retry":
            tally.retried += 1

    def _keep_alive(self, job: Job, signals: StopSignals) -> KeepAlive:
        """The job's keep-alive: renews the lease every third of it; raises Abort on a second
        stop signal and LostClaim when another worker holds the job now."""
        lease = float(self.broker.settings.variant_lease)
        renewed = time.monotonic()
        heard = 0

        def keep_alive() -> None:
            nonlocal renewed, heard
            if signals.count >= 2:
                raise Abort
            if signals.count > heard:
                heard = signals.count
                log.info(
                    "stop requested: finishing the current job (a second signal puts it back)",
                    extra={"worker": self.name, "image": job.image_id, "signal": signals.received},
                )
            if time.monotonic() - renewed < lease / 3:
                return
            if not self.broker.db.variant_jobs.heartbeat(job, domain.utcnow(), lease):
                raise LostClaim
            renewed = time.monotonic()

        return keep_alive

    def _renderer(self, job: Job, sandbox: RenderSandbox, keep_alive: KeepAlive) -> Renderer:
        # Short slices: a second stop signal is heard within one (renewing the lease is
        # cheap to skip, it happens every third of the lease).
        slice_seconds = min(RENDER_WAIT_SLICE, self.broker.settings.variant_lease / 3)

        def render(
            path: Path, content_type: str, specs: tuple[VariantSpec, ...]
        ) -> list[RenderedVariant]:
            # Where a long job stands, for an operator (and a test): the original is in and
            # goes to the render process; the next look at the stop signals is the render's wait.
            log.debug("render started", extra={"worker": self.name, "image": job.image_id})
            return sandbox.render(
                path,
                expected_type=content_type,
                specs=specs,
                on_wait=keep_alive,
                wait_slice=slice_seconds,
            )

        return render

    def _put_back(self, job: Job) -> None:
        """A second stop signal: the job is due again at once, the try not counted."""
        service.release_job(self.broker, job, 0.0, "the worker was stopped", counts=False)
        log.info("job put back", extra={"worker": self.name, "image": job.image_id})

    def _wait_out(self, error: Unavailable, signals: StopSignals) -> None:
        """A backing service is down: ``--once`` gives up, the long-running worker waits."""
        if self.once:
            raise OnceUnavailable(error.message)
        log.warning(
            "waiting for MongoDB and S3",
            extra={"worker": self.name, "pause": self._pause, "error": error.message},
        )
        signals.wait(self._pause)
        self._pause = min(self._pause * 2, LONGEST_PAUSE)


def _mib(size: int | None) -> float | None:
    """Bytes as MiB for a log line (None stays None)."""
    return None if size is None else round(size / (1 << 20), 1)
