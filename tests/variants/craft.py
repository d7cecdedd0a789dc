"""Test images made on the spot (no downloads), and readers of the metadata blocks in outputs.

Pillow writes the EXIF/GPS/ICC/comment blocks cameras write; XMP and IPTC segments are spliced
in by hand; pyvips makes AVIF, animations and large images fast; ISO-BMFF and PNG structures
are built byte by byte where the test needs a lie (a bomb header, a HEIC container).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pyvips
from PIL import Image

# Strings that must never appear in a variant: a camera model, a comment, GPS text, XMP, IPTC.
SECRETS = (b"SecretCam", b"SECRETCOMMENT", b"SECRETGPSAREA", b"SECRETXMP", b"SECRETIPTC")
METADATA_MARKERS = (
    b"Exif",
    b"EXIF",
    b"<x:xmpmeta",
    b"http://ns.adobe.com/xap",
    b"Photoshop 3.0",
    b"8BIM",
    b"ICC_PROFILE",
    b"acsp",  # the signature inside every ICC profile
)
XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
    b'-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Label='
    b'"SECRETXMP"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def _segment(marker: int, payload: bytes) -> bytes:
    """One JPEG marker segment."""
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def camera_jpeg(
    width: int,
    height: int,
    *,
    orientation: int = 1,
    icc: bytes | None = None,
    halves: tuple[tuple[int, int, int], tuple[int, int, int]] = ((220, 20, 20), (20, 20, 220)),
) -> bytes:
    """A JPEG like a phone's: EXIF (orientation, make, GPS), XMP, IPTC and a comment.

    The stored pixels are red on the left half and blue on the right, so a test can tell
    whether the orientation was applied.
    """
    image = Image.new("RGB", (width, height), halves[1])
    image.paste(halves[0], (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {
        1: "N",
        2: (48.0, 51.0, 29.0),
        3: "E",
        4: (2.0, 17.0, 40.0),
        0x001C: b"ASCII\x00\x00\x00SECRETGPSAREA",
    }
    out = io.BytesIO()
    options: dict[str, Any] = {"exif": exif.tobytes(), "comment": b"SECRETCOMMENT", "quality": 90}
    if icc is not None:
        options["icc_profile"] = icc
    image.save(out, "JPEG", **options)
    data = out.getvalue()
    xmp = _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP_PACKET)
    iptc_record = b"\x1c\x02\x78" + struct.pack(">H", 10) + b"SECRETIPTC"
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc_record)) + iptc_record
    iptc = _segment(0xED, b"Photoshop 3.0\x00" + resource)
    return data[:2] + xmp + iptc + data[2:]


def flat(width: int, height: int, colour: tuple[int, ...], fmt: str = "uchar") -> Any:
    """A libvips image of one colour (sRGB, or rgb16 for ``fmt="ushort"``), computed lazily."""
    image = pyvips.Image.black(width, height).cast(fmt).new_from_image(list(colour))
    return image.copy(interpretation="srgb" if fmt == "uchar" else "rgb16")


def p3_profile() -> bytes:
    """The Display P3 ICC profile libvips carries, as a camera would embed it."""
    pixel = pyvips.Image.black(1, 1, bands=3).cast("uchar").copy(interpretation="srgb")
    return bytes(pixel.icc_transform("p3", input_profile="srgb").get("icc-profile-data"))


def rgba_png(width: int, height: int) -> bytes:
    """Opaque green on the left half, fully transparent on the right."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    image.paste((30, 200, 30, 255), (0, 0, width // 2, height))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def plain(
    width: int, height: int, fmt: str = "png", colour: tuple[int, ...] = (90, 120, 150)
) -> bytes:
    """A flat image in ``fmt`` (any Pillow format)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, fmt.upper())
    return out.getvalue()


FRAME_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))


def animated(fmt: str, width: int = 120, height: int = 60, frames: int = 3) -> bytes:
    """A looping animation (GIF or WebP): red, green, blue frames, 100 ms each."""
    images = [Image.new("RGB", (width, height), FRAME_COLOURS[i % 3]) for i in range(frames)]
    out = io.BytesIO()
    options: dict[str, Any] = {"save_all": True, "append_images": images[1:], "duration": 100}
    options["loop"] = 0
    if fmt == "webp":
        options["lossless"] = True
    images[0].save(out, fmt.upper(), **options)
    return out.getvalue()


def avif(width: int, height: int, *, alpha: bool = False) -> bytes:
    """An AVIF made by the bundled libvips (AV1 encoder), orange, optionally half transparent."""
    image = flat(width, height, (240, 140, 20))
    if alpha:
        mask = (pyvips.Image.xyz(width, height)[0] < width // 2).ifthenelse(255, 0)
        image = image.bandjoin(mask.cast("uchar"))
    return bytes(image.heifsave_buffer(compression="av1", Q=90, effort=0))


def large_png(width: int, height: int) -> bytes:
    """A large flat PNG, made in a second or two by libvips (it streams, never holds it all)."""
    image = flat(width, height, (40, 90, 160))
    return bytes(image.pngsave_buffer(compression=1))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels over a body of a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def gif_bomb(width: int, height: int) -> bytes:
    """A GIF whose screen and frame claim ``width`` x ``height`` over a few bytes of LZW data."""
    screen = (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def interlaced_png(width: int, height: int, *, deep: bool = False) -> bytes:
    """A black Adam7 PNG, RGB 8-bit or RGBA 16-bit (``deep``): libpng must hold it whole."""
    passes = (
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    )
    pixel_bytes = 8 if deep else 3
    deflate = zlib.compressobj(9)
    body = []
    for x0, y0, dx, dy in passes:
        cols = (width - x0 + dx - 1) // dx if width > x0 else 0
        rows = (height - y0 + dy - 1) // dy if height > y0 else 0
        if cols == 0 or rows == 0:
            continue
        row = b"\x00" * (1 + pixel_bytes * cols)
        for _ in range(rows):
            body.append(deflate.compress(row))
    body.append(deflate.flush())
    depth, colour = (16, 6) if deep else (8, 2)
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(body))
        + _chunk(b"IEND", b"")
    )


def box(kind: str, payload: bytes = b"") -> bytes:
    """An ISO-BMFF box."""
    return struct.pack(">I", 8 + len(payload)) + kind.encode("latin-1") + payload


def full_box(kind: str, payload: bytes = b"", version: int = 0, flags: int = 0) -> bytes:
    """An ISO-BMFF FullBox."""
    return box(kind, struct.pack(">I", version << 24 | flags) + payload)


def heif_container(
    brands: tuple[str, ...],
    item_type: str,
    sizes: tuple[tuple[int, int], ...],
    *,
    primary_property: int = 1,
    config: bytes = b"",
    data: bytes = b"\x00" * 16,
) -> bytes:
    """A HEIF file: one item of ``item_type``, one ``ispe`` per size, the primary linked to one.

    ``config`` is the codec configuration property (``hvcC``/``av1C``) appended after the
    ``ispe`` boxes and linked to the item too.
    """
    ftyp = box(
        "ftyp", brands[0].encode() + b"\x00\x00\x00\x00" + b"".join(b.encode() for b in brands)
    )
    hdlr = full_box("hdlr", b"\x00" * 4 + b"pict" + b"\x00" * 12 + b"\x00")
    pitm = full_box("pitm", struct.pack(">H", 1))
    infe = full_box("infe", struct.pack(">HH", 1, 0) + item_type.encode() + b"\x00", version=2)
    iinf = full_box("iinf", struct.pack(">H", 1) + infe)
    ispes = b"".join(full_box("ispe", struct.pack(">II", w, h)) for w, h in sizes)
    links = [primary_property]
    if config:
        links.append(len(sizes) + 1)
    ipco = box("ipco", ispes + config)
    ipma = full_box("ipma", struct.pack(">IHB", 1, 1, len(links)) + bytes(0x80 | i for i in links))
    iprp = box("iprp", ipco + ipma)
    mdat_payload = data

    # iloc v0: offset_size=4, length_size=4, base_offset_size=0; one item, one extent.
    def meta_with(offset: int) -> bytes:
        iloc = full_box(
            "iloc",
            struct.pack(">BBH", 0x44, 0x00, 1)
            + struct.pack(">HHH", 1, 0, 1)
            + struct.pack(">II", offset, len(mdat_payload)),
        )
        return full_box("meta", hdlr + pitm + iloc + iinf + iprp)

    offset = len(ftyp) + len(meta_with(0)) + 8
    return ftyp + meta_with(offset) + box("mdat", mdat_payload)


def hevc_config() -> bytes:
    """An ``hvcC`` box with a plausible header and no parameter sets (enough to be parsed)."""
    payload = bytes(
        [
            1,
            0x01,
            0x60,
            0,
            0,
            0,
            0x90,
            0,
            0,
            0,
            0,
            0,
            0x5D,
            0xF0,
            0x00,
            0xFC,
            0xFD,
            0xF8,
            0xF8,
            0,
            0,
            0x0F,
            0,
        ]
    )
    return box("hvcC", payload)


def webp_chunks(data: bytes) -> list[str]:
    """The chunk ids of a WebP file (RIFF), in order."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", "not a WebP file"
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4].decode("latin-1")
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.append(kind)
        if kind == "ANMF":  # frames nest their own chunks after a 16-byte header
            chunks.extend(f"ANMF/{c}" for c in _riff_chunks(data, pos + 8 + 16, pos + 8 + size))
        pos += 8 + size + (size & 1)
    return chunks


def _riff_chunks(data: bytes, pos: int, end: int) -> list[str]:
    """Chunk ids laid end to end in ``data[pos:end]``."""
    kinds = []
    while pos + 8 <= end:
        kinds.append(data[pos : pos + 4].decode("latin-1"))
        (size,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + size + (size & 1)
    return kinds


def jpeg_markers(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's segments up to the start of scan."""
    assert data[:2] == b"\xff\xd8", "not a JPEG file"
    markers, pos = [], 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return markers


def top_boxes(data: bytes) -> list[str]:
    """The top-level ISO-BMFF box types of a file."""
    kinds, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        kinds.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return kinds
