"""The broker's rules as plain functions and dataclasses: no Flask, no boto3, no pymongo.

Key generation, the type/extension allowlist, size and dimension limits, display-name and
Content-Disposition sanitising, and the checks confirm runs against what the bucket holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from broker import imageinfo
from broker.errors import Forbidden, TooLarge, UnsupportedType, UploadInvalid, ValidationFailed
from broker.multipart import MultipartPlan, normalise_etag
from broker.variants.records import Variant

# The only types the broker knows how to verify (magic bytes, or an AVIF's ftyp brand) and
# measure; the configured allowlist must be a subset. The extension of every key comes from
# here, never the filename.
KNOWN_IMAGE_TYPES: dict[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/avif": ".avif",
}
# The allowlist when none is configured: what every browser displays without variants.
DEFAULT_ALLOWED_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Types people will ask for that the broker refuses whatever the allowlist says, and why.
_NO_HEVC = (
    "HEIC/HEIF images cannot be converted for display: the bundled libvips has no HEVC "
    "decoder (no browser but Safari shows them); convert to JPEG or AVIF before uploading"
)
REFUSED_IMAGE_TYPES: dict[str, str] = {
    "image/heic": _NO_HEVC,
    "image/heif": _NO_HEVC,
    "image/heic-sequence": _NO_HEVC,
    "image/heif-sequence": _NO_HEVC,
}
# Extensions a display name may keep for each type; any other is replaced by the type's own.
_NAME_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "image/avif": (".avif",),
}

# Confirm reads at most this much of a fresh upload: enough for every header we parse
# (a JPEG's SOF marker can sit behind large EXIF/ICC segments), never the whole image.
VERIFY_READ_BYTES = 64 * 1024

_SAFE_SUB = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_DISPLAY_NAME = 255


def utcnow() -> datetime:
    """Now in UTC, truncated to milliseconds (MongoDB's resolution, so reads equal writes)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Principal:
    """The caller: the token's ``sub`` and whether its ``roles`` hold ``admin`` or ``reader``."""

    sub: str
    is_admin: bool = False
    is_reader: bool = False

    @property
    def sees_everything(self) -> bool:
        """Whether the caller sees every image: an admin, or a reader."""
        return self.is_admin or self.is_reader

    @property
    def may_write(self) -> bool:
        """Whether the caller may change anything at all: a reader token changes nothing.

        A token holding both roles is an admin's: ``admin`` grants changes, ``reader`` only
        restricts a token that holds nothing more.
        """
        return self.is_admin or not self.is_reader


# Visibility of an image: its owner's (and admins' and readers') alone, or every authenticated
# caller's, and anyone's who holds its public link.
PRIVATE = "private"
PUBLIC = "public"
VISIBILITIES = (PRIVATE, PUBLIC)


def may_see(principal: Principal, owner: str, visibility: str) -> bool:
    """Whether the caller may see and sign an image of ``owner`` with ``visibility``."""
    return principal.sees_everything or principal.sub == owner or visibility == PUBLIC


def may_change(principal: Principal, owner: str) -> bool:
    """Whether the caller may change an image of ``owner``: its owner or an admin, no reader."""
    return principal.is_admin or (principal.may_write and principal.sub == owner)


def check_may_change(principal: Principal, owner: str) -> None:
    """Refuse (403) a change to an image the caller can see but not change."""
    if not may_change(principal, owner):
        raise Forbidden(
            "a reader token changes nothing"
            if not principal.may_write
            else "only the image's owner or an admin can change it"
        )


def check_may_write(principal: Principal) -> None:
    """Refuse (403) an upload, or any other change, to a reader token."""
    if not principal.may_write:
        raise Forbidden("a reader token changes nothing: it cannot upload")


def listing_scope(principal: Principal, owner: str | None) -> tuple[str | None, str | None]:
    """Whose images a listing shows and of which visibility (None: any), given its ``owner``.

    An admin or a reader without ``owner`` sees everyone's, anyone else their own; ``owner``
    naming someone else gives an admin or a reader all of theirs, anyone else their public ones.
    """
    if owner is None:
        return (None, None) if principal.sees_everything else (principal.sub, None)
    if owner == principal.sub or principal.sees_everything:
        return owner, None
    return owner, PUBLIC


def initial_visibility(asked: str | None, kind: str, public_kinds: tuple[str, ...]) -> str:
    """A new image's visibility: the one the upload asked for, else public for public kinds."""
    if asked is not None:
        return asked
    return PUBLIC if kind in public_kinds else PRIVATE


# A public link's token: 32 random bytes (256 bits) from the OS, base64url without padding. It
# is not derived from anything about the image, so nothing known about an image (its id, key,
# owner) leads to its link; it is stored on the image and replaced each time it turns public.
PUBLIC_TOKEN_BYTES = 32
_PUBLIC_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


# Where public links live on the broker: <base URL>/p/<token>.
PUBLIC_LINK_PREFIX = "/p"


def public_link(base_url: str, token: str) -> str:
    """The absolute public link of ``token`` on the broker at ``base_url``."""
    return f"{base_url.rstrip('/')}{PUBLIC_LINK_PREFIX}/{token}"


def new_public_token() -> str:
    """A fresh, unguessable public-link token."""
    return secrets.token_urlsafe(PUBLIC_TOKEN_BYTES)


def is_public_token(text: str) -> bool:
    """Whether ``text`` has the shape of a public-link token (anything else is no link)."""
    return _PUBLIC_TOKEN.fullmatch(text) is not None


@dataclass(frozen=True)
class UploadPolicy:
    """What the broker accepts, from configuration."""

    allowed_types: tuple[str, ...]
    max_upload_bytes: int
    kinds: tuple[str, ...]
    max_pixels: int
    min_width: int
    min_height: int
    max_width: int
    max_height: int

    @property
    def default_kind(self) -> str:
        """The kind of an upload that names none: ``gallery`` when configured, else the first."""
        return "gallery" if "gallery" in self.kinds else self.kinds[0]


@dataclass
class PendingUpload:
    """An upload that was presigned and not yet confirmed."""

    id: str
    key: str
    owner: str
    filename: str
    content_type: str
    size: int
    kind: str
    caption: str | None
    content_md5: str | None
    checksum_sha256: str | None
    state: str
    created_at: datetime
    expires_at: datetime
    confirm_by: datetime
    # Whether the upload holds a reservation of its owner's quota (taken at presign). Records
    # from before presign reserved hold none; confirm reserves for them.
    quota_held: bool = False
    # Set for a multipart upload (POST /images/multipart): how it is cut into parts. Such an
    # upload ends by complete, never by confirm.
    multipart: MultipartPlan | None = None
    # The visibility asked for at presign; None: the default for the kind, decided at confirm
    # (where the kind may still change).
    visibility: str | None = None


@dataclass
class Image:
    """A confirmed image as recorded in MongoDB."""

    id: str
    key: str
    owner: str
    filename: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    content_md5: str | None
    etag: str | None
    kind: str
    is_primary: bool
    caption: str | None
    tags: list[str] = field(default_factory=list)
    usage_count: int = 0
    last_used_at: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    visibility: str = PRIVATE
    # The token of the public link: set while the image is public, never while it is private.
    public_token: str | None = None
    # name → state (and once ready: key, type, size); see broker.variants.records.
    variants: dict[str, Variant] = field(default_factory=dict)


@dataclass(frozen=True)
class SigningTarget:
    """What signing a GET needs, and who may have it signed.

    The object's fields never change after confirm; ``visibility`` and ``public_token`` do, so
    a cached target is trusted for them only as long as the lookup cache keeps it. ``variants``
    are as they were when the image was read (a pending one may be ready since).
    """

    id: str
    owner: str
    key: str
    content_type: str
    filename: str
    visibility: str = PRIVATE
    public_token: str | None = None
    variants: tuple[tuple[str, Variant], ...] = ()

    @classmethod
    def of(cls, image: Image) -> SigningTarget:
        """The signing target of an image."""
        return cls(
            image.id,
            image.owner,
            image.key,
            image.content_type,
            image.filename,
            image.visibility,
            image.public_token,
            tuple(image.variants.items()),
        )

    def variant(self, name: str) -> Variant | None:
        """The variant called ``name`` as it was read, or None."""
        return dict(self.variants).get(name)

    def visible_to(self, principal: Principal) -> bool:
        """Whether the caller may sign it: see :func:`may_see`."""
        return may_see(principal, self.owner, self.visibility)


@dataclass(frozen=True)
class ObjectHead:
    """What a HEAD of the stored object told us."""

    size: int
    content_type: str | None
    etag: str | None
    # Headers a PUT can store without the URL signing them (S3 keeps any Content-Encoding,
    # Cache-Control, ... a client adds, and RGW 16 also applies unsigned x-amz-* headers).
    # The broker signs none of them, so any value here was chosen by the uploader.
    stored_headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


# Objects carry this tag so a bucket lifecycle rule can expire what was never confirmed, even if
# the database is lost. The PUT URL signs the tag, so a client cannot choose another value.
STATE_TAG = "broker-state"
PENDING_TAG = "pending"
CONFIRMED_TAG = "confirmed"


# The Cache-Control every PUT URL signs, so the object stores a value the broker chose: a
# browser with its cache disabled (developer tools open, Playwright) adds "Cache-Control:
# no-cache" to every request unless the page set one. Signed GETs pin their own anyway.
STORED_CACHE_CONTROL = "private"


def pending_tagging() -> str:
    """The ``x-amz-tagging`` value a fresh upload is stored with."""
    return f"{STATE_TAG}={PENDING_TAG}"


# Pending-upload states. Only "pending" can be confirmed; the others answer 409.
PENDING = "pending"
CONFIRMED = "confirmed"
REJECTED = "rejected"
# The sweeper holds an overdue upload in "expiring" until its object is really gone, so a
# bucket failure midway leaves it to be retried rather than forgotten.
EXPIRING = "expiring"
EXPIRED = "expired"
ABORTED = "aborted"
# States in which an upload is over. Its PUT URL may still be replayed until it expires (after
# a reject or a delete it can store an object again), so the sweeper cleans its key once the
# URL is dead, unless a live image stands there.
ENDED = (CONFIRMED, REJECTED, EXPIRED, ABORTED)


def reported_state(state: str) -> str:
    """How a closed upload's state reads to a client: one being expired already is."""
    return EXPIRED if state == EXPIRING else state


def user_segment(sub: str) -> str:
    """The key prefix for a user: ``sub`` itself when it is plainly safe, else a hash of it.

    The hashed form contains a dot, which the plain form never does, so no ``sub`` can choose a
    plain value that lands in another user's prefix.
    """
    if _SAFE_SUB.fullmatch(sub):
        return sub
    return "u." + hashlib.sha256(sub.encode("utf-8")).hexdigest()[:32]


def extension_for(content_type: str) -> str:
    """The key extension for an allowed type."""
    return KNOWN_IMAGE_TYPES[content_type]


def new_object_key(sub: str, content_type: str) -> str:
    """A fresh, unique object key for the caller: ``<user>/<uuid4 hex><ext>``."""
    return f"{user_segment(sub)}/{uuid.uuid4().hex}{extension_for(content_type)}"


def new_upload_id() -> str:
    """An opaque id for a pending upload."""
    return uuid.uuid4().hex


def normalise_type(filetype: str) -> str:
    """Lower-case a MIME type and drop parameters (``image/JPEG; x=y`` → ``image/jpeg``)."""
    return filetype.split(";", 1)[0].strip().lower()


def check_declared_upload(policy: UploadPolicy, content_type: str, size: int, kind: str) -> None:
    """Refuse a presign whose declared type, size or kind the policy does not allow."""
    if content_type in REFUSED_IMAGE_TYPES:
        raise UnsupportedType(f"filetype: {REFUSED_IMAGE_TYPES[content_type]}")
    if content_type not in policy.allowed_types:
        raise UnsupportedType(
            f"filetype: {content_type} is not allowed (allowed: {', '.join(policy.allowed_types)})"
        )
    if size > policy.max_upload_bytes:
        raise TooLarge(
            f"size: must be at most {policy.max_upload_bytes}",
            details={"size": [f"must be at most {policy.max_upload_bytes}"]},
        )
    check_kind(policy, kind)


def field_error(field: str, message: str) -> ValidationFailed:
    """A validation error about one field, shaped like marshmallow's."""
    return ValidationFailed(f"{field}: {message}", details={field: [message]})


def check_kind(policy: UploadPolicy, kind: str) -> None:
    """Refuse a kind that is not configured."""
    if kind not in policy.kinds:
        raise field_error("kind", f"must be one of: {', '.join(policy.kinds)}")


def _decode_digest(field: str, value: str, algorithm: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise field_error(field, f"must be the base64 of a {size}-byte {algorithm} digest")
    return raw


def decode_md5(content_md5: str) -> bytes:
    """Decode a base64 Content-MD5 value; raise ValidationFailed if it is not 16 bytes."""
    return _decode_digest("content_md5", content_md5, "MD5", 16)


def check_sha256(checksum_sha256: str) -> None:
    """Raise ValidationFailed unless the value is the base64 of a 32-byte SHA-256 digest."""
    _decode_digest("checksum_sha256", checksum_sha256, "SHA-256", 32)


def display_name(filename: str, content_type: str | None = None) -> str:
    """The filename as stored and shown: no path, no control or bidi characters, bounded length.

    With ``content_type`` the name also ends in an extension of that (verified) type, so a
    download is never offered as ``invoice.html`` or ``x.png.php``. The key never uses it;
    this is only what people see and what Content-Disposition offers.
    """
    name = _clean_name(filename)
    if content_type is None:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and f".{ext.lower()}" in _NAME_EXTENSIONS[content_type]:
        return name
    # Replace what looks like an extension; otherwise append the type's.
    base = stem if dot and stem and 0 < len(ext) <= 10 and ext.isalnum() else name
    return base[: _MAX_DISPLAY_NAME - 5] + KNOWN_IMAGE_TYPES[content_type]


def _clean_name(filename: str) -> str:
    name = unicodedata.normalize("NFC", filename)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: control chars incl. NUL/CR/LF; Cf: format chars incl. RTL overrides; Z[lp]: separators.
    name = "".join(
        ch if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") else "" for ch in name
    )
    name = name.strip().strip(".").strip()
    if len(name) > _MAX_DISPLAY_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: _MAX_DISPLAY_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:_MAX_DISPLAY_NAME]
    return name or "image"


def content_disposition(disposition: str, filename: str) -> str:
    """A Content-Disposition nothing can break out of (RFC 6266, ``filename*`` for non-ASCII)."""
    name = display_name(filename)
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    # Quotes, backslashes, separators and anything outside printable ASCII would let a name
    # escape the quoted-string or confuse a browser's filename parser.
    ascii_name = re.sub(r"[^A-Za-z0-9 ._()+,=@-]", "_", ascii_name).strip() or "image"
    value = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def clamp_expires(requested: int | None, default: int, maximum: int) -> int:
    """The signed-GET lifetime: the requested one (or the default), never above the cap."""
    return min(requested if requested is not None else default, maximum)


def signing_window(now: datetime, window: int, lifetime: int, cap: int) -> tuple[datetime, int]:
    """When to sign a GET and for how long, so one window's requests get one URL.

    Signing at the window's start with ``window + lifetime`` seconds makes every request in the
    window produce the same URL (browsers and CDNs can cache it) while each stays valid for at
    least ``lifetime`` seconds from now. The price: a URL can be valid for up to
    ``window + lifetime`` seconds. That is bounded by ``cap`` (the configured maximum
    lifetime): the window shrinks to ``cap - lifetime``, so no URL ever outlives the cap, and a
    request for the full cap is signed now. ``window`` 0 always signs now for ``lifetime``.
    """
    now = now.replace(microsecond=0)
    window = min(window, cap - lifetime)
    if window <= 0:
        return now, lifetime
    epoch = int(now.timestamp())
    start = datetime.fromtimestamp(epoch - epoch % window, tz=UTC)
    return start, window + lifetime


def download_cache_control(valid_for: int) -> str:
    """The Cache-Control a signed GET pins, whatever the stored object carries.

    ``private``: the response is one viewer's grant, so no shared cache may serve it past the
    URL's expiry or the image's deletion. ``max-age`` of the URL's own lifetime: the browser
    keeps the bytes as long as the URL was granted for (one window's URL is reused, so pages
    re-render from cache). ``immutable``: a key's bytes never change (write-once URLs, keys never
    reused), so a reload need not revalidate.
    """
    return f"private, max-age={valid_for}, immutable"


def md5_from_etag(etag: str | None) -> str | None:
    """The base64 MD5 a plain single-part ETag stands for, or None when it is not an MD5."""
    if not etag:
        return None
    hexdigest = etag.strip('"')
    if not re.fullmatch(r"[0-9a-fA-F]{32}", hexdigest):
        return None
    return base64.b64encode(bytes.fromhex(hexdigest)).decode("ascii")


def check_object_head(
    pending: PendingUpload, head: ObjectHead | None, expected_etag: str | None = None
) -> None:
    """Compare what the bucket holds with what was declared at presign.

    ``expected_etag``: the ETag the object must have (a multipart object's composite ETag,
    which the digests its part URLs signed imply).
    """
    if head is None:
        raise UploadInvalid("the object was not found in the bucket: PUT it before confirming")
    if head.size != pending.size:
        raise UploadInvalid(f"size: the object has {head.size} bytes, {pending.size} were declared")
    stored_type = normalise_type(head.content_type or "")
    if stored_type != pending.content_type:
        raise UploadInvalid(
            f"filetype: the object is stored as {stored_type or 'no type'}, "
            f"{pending.content_type} was declared"
        )
    stored_md5 = md5_from_etag(head.etag)
    if pending.content_md5 and stored_md5 and stored_md5 != pending.content_md5:
        raise UploadInvalid("content_md5: the object's checksum differs from the declared one")
    if expected_etag is not None and normalise_etag(head.etag or "") != expected_etag:
        raise UploadInvalid(
            "etag: the object is not made of the parts that were signed "
            f"(its ETag is {normalise_etag(head.etag or '') or 'empty'}, "
            f"the signed parts make {expected_etag})"
        )
    signed = {"Cache-Control": STORED_CACHE_CONTROL}
    stored = [name for name, value in head.stored_headers.items() if signed.get(name) != value]
    metadata = [f"x-amz-meta-{name[:64]}" for name in sorted(head.metadata)]
    unsigned = sorted(stored) + metadata
    if unsigned:
        # Served back on every GET (a Content-Encoding breaks display, a Cache-Control outlives
        # the URL, a redirect sends readers elsewhere): only what the broker signed may shape it.
        raise UploadInvalid(
            "the object was stored with headers the upload URL did not sign: "
            + ", ".join(unsigned[:10])
        )


def check_image_content(
    policy: UploadPolicy, declared_type: str, head_bytes: bytes
) -> tuple[int, int]:
    """Check the magic bytes and the dimensions of a fresh upload; return (width, height)."""
    sniffed = imageinfo.sniff_type(head_bytes)
    if sniffed is None:
        raise UploadInvalid(f"filetype: the object is not a {declared_type} image")
    if sniffed != declared_type:
        raise UploadInvalid(
            f"filetype: the object is a {sniffed} image, {declared_type} was declared"
        )
    dimensions = imageinfo.dimensions(sniffed, head_bytes)
    if dimensions is None:
        raise UploadInvalid("the image header is truncated or unreadable: width and height unknown")
    width, height = dimensions
    if imageinfo.pixel_area(sniffed, head_bytes, width, height) > policy.max_pixels:
        raise UploadInvalid(
            f"the image has {width}x{height} pixels, more than the {policy.max_pixels} allowed"
        )
    if width < policy.min_width or height < policy.min_height:
        raise UploadInvalid(
            f"the image is {width}x{height}, smaller than the minimum "
            f"{policy.min_width}x{policy.min_height}"
        )
    if width > policy.max_width or height > policy.max_height:
        raise UploadInvalid(
            f"the image is {width}x{height}, larger than the maximum "
            f"{policy.max_width}x{policy.max_height}"
        )
    return width, height


def normalise_tags(tags: list[str]) -> list[str]:
    """Strip and de-duplicate tags, keeping their first-seen order."""
    seen: dict[str, None] = {}
    for tag in tags:
        cleaned = " ".join(tag.split())
        if cleaned and cleaned.lower() not in {t.lower() for t in seen}:
            seen[cleaned] = None
    return list(seen)
