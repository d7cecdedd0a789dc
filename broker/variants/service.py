"""Variants' use cases: queue an image's variants, catch up on images without them, make one
image's variants (stream the original from the bucket, render, store, record), and clean up the
variant objects of images that are gone.

The API process only ever calls :func:`image_recorded` (a queue write, no bytes); everything
else runs in the worker (:mod:`broker.variants.worker`) and the sweeper.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from broker import domain
from broker.db.variant_jobs import Job
from broker.domain import Image
from broker.errors import Unavailable
from broker.extension import Broker
from broker.storage import ObjectChanged, ObjectTooLarge, StorageNotFound
from broker.variants import records
from broker.variants.records import Variant
from broker.variants.results import RenderedVariant, RenderError
from broker.variants.spec import VariantSpec

log = logging.getLogger(__name__)

# Renders the original at a path (its recorded type given) into the variants of the specs.
Renderer = Callable[[Path, str, tuple[VariantSpec, ...]], list[RenderedVariant]]
# Called between the steps of a job and while it waits: extends the lease, or raises to stop.
KeepAlive = Callable[[], None]

# The longest wait before a retry, whatever the attempt.
MAX_RETRY_DELAY = 3600.0
# The largest original the worker reads: what confirm accepts, and multipart's 5 GiB parts
# at most; a record claiming more is not streamed at all.
MIN_DOWNLOAD_CAP = 256 << 20


class LostClaim(Exception):
    """The job's lease was taken over by another worker: this one must stop touching it."""


@dataclass(frozen=True)
class Outcome:
    """What one job came to: ``made``, ``failed``, ``gone`` (the image was deleted),
    ``retry`` (transient; due again later) or ``lost`` (another worker holds it now)."""

    result: str
    names: tuple[str, ...] = ()
    detail: str | None = None


# ---- the API side -------------------------------------------------------------------------------


def image_recorded(broker: Broker, image: Image) -> None:
    """Queue the variants of an image just recorded: the one call confirm and multipart
    complete make (also on a replayed confirm, which queues only what is still to be made).

    Best effort: when the queue write fails the image is recorded all the same, and the
    worker's catch-up finds it (its variants are not completed for the current settings).
    """
    settings = broker.settings
    if not records.to_render(image.variants, settings.variants, settings.variant_format):
        return
    try:
        broker.db.variant_jobs.enqueue(image.id, image.key, domain.utcnow())
    except Unavailable:
        log.warning("variants of image %s not queued now; the worker's catch-up will", image.id)


# ---- the worker side ----------------------------------------------------------------------------


def current_fingerprint(broker: Broker) -> str:
    """The fingerprint of the variant settings this process runs with."""
    return records.fingerprint(broker.settings.variants, broker.settings.variant_format)


def catch_up(broker: Broker, *, batch: int = 500) -> int:
    """Queue a job for every live image whose variants are not completed for the current
    settings and that has none queued (after enabling variants or changing them); how many."""
    if not broker.settings.variants:
        return 0
    fingerprint = current_fingerprint(broker)
    queued, after = 0, None
    while True:
        found = broker.db.images.outdated(fingerprint, after, batch)
        if not found:
            return queued
        queued += broker.db.variant_jobs.enqueue_missing(found, domain.utcnow())
        after = found[-1][0]


def retry_delay(attempts: int, base: float) -> float:
    """Seconds before the next try of an image that failed ``attempts`` times: doubled each
    time, at most an hour, ±20 % so retries of many images do not arrive together."""
    delay = min(base * 2.0 ** max(attempts - 1, 0), MAX_RETRY_DELAY)
    return float(delay * random.uniform(0.8, 1.2))


