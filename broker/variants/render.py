"""Original bytes (or a file) in, encoded variants out, with libvips through pyvips.

What every variant gets, whatever the original:

- **Bounded decoding.** The header is read first (no pixels decoded) and an image over
  ``max_pixels`` (all frames of an animation counted) is refused before any decoding. Only the
  JPEG, PNG, GIF, WebP and HEIF (AVIF) loaders are enabled: libvips can also load SVG, TIFF,
  its own ``.v`` format, CSV and matrix files, none of which the broker accepts. Decoders fail on
  any error (``fail_on="error"``), so a corrupt or truncated original raises instead of giving
  a partial picture. Memory and time are bounded by the sandbox (:mod:`.sandbox`).
- **One decode, shrink-on-load.** The largest variant is made with ``thumbnail`` straight from
  the original, so JPEG and WebP decode at reduced scale and nothing is decoded whole that need
  not be; the smaller variants are resized from it in memory when it is large enough.
- **Upright, sRGB, no metadata.** EXIF orientation is applied (an orientation-6 photo's variant
  has its width and height swapped), colour is converted to sRGB through the embedded ICC
  profile (CMYK JPEGs without one through libvips' fallback CMYK profile), and the encoder keeps
  nothing (``keep="none"``): no EXIF, GPS, XMP, IPTC, ICC profile or comment.
- **Alpha and animation.** WebP and AVIF keep alpha; JPEG flattens it onto white. An animated
  GIF or WebP stays animated in WebP (frame delays and loop count kept) when all its frames
  together fit in ``max_pixels``; otherwise, and in AVIF or JPEG, the variant is its first frame.
- **Sizes.** Fit inside the box keeping the aspect ratio, never enlarged; ``cover`` fills the
  box exactly, cropping the centre, and a source smaller than the box is cropped to the box's
  aspect ratio instead of being enlarged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, cast

import pyvips

from broker.variants.results import RenderedVariant, RenderError, Source
from broker.variants.spec import OutputFormat, VariantSettings, VariantSpec

__all__ = ["RenderError", "RenderedVariant", "Source", "SourceInfo", "probe", "render_variants"]

# The loader families the broker accepts; every other libvips loader is blocked.
_ALLOWED_LOADERS = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadWebp",
    "VipsForeignLoadHeif",
)
_FORMAT_OF_LOADER = {
    "jpegload": "jpeg",
    "pngload": "png",
    "gifload": "gif",
    "webpload": "webp",
    "heifload": "heif",
}
SOURCE_CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "heic": "image/heic",
}
_ANIMATED_FORMATS = ("gif", "webp")
# Orientations 5 to 8 turn the picture a quarter: its upright width is its stored height.
_QUARTER_TURNS = (5, 6, 7, 8)
_WHITE = [255.0, 255.0, 255.0]
# "As large as it likes" for one side of a thumbnail box (libvips' largest coordinate).
_UNBOUNDED = 10_000_000


@dataclass(frozen=True)
class SourceInfo:
    """What the header of an original says, read without decoding pixels."""

    format: str
    width: int
    height: int
    pages: int
    orientation: int
    has_profile: bool = False

    @property
    def upright_size(self) -> tuple[int, int]:
        """Width and height once the EXIF orientation is applied."""
        if self.orientation in _QUARTER_TURNS:
            return self.height, self.width
        return self.width, self.height


def configure_libvips(threads: int) -> None:
    """Set libvips up for untrusted input: only the accepted loaders, no cache, ``threads``."""
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in _ALLOWED_LOADERS:
        pyvips.operation_block_set(loader, False)
    # Nothing is ever rendered twice in a worker: a cache would only hold memory (and files).
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(threads)


def probe(source: Source) -> SourceInfo:
    """Read the header of ``source`` (no pixels decoded): its format, size, frames, orientation."""
    try:
        head = _open(source, access="sequential", fail_on="error")
        fields = set(head.get_fields())
        loader = str(head.get("vips-loader")).split("_")[0]
        fmt = _FORMAT_OF_LOADER.get(loader)
        if fmt == "heif":
            compression = str(head.get("heif-compression")) if "heif-compression" in fields else ""
            fmt = {"av1": "avif", "hevc": "heic"}.get(compression)
        pages = int(head.get("n-pages")) if "n-pages" in fields else 1
        orientation = int(head.get("orientation")) if "orientation" in fields else 1
        width, height = int(head.width), int(head.height)
        has_profile = "icc-profile-data" in fields
    except pyvips.Error as exc:
        if "not in a known format" in str(exc):
            raise RenderError(
                "unsupported_format", "not a JPEG, PNG, GIF, WebP or AVIF image"
            ) from None
        raise _decode_error(exc, source) from None
    if fmt is None:
        raise RenderError("unsupported_format", f"{loader} images are not accepted")
    return SourceInfo(fmt, width, height, max(pages, 1), orientation, has_profile)


def self_test(settings: VariantSettings) -> None:
    """Render a tiny image through the whole pipeline; raises RenderError if it cannot."""
    pixel = pyvips.Image.black(8, 8, bands=3).cast("uchar").copy(interpretation="srgb")
    render_variants(bytes(pixel.pngsave_buffer()), settings)


def render_variants(
    source: Source, settings: VariantSettings, *, expected_type: str | None = None
) -> list[RenderedVariant]:
    """Make every configured variant of ``source``, in the configured order, or raise RenderError.

    ``expected_type`` (the image's recorded content type) makes an original whose bytes are of
    another format fail instead of being rendered.
    """
    configure_libvips(settings.limits.threads)
    info = probe(source)
    _check(info, settings, expected_type)
    animated = (
        info.format in _ANIMATED_FORMATS
        and info.pages > 1
        and settings.format.keeps_animation
        and info.width * info.height * info.pages <= settings.limits.max_pixels
    )
    try:
        return _render(source, info, settings, animated)
    except pyvips.Error as exc:
        raise _decode_error(exc, source) from None
    except MemoryError:
        raise RenderError("memory_limit", "the image needs more memory than allowed") from None


def _check(info: SourceInfo, settings: VariantSettings, expected_type: str | None) -> None:
    """Refuse, before decoding, what the broker does not render."""
    if info.format == "heic":
        raise RenderError(
            "unsupported_format",
            "HEIC (HEVC) images cannot be decoded: the bundled libvips has no HEVC decoder",
        )
    if info.width < 1 or info.height < 1 or info.width * info.height > settings.limits.max_pixels:
        raise RenderError(
            "too_many_pixels",
            f"{info.width}x{info.height} is over the limit of {settings.limits.max_pixels} pixels",
        )
    actual = SOURCE_CONTENT_TYPES[info.format]
    if expected_type is not None and expected_type != actual:
        raise RenderError("undecodable", f"the bytes are {actual}, the image says {expected_type}")


def _render(
    source: Source, info: SourceInfo, settings: VariantSettings, animated: bool
) -> list[RenderedVariant]:
    """Render largest first, so smaller variants can be resized from the largest in memory."""
    upright = info.upright_size
    order = sorted(settings.specs, key=lambda s: _area(_output_size(s, upright)), reverse=True)
    base: Any = None  # the largest fit variant, decoded once and kept in memory
    made: dict[str, RenderedVariant] = {}
    for spec in order:
        target = _target_size(spec, upright)
        if base is not None and _can_derive(base, _output_size(spec, upright)):
            image = _resize(base, spec, target)
        else:
            image = _thumbnail(source, spec, target, info, animated)
            if not animated and not spec.cover and base is None and len(order) > 1:
                base = image = image.copy_memory()
        made[spec.name] = _encode(spec.name, image, settings, animated)
    return [made[spec.name] for spec in settings.specs]


def _target_size(spec: VariantSpec, upright: tuple[int, int]) -> tuple[int, int]:
    """The box handed to libvips: the variant's own, or for a small cover source its crop."""
    width, height = upright
    if not spec.cover or max(spec.width / width, spec.height / height) <= 1:
        return spec.width, spec.height
    # Filling the box would enlarge: crop the source to the box's aspect ratio instead.
    crop_width = min(width, max(1, round(height * spec.width / spec.height)))
    crop_height = min(height, max(1, round(width * spec.height / spec.width)))
    return crop_width, crop_height


def _output_size(spec: VariantSpec, upright: tuple[int, int]) -> tuple[int, int]:
    """The size a variant made straight from the original has."""
    if spec.cover:
        return _target_size(spec, upright)
    return _fit_size(upright, (spec.width, spec.height))


def _area(size: tuple[int, int]) -> int:
    """Pixels in a box, for ordering variants largest first."""
    return size[0] * size[1]


def _fit_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """What fitting ``size`` into ``box`` without enlarging gives, as libvips rounds it."""
    scale = min(box[0] / size[0], box[1] / size[1], 1.0)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _can_derive(base: Any, output: tuple[int, int]) -> bool:
    """Whether ``base`` holds at least the pixels the variant needs (resizing it only shrinks)."""
    return int(base.width) >= output[0] and int(base.height) >= output[1]


def _thumbnail(
    source: Source, spec: VariantSpec, target: tuple[int, int], info: SourceInfo, animated: bool
) -> Any:
    """Shrink-on-load from the original: upright, sRGB, fit in (or cropped to) ``target``."""
    profile = info.has_profile
    if spec.cover and animated:
        # thumbnail's crop treats the frames as one tall image (one frame comes out, cut across
        # frame boundaries): scale to cover the box, then crop every frame alike.
        box = _cover_box(target, info.upright_size)
        return _crop_frames(_load_thumbnail(source, box, animated, profile), target)
    return _load_thumbnail(source, target, animated, profile, crop=spec.cover)


def _cover_box(target: tuple[int, int], upright: tuple[int, int]) -> tuple[int, int]:
    """A box whose fit scales the original to cover ``target``: one side bound, one free."""
    width, height = upright
    if target[0] / width >= target[1] / height:
        return target[0], _UNBOUNDED
    return _UNBOUNDED, target[1]


def _crop_frames(image: Any, target: tuple[int, int]) -> Any:
    """The centre ``target`` of every frame of an animation, frames kept in order."""
    fields = set(image.get_fields())
    page = int(image.get("page-height")) if "page-height" in fields else int(image.height)
    # A pixel lost to rounding in the scale must not make the crop fall outside the frame.
    width, height = min(target[0], int(image.width)), min(target[1], page)
    left, top = (int(image.width) - width) // 2, (page - height) // 2
    frames = [
        image.crop(left, index * page + top, width, height)
        for index in range(int(image.height) // page)
    ]
    cropped = pyvips.Image.arrayjoin(frames, across=1).copy()
    cropped.set_type(pyvips.GValue.gint_type, "page-height", height)
    return cropped


def _load_thumbnail(
    source: Source, box: tuple[int, int], animated: bool, profile: bool, *, crop: bool = False
) -> Any:
    """libvips' thumbnail from bytes or a file: shrink-on-load, upright, sRGB."""
    options: dict[str, Any] = {
        "height": box[1],
        "size": "down",
        # thumbnail_buffer and thumbnail_source accept fail_on but never hand it to the loader
        # (libvips 8.18, libvips#5195): a truncated original would give a partial picture. The
        # loader's own option string does reach it.
        "option_string": "fail_on=error,n=-1" if animated else "fail_on=error",
    }
    if profile:
        # Through the embedded profile to sRGB: without this a P3 photo keeps its P3 numbers
        # and loses the profile that explains them. Only then: the transform doubles the cost,
        # and pixels without a profile are sRGB already (CMYK is converted either way).
        options["output_profile"] = "srgb"
    if crop:
        options["crop"] = "centre"
    if isinstance(source, bytes):
        return pyvips.Image.thumbnail_buffer(source, box[0], **options)
    return pyvips.Image.thumbnail_source(
        pyvips.Source.new_from_file(os.fspath(source)), box[0], **options
    )


def _resize(base: Any, spec: VariantSpec, target: tuple[int, int]) -> Any:
    """A smaller variant from an in-memory variant that is already upright and sRGB."""
    options: dict[str, Any] = {"height": target[1], "size": "down", "no_rotate": True}
    if spec.cover:
        options["crop"] = "centre"
    return base.thumbnail_image(target[0], **options)


def _encode(name: str, image: Any, settings: VariantSettings, animated: bool) -> RenderedVariant:
    """Encode one variant with no metadata at all."""
    fmt = settings.format
    image = _finish(image, fmt)
    data = _save(image, fmt, settings.quality, settings.effort)
    fields = set(image.get_fields())
    height = int(image.get("page-height")) if animated and "page-height" in fields else image.height
    frames = int(image.height) // height if animated else 1
    return RenderedVariant(name, fmt.content_type, int(image.width), height, frames, data)


def _finish(image: Any, fmt: OutputFormat) -> Any:
    """8-bit sRGB, alpha flattened onto white when the format has no alpha."""
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if not fmt.keeps_alpha and image.hasalpha():
        image = image.flatten(background=_WHITE).cast("uchar")
    return image


def _save(image: Any, fmt: OutputFormat, quality: int, effort: int) -> bytes:
    """The encoder call for ``fmt``; ``keep="none"`` drops every metadata block."""
    if fmt.name == "webp":
        data = image.webpsave_buffer(Q=quality, effort=effort, keep="none")
    elif fmt.name == "avif":
        data = image.heifsave_buffer(
            Q=quality, effort=effort, compression="av1", bitdepth=8, keep="none"
        )
    else:
        data = image.jpegsave_buffer(Q=quality, keep="none", optimize_coding=True, interlace=True)
    return cast(bytes, data)


def _open(source: Source, **options: Any) -> Any:
    """A lazily decoded image from bytes or a file (a Source: no filename option parsing)."""
    if isinstance(source, bytes):
        return pyvips.Image.new_from_buffer(source, "", **options)
    return pyvips.Image.new_from_source(
        pyvips.Source.new_from_file(os.fspath(source)), "", **options
    )


def _decode_error(exc: pyvips.Error, source: Source) -> RenderError:
    """Turn a libvips error into a RenderError whose message names no file path."""
    text = f"{exc.message}\n{exc.detail or ''}"
    if not isinstance(source, bytes):
        text = text.replace(os.fspath(source), "<original>")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # pyvips prefixes "unable to call X" / "unable to copy to memory": the cause follows.
    detail = "; ".join(line for line in lines if not line.startswith("unable to "))[:300]
    # A thread libvips cannot start is address space running out under the ceiling too.
    if re.search(
        r"out of memory|cannot allocate|failed to allocate|error creating thread", detail, re.I
    ):
        return RenderError("memory_limit", f"the image needs more memory than allowed: {detail}")
    return RenderError("undecodable", f"the image cannot be decoded whole: {detail}")
