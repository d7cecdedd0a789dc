"""The demo's sample library: pictures drawn here in pure Python, uploaded through the API.

``make run`` seeds a few images for two users (``BROKER_DEMO_SEED``), so the admin UI first
shows search, kinds and primaries at work. Each picture is drawn row by row from spans (a
gradient row is one colour, a disc or a ridge covers a span of it) and written as a PNG with
``zlib``: no download, no image library, the same bytes on every run. Every image goes the way
a client's does: presign (with its MD5) → a real HTTP PUT of the bytes to the presigned URL
with every header the grant returned → confirm, then a PATCH where it is a primary.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import OpenerDirector, ProxyHandler, Request, build_opener

RGB = tuple[int, int, int]
Point = tuple[float, float]

HTTP_TIMEOUT_S = 10
# The broker is called over loopback: never through a proxy from the environment. The PUT goes
# the way any client's would, proxies included.
_LOOPBACK = build_opener(ProxyHandler({}))
_ANYWHERE = build_opener()


# ---- drawing ----------------------------------------------------------------------------------


class Canvas:
    """An RGB picture as rows of bytes, painted with spans."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.rows = [bytearray(3 * width) for _ in range(height)]

    def sky(self, top: RGB, bottom: RGB, *, start: int = 0, end: int | None = None) -> None:
        """Fill rows ``start``..``end`` with a vertical gradient from ``top`` to ``bottom``."""
        end = self.height if end is None else end
        for y in range(start, end):
            colour = _mix(top, bottom, (y - start) / max(1, end - start - 1))
            self.rows[y] = bytearray(bytes(colour) * self.width)

    def span(self, y: int, x0: float, x1: float, colour: RGB) -> None:
        """Paint row ``y`` from ``x0`` to ``x1`` (clipped to the picture)."""
        left, right = max(0, round(x0)), min(self.width, round(x1))
        if 0 <= y < self.height and left < right:
            self.rows[y][3 * left : 3 * right] = bytes(colour) * (right - left)

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, colour: RGB | Callable[[int], RGB]
    ) -> None:
        """A filled ellipse; ``colour`` may vary by row (a function of ``y``)."""
        for y in range(max(0, math.floor(cy - ry)), min(self.height, math.ceil(cy + ry) + 1)):
            t = 1 - ((y - cy) / ry) ** 2
            if t > 0:
                half = rx * math.sqrt(t)
                self.span(y, cx - half, cx + half, colour(y) if callable(colour) else colour)

    def below(self, ridge: Sequence[Point], colour: Callable[[int], RGB]) -> None:
        """Fill everything under a ridge line (points left to right), shaded row by row."""
        left, right = ridge[0][0], ridge[-1][0]
        lowest = max(y for _, y in ridge)
        for y in range(max(0, math.floor(min(y for _, y in ridge))), self.height):
            shade = colour(y)
            if y >= lowest:  # under the whole ridge: one span
                self.span(y, left, right, shade)
                continue
            start: float | None = None  # where the run of covered ground on this row began
            for (xa, ya), (xb, yb) in pairwise(ridge):
                if ya <= y and yb <= y:
                    start = xa if start is None else start
                elif ya <= y:  # the ridge rises above this row within the segment
                    self.span(y, xa if start is None else start, _cross(xa, ya, xb, yb, y), shade)
                    start = None
                elif yb <= y:  # it comes back down to this row within the segment
                    start = _cross(xa, ya, xb, yb, y)
            if start is not None:
                self.span(y, start, right, shade)

    def mirror(self, horizon: int, darken: float) -> None:
        """Reflect the rows above ``horizon`` below it, darker (a still lake)."""
        table = bytes(round(value * darken) for value in range(256))
        for offset in range(self.height - horizon):
            source = horizon - 1 - offset
            if source < 0:
                break
            self.rows[horizon + offset][:] = self.rows[source].translate(table)

    def png(self) -> bytes:
        """The picture as an 8-bit RGB PNG."""
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b"")
        )


def _cross(xa: float, ya: float, xb: float, yb: float, y: float) -> float:
    """Where the segment from (xa, ya) to (xb, yb) crosses row ``y``."""
    return xa + (xb - xa) * (y - ya) / (yb - ya)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    t = min(1.0, max(0.0, t))
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _shade(top: RGB, bottom: RGB, y0: float, y1: float) -> Callable[[int], RGB]:
    return lambda y: _mix(top, bottom, (y - y0) / max(1.0, y1 - y0))


def _ridge(width: int, base: float, waves: Sequence[tuple[float, float, float]]) -> list[Point]:
    """Points of a rolling skyline: ``base`` plus sines of (amplitude, wavelength, phase)."""
    return [
        (
            x,
            base
            + sum(a * math.sin(2 * math.pi * (x / length + phase)) for a, length, phase in waves),
        )
        for x in range(0, width + 8, 8)
    ]


