"""The variant settings: which variants to make, in which format, within which limits.

The parsers and the frozen dataclasses the renderer takes. The environment variables are
declared once, with the broker's other settings, in :mod:`broker.settings` (which builds a
:class:`VariantSettings` with ``Settings.variant_settings``); what they mean:

``BROKER_VARIANTS``
    ``name:WxH[:cover]``, comma-separated; default ``thumb:320x320,medium:1280x1280``; empty
    turns variants off. A variant fits inside its ``W``x``H`` box keeping the aspect ratio and is
    never enlarged; ``:cover`` fills the box exactly, cropping the centre (a source smaller than
    the box is cropped to the box's aspect ratio, not enlarged). Names match
    ``[a-z0-9][a-z0-9_-]{0,31}`` (they go into object keys and JSON) and ``original`` is
    reserved (signed answers say ``"variant": "original"`` for the original). Sides are 1..8192,
    at most 16 variants.
``BROKER_VARIANT_FORMAT``
    ``webp`` (default: every browser displays it, keeps alpha and animation), ``avif``
    (smaller, much slower to encode, first frame of animations) or ``jpeg`` (alpha flattened
    onto white, first frame).
``BROKER_VARIANT_QUALITY``
    encoder quality 1..100; default 80 for WebP and JPEG, 50 for AVIF (whose scale differs:
    AVIF 50 looks like JPEG 80 at about half the bytes).
``BROKER_VARIANT_EFFORT``
    encoder CPU effort, WebP 0..6, AVIF 0..9 (ignored for JPEG); default 4, libvips' default.
    AVIF at 4 costs seconds per large variant: lower it for throughput.
``BROKER_VARIANT_TIMEOUT``
    wall-clock seconds one image (all its variants) may take before its render process is
    killed and the image's variants are ``failed``; default 60.
``BROKER_VARIANT_MEMORY_MB``
    address-space ceiling (``RLIMIT_AS``) of the render process in MiB; default 1024, which
    decodes any image of ``BROKER_MAX_PIXELS`` (40 Mpx) the broker accepts.
``BROKER_VARIANT_THREADS``
    libvips threads per render; default 1: one worker process per core makes the most images
    per CPU-second (``bench/bench_variants.py``); more threads shorten one image, not the queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_VARIANTS = "thumb:320x320,medium:1280x1280"
MAX_SIDE = 8192
MAX_VARIANTS = 16
# "original" is what a signed answer says when it signed the original, so no variant may use it.
RESERVED_NAMES = frozenset({"original"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_SIZE = re.compile(r"([0-9]{1,6})[xX]([0-9]{1,6})")


@dataclass(frozen=True)
class OutputFormat:
    """An encoding variants can be written in."""

    name: str
    content_type: str
    extension: str
    default_quality: int
    max_effort: int | None
    keeps_alpha: bool
    keeps_animation: bool


FORMATS: dict[str, OutputFormat] = {
    "webp": OutputFormat("webp", "image/webp", "webp", 80, 6, True, True),
    "avif": OutputFormat("avif", "image/avif", "avif", 50, 9, True, False),
    "jpeg": OutputFormat("jpeg", "image/jpeg", "jpg", 80, None, False, False),
}
DEFAULT_EFFORT = 4


class VariantConfigError(ValueError):
    """A variant setting is invalid; the message names the variable and the faulty value."""


@dataclass(frozen=True)
class VariantSpec:
    """One named variant: fit inside (or, with ``cover``, fill) a ``width`` x ``height`` box."""

    name: str
    width: int
    height: int
    cover: bool = False


@dataclass(frozen=True)
class RenderLimits:
    """What one image may cost to decode: pixels (checked from the header), memory, time."""

    max_pixels: int
    memory_bytes: int
    timeout_seconds: float
    threads: int = 1


@dataclass(frozen=True)
class VariantSettings:
    """Everything the renderer needs: the variants, their encoding and the decode limits."""

    specs: tuple[VariantSpec, ...]
    format: OutputFormat
    quality: int
    effort: int
    limits: RenderLimits

    @property
    def enabled(self) -> bool:
        """True when at least one variant is configured."""
        return bool(self.specs)

    def spec(self, name: str) -> VariantSpec | None:
        """The variant called ``name``, or None when no such variant is configured."""
        return next((spec for spec in self.specs if spec.name == name), None)


def parse_variants(text: str) -> tuple[VariantSpec, ...]:
    """Parse ``BROKER_VARIANTS`` (``name:WxH[:cover]``, comma-separated; blank means none)."""
    if not text.strip():
        return ()
    specs: list[VariantSpec] = []
    for raw in text.split(","):
        item = raw.strip()
        specs.append(_parse_one(item))
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise VariantConfigError(f"BROKER_VARIANTS: duplicate variant name {duplicates[0]!r}")
    if len(specs) > MAX_VARIANTS:
        raise VariantConfigError(f"BROKER_VARIANTS: at most {MAX_VARIANTS} variants")
    return tuple(specs)


def _parse_one(item: str) -> VariantSpec:
    """Parse one ``name:WxH[:cover]`` item."""
    where = f"BROKER_VARIANTS: {item!r}"
    if not item:
        raise VariantConfigError("BROKER_VARIANTS: empty item (a stray comma?)")
    parts = item.split(":")
    if len(parts) not in (2, 3):
        raise VariantConfigError(f"{where}: expected name:WxH or name:WxH:cover")
    name, size = parts[0], parts[1]
    if not _NAME.fullmatch(name):
        raise VariantConfigError(
            f"{where}: a name is 1-32 of a-z 0-9 _ - (starting with a letter or digit)"
        )
    if name in RESERVED_NAMES:
        raise VariantConfigError(f"{where}: {name!r} is reserved (it means the original)")
    match = _SIZE.fullmatch(size)
    if not match:
        raise VariantConfigError(f"{where}: the size must be WxH in pixels, e.g. 320x320")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise VariantConfigError(f"{where}: width and height must be between 1 and {MAX_SIDE}")
    cover = False
    if len(parts) == 3:
        if parts[2] != "cover":
            raise VariantConfigError(f"{where}: the only mode is 'cover', got {parts[2]!r}")
        cover = True
    return VariantSpec(name=name, width=width, height=height, cover=cover)


def parse_format(text: str) -> OutputFormat:
    """Parse ``BROKER_VARIANT_FORMAT`` (``webp``, ``avif`` or ``jpeg``; blank means webp)."""
    name = text.strip().lower() or "webp"
    if name == "jpg":
        name = "jpeg"
    try:
        return FORMATS[name]
    except KeyError:
        raise VariantConfigError(
            f"BROKER_VARIANT_FORMAT: {text!r} is not one of webp, avif, jpeg"
        ) from None