def make_variants(
    broker: Broker, job: Job, render: Renderer, keep_alive: KeepAlive, workdir: Path
) -> Outcome:
    """Make the variants of a claimed job's image, store them and record them; the outcome.

    Transient failures (MongoDB or S3 down, a render process killed by the system) put the job
    back with a delay and nothing is lost; an original that cannot be rendered makes its
    variants ``failed`` at once; an image that went away leaves no variant object behind.
    """
    settings = broker.settings
    jobs = broker.db.variant_jobs
    try:
        image = broker.db.images.for_variants(job.image_id)
        if image is None:
            remove_variant_objects(broker, job.key)
            jobs.finish(job)
            return Outcome("gone")
        if job.attempts > settings.variant_max_attempts:
            reason = f"gave up after {job.attempts - 1} attempts: {job.last_error or 'unknown'}"
            return _fail(broker, job, image, RenderError("gave_up", reason))
        return _make(broker, job, image, render, keep_alive, workdir)
    except LostClaim:
        # Another worker holds the job now and writes the same keys: touch nothing.
        return Outcome("lost")
    except Unavailable as e:
        # Not the image's fault: the try is given back and the job is due again at once; the
        # worker pauses before claiming (so does any other, on the same outage).
        release_job(broker, job, 0.0, e.message, counts=False)
        raise
    except RenderError as e:  # transient (permanent ones were recorded as failed)
        delay = retry_delay(job.attempts, settings.variant_retry_delay)
        release_job(broker, job, delay, f"{e.code}: {e.message}", counts=True)
        return Outcome("retry", detail=f"{e.code}: {e.message}")


def _make(
    broker: Broker, job: Job, image: Image, render: Renderer, keep_alive: KeepAlive, workdir: Path
) -> Outcome:
    """The steps of one job once its image is known to be there."""
    settings = broker.settings
    fmt = settings.variant_format
    wanted = tuple(records.to_render(image.variants, settings.variants, fmt))
    dropped = records.unconfigured(image.variants, settings.variants)
    made: dict[str, Variant] = {}
    if wanted:
        try:
            rendered = _render_original(broker, image, wanted, render, keep_alive, workdir)
        except RenderError as e:
            if not e.permanent:
                raise
            return _fail(broker, job, image, e)
        by_name = {spec.name: spec for spec in wanted}
        for variant in rendered:
            spec = by_name[variant.name]
            key = records.variant_key(image.key, spec, fmt)
            keep_alive()
            broker.bucket.put_derived(
                key,
                variant.data,
                content_type=variant.content_type,
                cache_control=records.STORED_CACHE_CONTROL,
            )
            made[spec.name] = Variant(
                state=records.READY,
                key=key,
                content_type=variant.content_type,
                width=variant.width,
                height=variant.height,
                size=variant.size,
                digest=records.spec_digest(spec, fmt),
            )
    keep_alive()
    if not broker.db.images.record_variants(image, made, dropped, current_fingerprint(broker)):
        # Deleted while we worked: its delete may have listed the prefix before our PUTs.
        remove_variant_objects(broker, image.key, [v.key for v in made.values() if v.key])
        broker.db.variant_jobs.finish(job)
        return Outcome("gone")
    kept = {name: v for name, v in {**image.variants, **made}.items() if name not in dropped}
    for key in records.superseded_keys(image.variants, kept):
        broker.bucket.delete(key)
    broker.db.variant_jobs.finish(job)
    return Outcome("made", tuple(sorted(made)))


def _render_original(
    broker: Broker,
    image: Image,
    wanted: tuple[VariantSpec, ...],
    render: Renderer,
    keep_alive: KeepAlive,
    workdir: Path,
) -> list[RenderedVariant]:
    """Stream the original (exactly the recorded object) to a file and render it."""
    cap = max(image.size, MIN_DOWNLOAD_CAP)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix="original-") as original:
        try:
            broker.bucket.download(
                image.key, original.file, etag=image.etag, max_bytes=cap, progress=keep_alive
            )
        except StorageNotFound:
            raise RenderError("original_missing", "the original is not in the bucket") from None
        except ObjectChanged:
            raise RenderError(
                "original_changed", "the bucket holds another object than the one recorded"
            ) from None
        except ObjectTooLarge:
            raise RenderError("too_large", f"the original is over {cap} bytes") from None
        original.flush()
        keep_alive()
        return render(Path(original.name), image.content_type, wanted)