def _summits(
    width: int, base: float, count: int, rise: tuple[float, float], seed: int
) -> list[Point]:
    """Points of a mountain range: ``count`` summits with straight, slightly rough slopes."""
    rng = random.Random(seed)
    peaks = [(rng.uniform(0, width), base - rng.uniform(*rise)) for _ in range(count)]
    slope = rng.uniform(0.55, 0.8)
    return [
        (x, min([base] + [py + slope * abs(x - px) for px, py in peaks]) + 3 * math.sin(x / 9.0))
        for x in range(0, width + 8, 8)
    ]


def sunset(width: int = 720, height: int = 480) -> bytes:
    """An orange sky over a violet sea, the sun sinking, its path rippling on the water."""
    canvas = Canvas(width, height)
    horizon = height * 2 // 3
    sun_x, radius = width * 0.62, height * 0.16
    canvas.sky((255, 183, 94), (236, 72, 153), end=horizon)
    canvas.ellipse(sun_x, horizon - radius * 0.35, radius, radius, (255, 236, 179))
    canvas.sky((109, 40, 217), (30, 27, 75), start=horizon)
    for y in range(horizon, height, 6):
        half = radius * (1 - (y - horizon) / (height - horizon)) + 4
        for row in (y, y + 1, y + 2):
            wobble = 10 * math.sin(y * 0.7)
            canvas.span(row, sun_x - half + wobble, sun_x + half + wobble, (253, 186, 116))
    return canvas.png()


def alps(width: int = 1200, height: int = 400) -> bytes:
    """Three ranges of mountains fading into a pale morning sky."""
    canvas = Canvas(width, height)
    canvas.sky((186, 230, 253), (240, 249, 255))
    ranges = [  # far to near: base line, summits, how high they rise, shading, seed
        (height * 0.7, 4, (120, 200), (148, 163, 184), (226, 232, 240), 11),
        (height * 0.82, 5, (80, 150), (71, 85, 105), (148, 163, 184), 12),
        (height * 0.92, 7, (30, 90), (30, 41, 59), (51, 65, 85), 13),
    ]
    for base, count, rise, top, bottom, seed in ranges:
        ridge = _summits(width, base, count, rise, seed)
        canvas.below(ridge, _shade(top, bottom, base - rise[1], height))
    return canvas.png()


def lake(width: int = 1200, height: int = 400) -> bytes:
    """A dawn sky and a dark ridge, mirrored in a still lake with a few ripples."""
    canvas = Canvas(width, height)
    horizon = height * 11 // 20
    canvas.sky((254, 215, 170), (125, 211, 252), end=horizon)
    canvas.ellipse(width * 0.3, horizon * 0.45, 38, 38, (255, 247, 237))
    ridge = _ridge(width, horizon * 0.72, [(30, 380, 1.0), (12, 110, 0.5)])
    canvas.below(ridge, _shade((21, 94, 117), (15, 23, 42), horizon * 0.5, horizon))
    canvas.mirror(horizon, 0.6)
    ripples = random.Random(3)
    for _ in range(40):
        x, y = ripples.uniform(0, width), ripples.randrange(horizon + 4, height)
        length = ripples.uniform(20, 120) * (y - horizon) / (height - horizon) + 10
        canvas.span(y, x, x + length, (186, 230, 253))
    return canvas.png()


def night(width: int = 720, height: int = 480) -> bytes:
    """A starry night over dunes, under a crescent moon."""
    canvas = Canvas(width, height)
    top, bottom = (2, 6, 23), (30, 58, 138)
    canvas.sky(top, bottom)
    stars = random.Random(7)
    for _ in range(220):
        x, y, size = stars.uniform(0, width), stars.randrange(height), stars.choice((1, 1, 1, 2))
        for row in range(y, y + size):
            canvas.span(row, x, x + size, _mix((148, 163, 184), (255, 255, 255), stars.random()))
    moon_x, moon_y, radius = width * 0.75, height * 0.25, height * 0.11
    canvas.ellipse(moon_x, moon_y, radius, radius, (254, 249, 195))
    sky = _shade(top, bottom, 0, height - 1)
    canvas.ellipse(moon_x + radius * 0.45, moon_y - radius * 0.2, radius, radius, sky)
    ridge = _ridge(width, height * 0.82, [(18, 300, 0.3), (6, 90, 1.1)])
    canvas.below(ridge, _shade((30, 27, 75), (15, 23, 42), height * 0.75, height))
    return canvas.png()


def dunes(width: int = 720, height: int = 480) -> bytes:
    """Layered dunes under a hot noon sky."""
    canvas = Canvas(width, height)
    canvas.sky((56, 189, 248), (224, 242, 254))
    layers = [
        (height * 0.45, [(30, 420, 0.0), (10, 130, 1.0)], (253, 230, 138), (251, 191, 36)),
        (height * 0.6, [(34, 360, 2.2), (12, 110, 0.4)], (251, 191, 36), (217, 119, 6)),
        (height * 0.78, [(26, 500, 4.0), (9, 150, 2.0)], (234, 88, 12), (154, 52, 18)),
    ]
    for base, waves, top, bottom in layers:
        canvas.below(_ridge(width, base, waves), _shade(top, bottom, base - 40, height))
    return canvas.png()


