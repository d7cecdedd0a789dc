"""The render sandbox: limits that hold, failures that are reported, a child that is replaced.

A hang is a FIFO nobody writes to (the child blocks opening it, as on a stuck mount); a crash is
a signal sent to the child while it waits there. No assertion depends on how fast anything is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from broker.settings import load_settings
from broker.variants.render import RenderError
from broker.variants.sandbox import RenderSandbox
from broker.variants.spec import RenderLimits, VariantSettings
from tests.variants import craft


def settings(max_pixels: int = 40_000_000, **env: str) -> VariantSettings:
    """Variant settings from environment-style keyword arguments."""
    source = {"BROKER_ENV": "test", "BROKER_MAX_PIXELS": str(max_pixels), **env}
    return load_settings(source).variant_settings


@pytest.fixture
def sandbox() -> Iterator[RenderSandbox]:
    """A sandbox with the default settings, closed after the test."""
    with RenderSandbox(settings()) as box:
        yield box


def _failure(box: RenderSandbox, source: bytes | Path) -> RenderError:
    with pytest.raises(RenderError) as caught:
        box.render(source)
    return caught.value


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` is left (reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_renders_in_a_child_that_is_reused_then_recycled() -> None:
    with RenderSandbox(settings(), max_renders=2) as box:
        first = box.render(craft.camera_jpeg(800, 600, orientation=6))
        assert [(v.name, v.width, v.height) for v in first] == [
            ("thumb", 240, 320),
            ("medium", 600, 800),
        ]
        pid = box.child_pid
        assert pid is not None and pid != os.getpid()
        box.render(craft.plain(10, 10))
        assert box.child_pid is None  # two renders: replaced before the next image
        box.render(craft.plain(10, 10))
        assert box.child_pid not in (None, pid)
        assert _gone(pid)
    assert box.child_pid is None


def test_forty_megapixel_png_within_the_default_limits(sandbox: RenderSandbox) -> None:
    variants = sandbox.render(craft.large_png(8000, 5000))
    assert [(v.width, v.height) for v in variants] == [(320, 200), (1280, 800)]


def test_forty_megapixel_avif_within_the_default_memory_ceiling(sandbox: RenderSandbox) -> None:
    # AVIF is the hungriest accepted format: libheif decodes the whole picture, then converts it.
    variants = sandbox.render(craft.avif(8000, 5000))
    assert [(v.width, v.height) for v in variants] == [(320, 200), (1280, 800)]


@pytest.mark.parametrize(
    "bomb",
    [craft.png_bomb(50000, 50000), craft.png_bomb(30000, 30000), craft.gif_bomb(50000, 50000)],
)
def test_bombs_fail_from_the_header_with_bounded_memory(
    sandbox: RenderSandbox, bomb: bytes
) -> None:
    sandbox.render(craft.plain(10, 10))
    pid = sandbox.child_pid
    error = _failure(sandbox, bomb)
    assert (error.code, error.permanent) == ("too_many_pixels", True)
    assert pid is not None and _gone(pid)  # replaced after a failure
    sandbox.render(craft.plain(10, 10))
    peak = sandbox.child_peak_rss()
    assert peak is not None and peak < 300 << 20


def test_the_memory_ceiling_holds_and_the_next_image_renders() -> None:
    # Adam7 PNGs cannot be streamed: an 8000x8000 16-bit RGBA one needs 488 MiB at once. Under
    # the pixel limit here, so only the 320 MiB ceiling stands in its way.
    chosen = settings(max_pixels=100_000_000, BROKER_VARIANT_MEMORY_MB="320")
    with RenderSandbox(chosen) as box:
        error = _failure(box, craft.interlaced_png(8000, 8000, deep=True))
        assert error.code in ("memory_limit", "crashed")
        assert error.permanent
        assert len(box.render(craft.plain(10, 10))) == 2
    # The default ceiling decodes an 8-bit one of the same size (183 MiB held at once).
    roomy = settings(max_pixels=100_000_000)
    with RenderSandbox(roomy) as box:
        variants = box.render(craft.interlaced_png(8000, 8000))
        assert [(v.width, v.height) for v in variants] == [(320, 320), (1280, 1280)]


@contextlib.contextmanager
def _hanging_source(tmp_path: Path) -> Iterator[Path]:
    """A FIFO: the child blocks forever opening it for reading, as on a wedged file system."""
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    yield fifo


def _wait_for_reader(fifo: Path) -> int:
    """Wait until the child has the FIFO open (opening the write end then succeeds)."""
    for _ in range(12000):  # a bound, not a timing assertion: two minutes of 10 ms naps
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            threading.Event().wait(0.01)
    raise AssertionError("the render child never opened the source")


def test_a_hang_is_killed_at_the_time_limit(tmp_path: Path) -> None:
    with (
        _hanging_source(tmp_path) as fifo,
        RenderSandbox(settings(BROKER_VARIANT_TIMEOUT="1")) as box,
    ):
        box.render(craft.plain(10, 10))
        pid = box.child_pid
        error = _failure(box, fifo)
        assert (error.code, error.permanent) == ("time_limit", True)
        assert error.message == "rendering took longer than 1 s"
        assert pid is not None and _gone(pid)
        assert len(box.render(craft.plain(10, 10))) == 2


@pytest.mark.parametrize(
    ("sig", "permanent"), [(signal.SIGSEGV, True), (signal.SIGABRT, True), (signal.SIGKILL, False)]
)
def test_a_dead_child_is_reported_and_replaced(
    tmp_path: Path, sig: signal.Signals, permanent: bool
) -> None:
    with _hanging_source(tmp_path) as fifo, RenderSandbox(settings()) as box:
        box.render(craft.plain(10, 10))
        pid = box.child_pid
        assert pid is not None
        outcome: list[RenderError] = []

        def render() -> None:
            try:
                box.render(fifo)
            except RenderError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=render)
        worker.start()
        writer = _wait_for_reader(fifo)  # the child is inside render_variants now
        os.kill(pid, sig)
        worker.join(30)
        os.close(writer)
        assert not worker.is_alive()
        (error,) = outcome
        assert (error.code, error.permanent) == ("crashed", permanent)
        assert sig.name in error.message
        assert _gone(pid)
        assert len(box.render(craft.plain(10, 10))) == 2


def test_truncated_original_fails_permanently(sandbox: RenderSandbox) -> None:
    original = craft.camera_jpeg(1600, 1200)
    error = _failure(sandbox, original[: len(original) // 2])
    assert (error.code, error.permanent) == ("undecodable", True)


def test_a_child_that_cannot_start_is_a_transient_failure() -> None:
    # 32 MiB of address space cannot even hold the interpreter and libvips.
    starved = settings()
    starved = VariantSettings(
        specs=starved.specs,
        format=starved.format,
        quality=starved.quality,
        effort=starved.effort,
        limits=RenderLimits(max_pixels=40_000_000, memory_bytes=32 << 20, timeout_seconds=5),
    )
    with RenderSandbox(starved) as box:
        error = _failure(box, craft.plain(10, 10))
    assert (error.code, error.permanent) == ("unavailable", False)


def test_a_file_path_is_rendered_in_the_child(sandbox: RenderSandbox, tmp_path: Path) -> None:
    path = tmp_path / "original.webp"
    path.write_bytes(craft.animated("webp", 300, 150))
    thumb, _medium = sandbox.render(path, expected_type="image/webp")
    assert (thumb.width, thumb.height, thumb.frames) == (300, 150, 3)
    assert pyvips.Image.new_from_buffer(thumb.data, "", n=-1).get("n-pages") == 3
    error = _failure_typed(sandbox, path, "image/gif")
    assert error.code == "undecodable"


def _failure_typed(box: RenderSandbox, source: Path, expected_type: str) -> RenderError:
    with pytest.raises(RenderError) as caught:
        box.render(source, expected_type=expected_type)
    return caught.value