def _fail(broker: Broker, job: Job, image: Image, error: RenderError) -> Outcome:
    """Record every variant still to make as ``failed`` (the original still serves)."""
    settings = broker.settings
    fmt = settings.variant_format
    wanted = records.to_render(image.variants, settings.variants, fmt)
    failed = {
        spec.name: Variant(
            state=records.FAILED,
            digest=records.spec_digest(spec, fmt),
            error_code=error.code,
            error_message=error.message,
        )
        for spec in wanted
    }
    dropped = records.unconfigured(image.variants, settings.variants)
    if not broker.db.images.record_variants(image, failed, dropped, current_fingerprint(broker)):
        remove_variant_objects(broker, image.key)
    broker.db.variant_jobs.finish(job)
    return Outcome("failed", tuple(sorted(failed)), f"{error.code}: {error.message}")


def release_job(broker: Broker, job: Job, delay: float, error: str, *, counts: bool) -> None:
    """Put the job back, due after ``delay`` s (``counts``: the try counts towards the limit);
    if MongoDB is down too, its lease runs out and another claim takes it over."""
    try:
        broker.db.variant_jobs.release(
            job, domain.utcnow() + timedelta(seconds=delay), error, counts=counts
        )
    except Unavailable:
        log.warning("job of image %s not released: it is taken over after its lease", job.image_id)


# ---- clean-up ---------------------------------------------------------------------------------


def remove_variant_objects(
    broker: Broker, original_key: str | None, known: Iterable[str] = ()
) -> int:
    """Delete every object under the variant prefix of ``original_key``, and the ``known``
    variant keys (recorded or just stored: a listing need not show them yet), each once; how
    many."""
    keys = set(known)
    if original_key:
        keys.update(
            stored.key for stored in broker.bucket.list_keys(records.variant_prefix(original_key))
        )
    for key in sorted(keys):
        broker.bucket.delete(key)
    return len(keys)


# An orphan is only judged after this long: a worker may have PUT it a moment ago and be about
# to record it (a job never takes longer than its timeout plus a lease or two).
ORPHAN_GRACE = timedelta(hours=1)


def sweep_orphans(broker: Broker, *, limit: int = 1000, grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete variant objects whose image is gone (a worker killed between its PUT and its
    record, a delete interrupted before the variants went); how many were deleted.

    Walks ``limit`` objects of the variant prefix per call, from where the last call stopped,
    and starts again from the first once it reached the end: every object is looked at within
    a bounded number of sweeps, and one sweep costs one listing page and one query. Objects
    younger than ``grace`` are left alone (a worker may be about to record them).
    """
    jobs = broker.db.variant_jobs
    after = jobs.orphan_walk_position()
    found = broker.bucket.list_keys(records.KEY_PREFIX, after=after, limit=limit)
    old_enough = domain.utcnow() - grace
    stems = {
        stem
        for stored in found
        if stored.last_modified < old_enough and (stem := records.stem_of(stored.key))
    }
    extensions = tuple(domain.KNOWN_IMAGE_TYPES.values())
    candidates = [
        key for stem in stems for key in records.original_key_candidates(stem, extensions)
    ]
    recorded = broker.db.images.recorded_keys(candidates)
    live_stems = {records.original_stem(key) for key in recorded}
    deleted = 0
    for stored in found:
        stem = records.stem_of(stored.key)
        if stem in stems and stem not in live_stems:
            broker.bucket.delete(stored.key)
            deleted += 1
    jobs.set_orphan_walk_position(found[-1].key if len(found) == limit else "")
    return deleted