def portrait(
    background: tuple[RGB, RGB], face: RGB, hair: RGB, shirt: RGB, size: int = 400
) -> bytes:
    """An avatar: hair, head, neck and shoulders on a soft gradient."""
    canvas = Canvas(size, size)
    canvas.sky(*background)
    canvas.ellipse(size / 2, size * 0.4, size * 0.2, size * 0.22, hair)
    canvas.ellipse(size / 2, size * 0.66, size * 0.06, size * 0.1, face)
    canvas.ellipse(size / 2, size * 1.05, size * 0.38, size * 0.3, shirt)
    canvas.ellipse(size / 2, size * 0.46, size * 0.16, size * 0.19, face)
    return canvas.png()


# ---- the library --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One sample image: whose it is, what the upload declares, and how to draw it."""

    owner: str
    filename: str
    caption: str
    kind: str
    primary: bool
    draw: Callable[[], bytes]

    def data(self) -> bytes:
        """The PNG bytes (the same on every run)."""
        return self.draw()


SAMPLES: tuple[Sample, ...] = (
    Sample("alice", "sunset-bay.png", "Sunset over the bay", "gallery", False, sunset),
    Sample("alice", "night-dunes.png", "Crescent moon over the dunes", "gallery", False, night),
    Sample("alice", "alps.png", "Alpine morning, seen from the hut", "cover", True, alps),
    Sample(
        "alice",
        "alice.png",
        "Alice, summer portrait",
        "profile",
        True,
        lambda: portrait(
            ((45, 212, 191), (14, 116, 144)), (254, 215, 170), (120, 53, 15), (190, 24, 93)
        ),
    ),
    Sample(
        "alice",
        "alice-2019.png",
        "Alice, an older portrait",
        "profile",
        False,
        lambda: portrait(
            ((196, 181, 253), (91, 33, 182)), (253, 186, 116), (120, 53, 15), (30, 64, 175)
        ),
    ),
    Sample("bob", "lake-dawn.png", "Still lake at dawn", "cover", True, lake),
    Sample("bob", "dunes-noon.png", "Dunes at noon", "gallery", False, dunes),
    Sample(
        "bob",
        "bob.png",
        "Bob at the climbing wall",
        "profile",
        True,
        lambda: portrait(
            ((253, 224, 71), (234, 88, 12)), (180, 120, 80), (28, 25, 23), (21, 128, 61)
        ),
    ),
)


# ---- uploading ----------------------------------------------------------------------------------


class SeedError(RuntimeError):
    """A step of seeding failed; the message says which and what the server answered."""


def seed(
    api_url: str,
    tokens: Mapping[str, str],
    stopping: threading.Event,
    samples: Sequence[Sample] = SAMPLES,
) -> list[dict[str, Any]]:
    """Upload the samples through the API at ``api_url``; the images as the API answered them."""
    images = []
    for number, sample in enumerate(samples, start=1):
        if stopping.is_set():
            break
        images.append(upload(api_url, tokens[sample.owner], sample, f"demo-seed-{number}"))
    return images


def upload(api_url: str, token: str, sample: Sample, request_id: str) -> dict[str, Any]:
    """Presign → PUT to the bucket → confirm (→ make primary) one sample; the image."""
    data = sample.data()
    api = _Api(api_url, token, request_id)
    grant = api.call(
        "POST",
        "/images/presign-upload",
        {
            "filename": sample.filename,
            "filetype": "image/png",
            "size": len(data),
            "content_md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "kind": sample.kind,
            "caption": sample.caption,
        },
    )
    # Every header the grant names is signed or conditional (If-None-Match): send them all.
    put = Request(grant["url"], data=data, headers=grant["headers"], method=grant["method"])
    _open(_ANYWHERE, put, f"{grant['method']} to the presigned URL")
    image: dict[str, Any] = api.call("POST", "/images", {"key": grant["key"]})["image"]
    if sample.primary:
        image = api.call("PATCH", f"/images/{image['id']}", {"is_primary": True})["image"]
    return image


@dataclass(frozen=True)
class _Api:
    """The broker's API as one caller (token) within one logical operation (request id)."""

    base_url: str
    token: str
    request_id: str

    def call(self, method: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Send a JSON body to the API; the JSON answer, or SeedError with the error's code."""
        request = Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "X-Request-ID": self.request_id,
            },
        )
        answer: dict[str, Any] = json.loads(_open(_LOOPBACK, request, f"{method} {path}"))
        return answer


def _open(opener: OpenerDirector, request: Request, what: str) -> bytes:
    try:
        with opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
            body: bytes = response.read()
            return body
    except HTTPError as e:
        raise SeedError(f"{what} answered {e.code}: {_reason(e.read())}") from None
    except (URLError, OSError) as e:
        raise SeedError(f"{what} failed: {e}") from None


def _reason(body: bytes) -> str:
    # The broker answers with the contract's envelope; S3 with an XML <Error>.
    try:
        error = json.loads(body)["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        found = re.search(rb"<Code>([^<]{1,100})</Code>", body)
        return found.group(1).decode(errors="replace") if found else "no details"
