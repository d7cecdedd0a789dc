"""What an image's first bytes say: its type (magic bytes) and its width and height.

Confirm reads at most the first 64 KiB of an upload and judges it by what is here: the type the
magic bytes announce (never the declared one), the dimensions from the header (``imagesize``,
no decoding), and for a GIF the canvas its frames need (the walk over its blocks). AVIF and HEIC
headers have their own reader, :mod:`broker.isobmff`. Pure; every input is hostile.
"""

from __future__ import annotations

import io

import imagesize

from broker import isobmff
from broker.errors import UploadInvalid

# The item types an AVIF's primary image may have: one AV1 picture, or a grid of AV1 tiles.
_AVIF_PRIMARY_TYPES = ("av01", "grid")


def sniff_type(head_bytes: bytes) -> str | None:
    """The image type the first bytes announce, or None."""
    if head_bytes.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head_bytes.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head_bytes[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head_bytes[:4] == b"RIFF" and head_bytes[8:12] == b"WEBP":
        return "image/webp"
    if head_bytes[4:8] == b"ftyp":
        # AVIF or HEIC: the ftyp box's brands say which.
        return isobmff.heif_content_type(head_bytes)
    return None


def dimensions(image_type: str, head_bytes: bytes) -> tuple[int, int] | None:
    """Width and height of an image of ``image_type`` (sniffed), or None when unreadable."""
    if image_type == "image/avif":
        width, height, _ = avif_size(head_bytes)
        return width, height
    if image_type == "image/gif":
        size = gif_dimensions(head_bytes)
        return size if size is not None and min(size) > 0 else None
    return read_dimensions(head_bytes)


def read_dimensions(head_bytes: bytes) -> tuple[int, int] | None:
    """Width and height from an image header, or None when the header cannot be read."""
    try:
        width, height = imagesize.get(io.BytesIO(head_bytes))
    except (ValueError, OSError, IndexError, TypeError):
        return None
    if width <= 0 or height <= 0:
        return None
    return width, height


def pixel_area(image_type: str, head_bytes: bytes, width: int, height: int) -> int:
    """The pixels a decoder of this image may have to hold: ``width * height``, or for an AVIF
    the largest area any of its images claims (grid tiles, alpha planes, thumbnails)."""
    if image_type == "image/avif":
        return avif_size(head_bytes)[2]
    return width * height


def avif_size(head_bytes: bytes) -> tuple[int, int, int]:
    """An AVIF's width and height as displayed (its primary item's ``ispe`` turned by its
    ``irot``, as a JPEG's are by its EXIF orientation) and the largest area any ``ispe``
    claims; UploadInvalid when the header says otherwise."""
    try:
        info = isobmff.read_heif_info(head_bytes)
    except isobmff.IsoBmffError as e:
        raise UploadInvalid(f"the AVIF header cannot be read: {e}") from None
    if info.primary_item_type not in _AVIF_PRIMARY_TYPES:
        named = info.primary_item_type or "missing"
        raise UploadInvalid(f"the AVIF's primary image is {named!r}, not AV1 ('av01' or 'grid')")
    width, height = info.width, info.height
    if info.rotation in (90, 270):
        width, height = height, width
    return width, height, max(info.width * info.height, info.max_pixels)


_GIF_EXTENSION = 0x21
_GIF_IMAGE = 0x2C
_GIF_TRAILER = 0x3B


def gif_dimensions(data: bytes) -> tuple[int, int] | None:
    """The canvas a GIF needs, from the bytes at hand: (width, height), or None if no header.

    A GIF's logical screen says nothing binding about its frames: a 10x10 screen can hold an
    8000x8000 frame, which browsers and Pillow decode at full size. So every image descriptor
    the bytes reach counts, by its extent (offset + size, what a decoder that grows its canvas
    to fit allocates), and the result is the largest of the screen and those extents. Data cut
    off by the end of ``data`` ends the walk (``data`` is a prefix of the object); a byte that
    starts no known block raises UploadInvalid, since decoders disagree on what follows it
    (Chromium stops there, Pillow skips it and reads on).
    """
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width = int.from_bytes(data[6:8], "little")
    height = int.from_bytes(data[8:10], "little")
    pos = 13 + _gif_color_table_size(data[10])
    end = len(data)
    while pos < end:
        introducer = data[pos]
        if introducer == _GIF_TRAILER:
            break
        if introducer == _GIF_EXTENSION:
            pos = _skip_gif_sub_blocks(data, pos + 2)  # introducer, label, then sub-blocks
        elif introducer == _GIF_IMAGE:
            if pos + 10 > end:
                break
            left, top, frame_width, frame_height = (
                int.from_bytes(data[pos + i : pos + i + 2], "little") for i in (1, 3, 5, 7)
            )
            width = max(width, left + frame_width)
            height = max(height, top + frame_height)
            # Descriptor (10 bytes), local color table, LZW minimum code size, image sub-blocks.
            pos = _skip_gif_sub_blocks(data, pos + 10 + _gif_color_table_size(data[pos + 9]) + 1)
        else:
            raise UploadInvalid(
                f"the GIF is malformed: byte {introducer:#04x} at offset {pos} starts no block"
            )
    return width, height


def _gif_color_table_size(packed: int) -> int:
    """Bytes of the color table a GIF's packed field announces (0 without one)."""
    return 3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0


def _skip_gif_sub_blocks(data: bytes, pos: int) -> int:
    """The offset after a chain of data sub-blocks (each a length byte, ended by a 0 length)."""
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return end
