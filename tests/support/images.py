"""Image bytes made on the spot (PNG and JPEG headers byte by byte), and their Content-MD5."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def md5_b64(data: bytes) -> str:
    """Content-MD5 of the bytes."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """The signature and the IHDR chunk of an 8-bit RGB, non-interlaced PNG."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr)


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A valid PNG of the given size."""
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        png_header(width, height) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    )


def png_of_size(size: int, width: int = 4, height: int = 3) -> bytes:
    """A valid PNG of exactly ``size`` bytes: a private ancillary chunk carries the padding."""
    plain = png_bytes(width, height)
    header = len(png_header(width, height))
    padding = size - len(plain) - 12
    if padding < 0:
        raise ValueError(f"{size} bytes is too small for a {width}x{height} PNG")
    return plain[:header] + png_chunk(b"bnPd", b"\0" * padding) + plain[header:]


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR announces ``width`` x ``height`` (no pixel data: only the header)."""
    return png_header(width, height) + png_chunk(b"IEND", b"")


def gradient_png(
    width: int,
    height: int,
    top: tuple[int, int, int],
    bottom: tuple[int, int, int],
    sun: tuple[int, int, int] = (255, 229, 153),
) -> bytes:
    """A real PNG a browser decodes: a vertical gradient with a round 'sun' in it."""
    cx, cy, radius = width * 0.62, height * 0.52, min(width, height) * 0.2
    rows = []
    for y in range(height):
        t = y / max(1, height - 1)
        sky = bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        row = bytearray(b"\x00")
        for x in range(width):
            row += bytes(sun) if (x - cx) ** 2 + (y - cy) ** 2 <= radius**2 else sky
        rows.append(bytes(row))
    return (
        png_header(width, height)
        + png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + png_chunk(b"IEND", b"")
    )


def jpeg_bytes(width: int = 8, height: int = 6) -> bytes:
    """A minimal baseline JPEG header with the given size (enough for magic and dimensions)."""
    sof = (
        b"\xff\xc0"
        + struct.pack(">HBHHB", 17, 8, height, width, 3)
        + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return (
        b"\xff\xd8\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + sof
        + b"\xff\xd9"
    )
