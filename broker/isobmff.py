"""AVIF and HEIC headers read from a file's first bytes: brand, primary item, width and height.

HEIF files (AVIF is HEIF with AV1 inside) are ISO base media files: a sequence of boxes, each
``size`` (32 bits; 1 means a 64-bit size follows, 0 means "to the end of the file") and a
four-letter ``type``. Confirm reads at most 64 KiB, which holds the ``ftyp`` box (the brands)
and, in every file encoders write today, the ``meta`` box before the pixel data::

    ftyp                 major brand, compatible brands ("avif", "mif1", "heic", ...)
    meta
      pitm               the primary item's id
      iinf / infe        each item's type: "av01" (AVIF), "hvc1" (HEIC), "grid" (tiles), ...
      iprp
        ipco             properties, numbered from 1: "ispe" (width, height), "irot", ...
        ipma             which properties belong to which item

Everything here is hostile input: sizes that overrun, sizes of 0 and 1, counts that promise more
entries than the bytes hold. Nothing is trusted beyond the bytes given; the parse only descends
into the boxes listed above (so no nesting can loop) and visits a bounded number of boxes. The
reported size is the primary item's ``ispe`` (the stored size, before any ``irot``);
``max_pixels`` is the largest area any ``ispe`` claims, for a conservative pixel limit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

AVIF_BRANDS = frozenset({"avif", "avis"})
HEIC_BRANDS = frozenset({"heic", "heix", "heim", "heis", "hevc", "hevx"})
# Generic HEIF structure brands: present in AVIF and HEIC alike, so they decide nothing alone.
HEIF_BRANDS = frozenset({"mif1", "msf1", "miaf"})
_MAX_BOXES = 4096


class IsoBmffError(ValueError):
    """The bytes are not a HEIF file whose header this parser can read; says why."""


@dataclass(frozen=True)
class HeifInfo:
    """What the first bytes of an AVIF or HEIC file say."""

    content_type: str
    major_brand: str
    brands: tuple[str, ...]
    primary_item_type: str | None
    width: int
    height: int
    rotation: int
    max_pixels: int


@dataclass(frozen=True)
class _Box:
    type: str
    start: int  # first byte of the payload
    end: int  # one past the last byte of the payload (of the bytes we have, when cut)
    cut: bool = False  # the box runs past the bytes we have


def heif_content_type(head: bytes) -> str | None:
    """``image/avif``, ``image/heic`` or ``image/heif`` from the ``ftyp`` brands, else None."""
    try:
        major, brands = _brands(head)
    except IsoBmffError:
        return None
    return _content_type(major, brands)


def read_heif_info(head: bytes) -> HeifInfo:
    """Brands, primary item type and size of a HEIF file from its first bytes, or IsoBmffError."""
    major, brands = _brands(head)
    content_type = _content_type(major, brands)
    if content_type is None:
        raise IsoBmffError(f"ftyp brands {', '.join(brands)} name neither AVIF nor HEIC")
    meta = next((box for box in _boxes(head, 0, len(head), top=True) if box.type == "meta"), None)
    if meta is None:
        raise IsoBmffError(f"no meta box in the first {len(head)} bytes")
    if meta.cut:
        raise IsoBmffError(f"the meta box runs past the first {len(head)} bytes")
    primary, item_types, properties, associations = _read_meta(head, meta)
    sizes = [(w, h) for kind, (w, h) in properties if kind == "ispe"]
    if not sizes:
        raise IsoBmffError("no ispe (image size) property")
    largest = max(w * h for w, h in sizes)
    linked = associations.get(primary, []) if primary is not None else []
    own = [properties[i - 1] for i in linked if 0 < i <= len(properties)]
    own_sizes = [value for kind, value in own if kind == "ispe"]
    # Without a resolvable primary size, report the largest claimed: never understate.
    width, height = own_sizes[0] if own_sizes else max(sizes, key=lambda s: s[0] * s[1])
    if width < 1 or height < 1:
        raise IsoBmffError(f"ispe size {width}x{height} is empty")
    rotation = next((value[0] * 90 for kind, value in own if kind == "irot"), 0)
    return HeifInfo(
        content_type=content_type,
        major_brand=major,
        brands=brands,
        primary_item_type=item_types.get(primary) if primary is not None else None,
        width=width,
        height=height,
        rotation=rotation,
        max_pixels=largest,
    )


def _content_type(major: str, brands: tuple[str, ...]) -> str | None:
    """The image type the brands name; AVIF wins over HEIC when a file claims both."""
    named = set(brands) | {major}
    if named & AVIF_BRANDS:
        return "image/avif"
    if named & HEIC_BRANDS:
        return "image/heic"
    if named & HEIF_BRANDS:
        return "image/heif"
    return None


def _brands(head: bytes) -> tuple[str, tuple[str, ...]]:
    """The major brand and every brand of the leading ``ftyp`` box."""
    first = next(_boxes(head, 0, len(head), top=True), None)
    if first is None or first.type != "ftyp":
        raise IsoBmffError("the file does not start with an ftyp box")
    payload = head[first.start : first.end]
    if len(payload) < 8 or (len(payload) - 8) % 4:
        raise IsoBmffError("the ftyp box has a malformed size")
    major = _fourcc(payload[0:4])
    compatible = tuple(_fourcc(payload[i : i + 4]) for i in range(8, len(payload), 4))
    return major, (major, *compatible)


def _read_meta(
    data: bytes, meta: _Box
) -> tuple[int | None, dict[int, str], list[tuple[str, tuple[int, int]]], dict[int, list[int]]]:
    """The primary item id, item types, properties (ispe/irot) and item->property indexes."""
    primary: int | None = None
    item_types: dict[int, str] = {}
    properties: list[tuple[str, tuple[int, int]]] = []
    associations: dict[int, list[int]] = {}
    for box in _boxes(data, meta.start + 4, meta.end):  # meta is a FullBox: skip version+flags
        if box.type == "pitm":
            primary = _read_pitm(data, box)
        elif box.type == "iinf":
            item_types.update(_read_iinf(data, box))
        elif box.type == "iprp":
            for child in _boxes(data, box.start, box.end):
                if child.type == "ipco":
                    properties = [
                        _read_property(data, p) for p in _boxes(data, child.start, child.end)
                    ]
                elif child.type == "ipma":
                    for item, indexes in _read_ipma(data, child).items():
                        associations.setdefault(item, []).extend(indexes)
    return primary, item_types, properties, associations


def _read_pitm(data: bytes, box: _Box) -> int:
    """The primary item id (16 bits in version 0, 32 in version 1)."""
    reader = _Reader(data, box.start, box.end)
    version = reader.full_box()
    return reader.u32() if version >= 1 else reader.u16()


def _read_iinf(data: bytes, box: _Box) -> dict[int, str]:
    """Item id -> item type, from the ``infe`` entries (versions 2 and 3 carry a type)."""
    reader = _Reader(data, box.start, box.end)
    version = reader.full_box()
    reader.skip(2 if version == 0 else 4)  # entry_count: the boxes that follow are what counts
    types: dict[int, str] = {}
    for entry in _boxes(data, reader.pos, box.end):
        if entry.type != "infe":
            continue
        item = _Reader(data, entry.start, entry.end)
        infe_version = item.full_box()
        if infe_version < 2:
            continue  # versions 0 and 1 predate item types
        item_id = item.u16() if infe_version == 2 else item.u32()
        item.skip(2)  # item_protection_index
        types[item_id] = _fourcc(item.take(4))
    return types


def _read_property(data: bytes, box: _Box) -> tuple[str, tuple[int, int]]:
    """An ``ispe`` as (width, height), an ``irot`` as (quarter turns, 0); others as (0, 0)."""
    reader = _Reader(data, box.start, box.end)
    if box.type == "ispe":
        reader.full_box()
        return "ispe", (reader.u32(), reader.u32())
    if box.type == "irot":
        return "irot", (reader.u8() & 0x03, 0)
    return box.type, (0, 0)


def _read_ipma(data: bytes, box: _Box) -> dict[int, list[int]]:
    """Item id -> its property indexes (1-based into ``ipco``; 0 means none)."""
    reader = _Reader(data, box.start, box.end)
    version, flags = reader.full_box_with_flags()
    count = reader.u32()
    result: dict[int, list[int]] = {}
    for _ in range(count):  # each entry takes bytes: a lying count runs out of data and stops
        item = reader.u16() if version < 1 else reader.u32()
        links = reader.u8()
        indexes = []
        for _ in range(links):
            indexes.append(reader.u16() & 0x7FFF if flags & 1 else reader.u8() & 0x7F)
        result.setdefault(item, []).extend(indexes)
    return result


def _boxes(data: bytes, start: int, end: int, *, top: bool = False) -> Iterator[_Box]:
    """The boxes laid end to end in ``data[start:end]``; a top-level box may run past the end.

    A box that claims more bytes than its parent holds is an error, except at the top level,
    where the given bytes are only the head of the file: such a box is yielded cut to what is
    there, and reading inside it fails where its bytes run out.
    """
    pos, seen = start, 0
    while pos < end:
        seen += 1
        if seen > _MAX_BOXES:
            raise IsoBmffError("too many boxes")
        if end - pos < 8:
            raise IsoBmffError("a box header is cut short")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise IsoBmffError("a 64-bit box size is cut short")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            if not top:
                raise IsoBmffError("a box inside another claims to run to the end of the file")
            size = end - pos  # "to the end of the file": of the bytes we have, at least
        if size < header:
            raise IsoBmffError(f"a box claims {size} bytes, less than its own header")
        box_end = pos + size
        if box_end > end:
            if not top:
                raise IsoBmffError(f"a {_fourcc(kind)!r} box overruns its parent")
            yield _Box(_fourcc(kind), pos + header, end, cut=True)
            return
        yield _Box(_fourcc(kind), pos + header, box_end)
        pos = box_end


def _fourcc(raw: bytes) -> str:
    """A four-character code as text (Latin-1: any byte maps to one character)."""
    return raw.decode("latin-1")


class _Reader:
    """Big-endian fields read from ``data[pos:end]``; reading past ``end`` is an IsoBmffError."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        if self.end - self.pos < count:
            raise IsoBmffError("a box is shorter than its fields")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def skip(self, count: int) -> None:
        """Step over ``count`` bytes."""
        self.take(count)

    def u8(self) -> int:
        """An unsigned byte."""
        return self.take(1)[0]

    def u16(self) -> int:
        """An unsigned 16-bit integer."""
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        """An unsigned 32-bit integer."""
        return int.from_bytes(self.take(4), "big")

    def full_box(self) -> int:
        """A FullBox's version (its 24 flag bits skipped)."""
        return self.full_box_with_flags()[0]

    def full_box_with_flags(self) -> tuple[int, int]:
        """A FullBox's version and flags."""
        word = self.u32()
        return word >> 24, word & 0xFFFFFF
