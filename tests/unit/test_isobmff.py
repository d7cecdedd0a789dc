"""AVIF/HEIC headers from the first bytes: real files, crafted lies, and fuzzed garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.isobmff import IsoBmffError, heif_content_type, read_heif_info
from tests.variants import craft
from tests.variants.craft import box, full_box

HEAD = 64 * 1024  # what confirm reads


def _container(**options: object) -> bytes:
    """An AVIF-branded container with one av01 item of 640x480 (see craft.heif_container)."""
    values: dict[str, object] = {
        "brands": ("avif", "mif1", "miaf"),
        "item_type": "av01",
        "sizes": ((640, 480),),
    }
    values.update(options)
    return craft.heif_container(**values)  # type: ignore[arg-type]


def _error(data: bytes) -> str:
    with pytest.raises(IsoBmffError) as caught:
        read_heif_info(data)
    return str(caught.value)


# --- real files from the bundled encoder ------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "alpha"), [(640, 480, False), (33, 4097, True), (1, 1, False)]
)
def test_avif_written_by_libvips(width: int, height: int, alpha: bool) -> None:
    data = craft.avif(width, height, alpha=alpha)
    info = read_heif_info(data[:HEAD])
    assert info.content_type == "image/avif"
    assert info.major_brand == "avif"
    assert "mif1" in info.brands
    assert info.primary_item_type == "av01"
    assert (info.width, info.height, info.rotation) == (width, height, 0)
    assert info.max_pixels == width * height  # the alpha item has the same size
    assert heif_content_type(data[:32]) == "image/avif"


def test_large_avif_is_measured_from_its_first_64_kib() -> None:
    data = craft.avif(8000, 5000)
    info = read_heif_info(data[:HEAD])
    assert (info.width, info.height, info.max_pixels) == (8000, 5000, 40_000_000)


def test_heic_container() -> None:
    data = craft.heif_container(
        ("heic", "mif1"), "hvc1", ((4032, 3024),), config=craft.hevc_config()
    )
    info = read_heif_info(data)
    assert (info.content_type, info.primary_item_type, info.width, info.height) == (
        "image/heic",
        "hvc1",
        4032,
        3024,
    )


@pytest.mark.parametrize(
    ("brands", "expected"),
    [
        (("avif", "mif1"), "image/avif"),
        (("mif1", "avif", "miaf"), "image/avif"),  # AVIF as a compatible brand
        (("avis", "msf1"), "image/avif"),
        (("heic", "mif1"), "image/heic"),
        (("mif1", "heic"), "image/heic"),
        (("heix", "mif1"), "image/heic"),
        (("mif1", "miaf"), "image/heif"),
        (("isom", "mp41"), None),
        (("qt  ",), None),
    ],
)
def test_brands_name_the_type(brands: tuple[str, ...], expected: str | None) -> None:
    assert heif_content_type(_container(brands=brands)) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8\xff\xe0",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,
        b"GIF89a",
        b"RIFF\x00\x00\x00\x00WEBP",
    ],
)
def test_other_files_have_no_heif_type(data: bytes) -> None:
    assert heif_content_type(data) is None
    with pytest.raises(IsoBmffError):
        read_heif_info(data)


def test_brands_naming_neither_avif_nor_heic_are_refused() -> None:
    assert "name neither AVIF nor HEIC" in _error(_container(brands=("isom", "mp41")))


# --- the primary item and several sizes --------------------------------------------------------


def test_the_primary_items_size_is_reported_and_the_largest_claimed_is_kept() -> None:
    # A grid-like file: the primary item is linked to the second ispe; a tile is larger.
    info = read_heif_info(_container(sizes=((9000, 9000), (640, 480)), primary_property=2))
    assert (info.width, info.height) == (640, 480)
    assert info.max_pixels == 81_000_000


def test_an_unresolvable_primary_reports_the_largest_size() -> None:
    info = read_heif_info(_container(sizes=((100, 100), (5000, 4000)), primary_property=77))
    assert (info.width, info.height, info.max_pixels) == (5000, 4000, 20_000_000)


def test_rotation_of_the_primary_item() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00avifmif1")
    ipco = box("ipco", full_box("ispe", struct.pack(">II", 400, 300)) + box("irot", b"\x01"))
    ipma = full_box("ipma", struct.pack(">IHB", 1, 1, 2) + bytes([0x81, 0x82]))
    meta = full_box("meta", full_box("pitm", struct.pack(">H", 1)) + box("iprp", ipco + ipma))
    info = read_heif_info(ftyp + meta)
    assert (info.width, info.height, info.rotation) == (400, 300, 90)


def test_32_bit_item_ids_and_16_bit_property_indexes() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    pitm = full_box("pitm", struct.pack(">I", 70000), version=1)
    infe = full_box("infe", struct.pack(">IH", 70000, 0) + b"av01", version=3)
    iinf = full_box("iinf", struct.pack(">I", 1) + infe, version=1)
    ipco = box(
        "ipco",
        full_box("ispe", struct.pack(">II", 10, 10)) + full_box("ispe", struct.pack(">II", 20, 30)),
    )
    ipma = full_box(
        "ipma", struct.pack(">IIB", 1, 70000, 1) + struct.pack(">H", 0x8002), version=1, flags=1
    )
    meta = full_box("meta", pitm + iinf + box("iprp", ipco + ipma))
    info = read_heif_info(ftyp + meta)
    assert (info.primary_item_type, info.width, info.height) == ("av01", 20, 30)


def test_a_64_bit_box_size_is_understood() -> None:
    payload = b"avif\x00\x00\x00\x00mif1"
    ftyp = struct.pack(">I4sQ", 1, b"ftyp", 16 + len(payload)) + payload
    data = _container()
    plain_ftyp_length = struct.unpack(">I", data[:4])[0]
    info = read_heif_info(ftyp + data[plain_ftyp_length:])
    assert (info.width, info.height) == (640, 480)


def test_mdat_before_meta_beyond_the_head_is_reported() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    mdat = struct.pack(">I", 10_000_000) + b"mdat" + b"\x00" * 100
    assert "no meta box in the first" in _error(ftyp + mdat)


# --- hostile headers ---------------------------------------------------------------------------


def test_a_file_not_starting_with_ftyp_is_refused() -> None:
    data = _container()
    ftyp_length = struct.unpack(">I", data[:4])[0]
    assert "does not start with an ftyp box" in _error(data[ftyp_length:])


@pytest.mark.parametrize("payload", [b"avi", b"avif\x00\x00\x00", b"avif\x00\x00\x00\x00mif"])
def test_a_malformed_ftyp_is_refused(payload: bytes) -> None:
    assert "ftyp" in _error(box("ftyp", payload) + box("free"))


@pytest.mark.parametrize("cut", [3, 8, 20, 40, 100, 200, -10, -30])
def test_every_truncation_is_an_error_or_a_full_answer(cut: int) -> None:
    data = _container(data=b"")  # the file ends with an empty mdat: cuts land in the header
    data = data[:cut] if cut > 0 else data[: len(data) + cut]
    with pytest.raises(IsoBmffError):
        read_heif_info(data)


def test_a_meta_box_running_past_the_head_is_refused() -> None:
    data = _container()
    cut = data[: len(data) - 40]
    assert "runs past" in _error(cut) or "cut short" in _error(cut) or "shorter" in _error(cut)
    huge = data.replace(b"meta", b"meta", 1)
    at = huge.index(b"meta") - 4
    huge = huge[:at] + struct.pack(">I", 0xFFFFFFFF) + huge[at + 4 :]
    assert "runs past the first" in _error(huge)


@pytest.mark.parametrize("size", [0, 4, 7])
def test_box_sizes_of_zero_and_below_the_header_inside_meta(size: int) -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    bad_child = struct.pack(">I4s", size, b"pitm") + b"\x00" * 8
    meta = full_box("meta", bad_child)
    message = _error(ftyp + meta)
    assert (
        "to the end of the file" in message if size == 0 else "less than its own header" in message
    )


def test_size_zero_at_the_top_level_runs_to_the_end() -> None:
    data = _container(data=b"")
    at = data.index(b"meta") - 4
    (meta_size,) = struct.unpack(">I", data[at : at + 4])
    unsized = data[:at] + struct.pack(">I", 0) + data[at + 4 : at + meta_size]
    assert (read_heif_info(unsized).width, read_heif_info(unsized).height) == (640, 480)


@pytest.mark.parametrize("large", [0, 8, 15])
def test_a_64_bit_size_below_the_header_is_refused(large: int) -> None:
    ftyp = struct.pack(">I4sQ", 1, b"ftyp", large) + b"avif\x00\x00\x00\x00"
    assert "less than its own header" in _error(ftyp)


def test_a_cut_64_bit_size_is_refused() -> None:
    assert "64-bit box size is cut short" in _error(struct.pack(">I4s", 1, b"ftyp") + b"\x00\x00")


def test_a_child_overrunning_its_parent_is_refused() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    child = struct.pack(">I4s", 500, b"iprp") + b"\x00" * 8
    assert "overruns its parent" in _error(ftyp + full_box("meta", child))


def test_an_ipma_count_larger_than_its_bytes_is_refused_quickly() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    ipco = box("ipco", full_box("ispe", struct.pack(">II", 10, 10)))
    ipma = full_box("ipma", struct.pack(">I", 0xFFFFFFFF) + b"\x00\x01\x01\x81")
    assert "shorter than its fields" in _error(ftyp + full_box("meta", box("iprp", ipco + ipma)))


def test_a_cut_ispe_is_refused() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    ipco = box("ipco", full_box("ispe", b"\x00\x00\x01"))
    assert "shorter than its fields" in _error(ftyp + full_box("meta", box("iprp", ipco)))


@pytest.mark.parametrize("size", [(0, 480), (640, 0)])
def test_an_empty_size_is_refused(size: tuple[int, int]) -> None:
    assert "is empty" in _error(_container(sizes=(size,)))


def test_no_ispe_is_refused() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    assert "no ispe" in _error(ftyp + full_box("meta", box("iprp", box("ipco"))))


def test_nesting_is_not_followed_and_box_floods_stop() -> None:
    ftyp = box("ftyp", b"avif\x00\x00\x00\x00")
    nested = box("ispe", b"")
    for _ in range(2000):  # meta inside iprp inside meta ...: never descended into
        nested = full_box("meta", box("iprp", nested))
    assert "no ispe" in _error(ftyp + full_box("meta", nested))
    flood = full_box("meta", box("free") * 5000)
    assert "too many boxes" in _error(ftyp + flood)


# --- fuzz: nothing but a HeifInfo or an IsoBmffError ever comes out ---------------------------


def _parse_or_refuse(data: bytes) -> None:
    try:
        info = read_heif_info(data)
    except IsoBmffError:
        return
    assert info.width >= 1 and info.height >= 1
    assert info.max_pixels >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    _parse_or_refuse(data)
    _parse_or_refuse(box("ftyp", b"avif\x00\x00\x00\x00") + data)


VALID = _container(sizes=((640, 480), (64, 64)), config=craft.hevc_config())


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
    st.integers(0, len(VALID)),
)
def test_fuzz_mutated_valid_header(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for index, value in flips:
        data[index] = value
    _parse_or_refuse(bytes(data[:cut]))
