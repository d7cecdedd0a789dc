"""Request and response schemas: one of each per endpoint, strict (unknown fields are refused).

Only shape is checked here (types, lengths, ranges). Rules that depend on configuration (allowed
types, the size limit, kinds) live in :mod:`broker.domain` so these instances can be created once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields, missing, post_dump, utils, validate
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.experimental.context import Context

from broker import domain, multipart

MAX_FILENAME = 1024
MAX_CAPTION = 2000
MAX_TAGS = 20
MAX_TAG = 50
MAX_KEY = 1024
MAX_BATCH = 100
# A 128-bit digest in base64 is 24 characters, 256-bit is 44; leave room, refuse junk.
MAX_DIGEST = 64
MAX_VARIANT_NAME = 32


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` and millisecond precision (a naive time is taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is UTC:
        # The hot path: a batch or a signed listing writes the same expiry instant 100 times
        # (every URL of one signing window shares it). Only times already in UTC are
        # remembered: two of them are equal exactly when they are the same instant, whereas
        # equal times in one zone with DST may be different instants (``fold``).
        stamp = _UTC_STAMPS.get(value)
        if stamp is None:
            stamp = _iso(value)
            if len(_UTC_STAMPS) >= _UTC_STAMPS_SIZE:
                _UTC_STAMPS.clear()  # a new window's stamps replace the old ones'
            _UTC_STAMPS[value] = stamp
        return stamp
    return _iso(value if value.tzinfo else value.replace(tzinfo=UTC))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# UTC time → its stamp: a plain dict (one ``get`` is atomic; a lost race only writes a stamp
# twice), bounded by starting afresh, as the signed-URL memo is.
_UTC_STAMPS: dict[datetime, str] = {}
_UTC_STAMPS_SIZE = 1024


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC with a ``Z`` and millisecond precision, as the contract writes times."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        assert value is None or isinstance(value, datetime)
        return utc_iso(value)


class StrictSchema(Schema):
    """Refuses unknown fields."""

    class Meta:
        unknown = RAISE


def _variant_field() -> fields.String:
    return _text(
        MAX_VARIANT_NAME,
        description="a configured variant's name (BROKER_VARIANTS) or `original`; the variant is "
        "signed once it is ready, the original until then (the answer's `variant` says which); "
        "an unknown name is a 400",
    )


def _text(
    max_length: int, *, required: bool = False, allow_none: bool = False, description: str = ""
) -> fields.String:
    return fields.String(
        required=required,
        allow_none=allow_none,
        validate=validate.Length(min=1 if required else 0, max=max_length),
        metadata={"description": description} if description else {},
    )


def _visibility(description: str) -> fields.String:
    return fields.String(
        validate=validate.OneOf(domain.VISIBILITIES), metadata={"description": description}
    )


# ---- requests ---------------------------------------------------------------------------------


class PresignUploadRequest(StrictSchema):
    """Body of ``POST /images/presign-upload``."""

    filename = _text(MAX_FILENAME, required=True)
    filetype = _text(255, required=True)
    size = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    content_md5 = _text(
        MAX_DIGEST,
        description="base64 MD5 of the bytes, signed into the PUT; this or checksum_sha256 is "
        "required (400 naming content_md5) unless BROKER_REQUIRE_CHECKSUM=false",
    )
    checksum_sha256 = _text(
        MAX_DIGEST, description="base64 SHA-256 of the bytes, for stores that enforce it"
    )
    kind = _text(64)
    caption = _text(MAX_CAPTION, allow_none=True)
    visibility = _visibility(
        "private (the default) or public; unset: public when the kind is in BROKER_PUBLIC_KINDS"
    )


class MultipartCreateRequest(PresignUploadRequest):
    """Body of ``POST /images/multipart``: the presign body, and optionally the part size."""

    content_md5 = _text(
        MAX_DIGEST,
        description="optional here: each part's URL signs that part's own MD5 (checked for "
        "form; a whole-file digest is not verified, which would mean reading the object)",
    )
    part_size = fields.Integer(
        strict=True,
        validate=validate.Range(min=multipart.MIN_PART_SIZE, max=multipart.MAX_PART_SIZE),
        metadata={
            "description": "bytes per part (the last part is smaller), kept exactly; default "
            "chosen by the broker (8 MiB, or more so that at most 10,000 parts are needed)"
        },
    )


def _part_number() -> fields.Integer:
    return fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=multipart.MAX_PARTS)
    )


class PartToSign(StrictSchema):
    """One part to sign: its number and the base64 MD5 of its bytes."""

    part_number = _part_number()
    content_md5 = _text(MAX_DIGEST, required=True)


class SignPartsRequest(StrictSchema):
    """Body of ``POST /images/multipart/<upload_id>/parts``."""

    parts = fields.List(
        fields.Nested(PartToSign),
        required=True,
        validate=validate.Length(min=1, max=multipart.MAX_PARTS_PER_CALL),
    )


class PartToJoin(StrictSchema):
    """One part of the finished object: its number and the ETag its PUT answered."""

    part_number = _part_number()
    etag = _text(80, required=True)


class CompleteMultipartRequest(StrictSchema):
    """Body of ``POST /images/multipart/<upload_id>/complete``: every part, in order."""

    parts = fields.List(
        fields.Nested(PartToJoin),
        required=True,
        validate=validate.Length(min=1, max=multipart.MAX_PARTS),
    )


class ConfirmUploadRequest(StrictSchema):
    """Body of ``POST /images``."""

    key = _text(MAX_KEY, required=True)
    filename = _text(MAX_FILENAME)
    filetype = _text(255)
    kind = _text(64)
    caption = _text(MAX_CAPTION, allow_none=True)
    visibility = _visibility("overrides the one given at presign, as kind and caption do")


class UpdateImageRequest(StrictSchema):
    """Body of ``PATCH /images/<id>``."""

    caption = _text(MAX_CAPTION, allow_none=True)
    kind = _text(64)
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_TAG)),
        validate=validate.Length(max=MAX_TAGS),
    )
    # Only JSON true/false: "yes" or 1 are refused rather than guessed at.
    is_primary = fields.Boolean(truthy={True}, falsy={False})
    visibility = _visibility(
        "public gives the image a public_url (a new one each time it turns public); private "
        "kills its link"
    )


class ListImagesQuery(StrictSchema):
    """Query of ``GET /images``."""

    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = _text(1024)
    kind = _text(64)
    q = _text(200)
    sort = fields.String(
        load_default="newest", validate=validate.OneOf(["newest", "oldest", "most_used"])
    )
    owner = _text(256)
    # sign=1 embeds a signed GET (url, expires_at) in every image: a gallery in one request.
    sign = fields.Boolean(load_default=False, truthy={"1", "true"}, falsy={"0", "false"})
    # ... of this variant where it is ready (the page's records say which: no extra query).
    variant = _variant_field()


class SignedUrlQuery(StrictSchema):
    """Query of ``GET /images/<id>/signed-url`` and ``/content``."""

    expires_in = fields.Integer(validate=validate.Range(min=1))
    disposition = fields.String(
        load_default="inline", validate=validate.OneOf(["inline", "attachment"])
    )
    variant = _variant_field()


class SignedUrlByKeyQuery(SignedUrlQuery):
    """Query of ``GET /images/signed-url``."""

    key = _text(MAX_KEY, required=True)


class PublicLinkQuery(Schema):
    """Query of ``GET /p/<token>``: ``variant`` is read, anything else is ignored (links travel
    through mail, chat and social sites, which append parameters of their own)."""

    class Meta:
        unknown = EXCLUDE

    variant = _text(64, description="a configured variant's name; unknown names answer 400")


class SignedUrlsRequest(StrictSchema):
    """Body of ``POST /images/signed-urls``."""

    ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
    )
    variant = _variant_field()


class EmptyRequest(StrictSchema):
    """A body that must be empty (or ``{}``)."""


# ---- responses --------------------------------------------------------------------------------


class Links:
    """What an answer's links are built from: the broker's address as its clients reach it,
    worked out only if the answer holds a link (most answers, e.g. signed URLs, hold none)."""

    def __init__(self, public_base_url: Callable[[], str]) -> None:
        self._public_base_url = public_base_url

    @cached_property
    def public_base_url(self) -> str:
        """The address links start with."""
        return self._public_base_url()


# Set around every dump of an answer (``broker.http.payloads.json_response``).
LINKS = Context[Links]


class VariantErrorSchema(Schema):
    """Why a variant failed: a code and a sentence."""

    code = fields.String(required=True)
    message = fields.String(required=True)


class VariantSchema(Schema):
    """One variant's state; once ready, what it is."""

    state = fields.String(required=True, validate=validate.OneOf(["pending", "ready", "failed"]))
    content_type = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    size = fields.Integer()
    error = fields.Method(
        "_error",
        metadata={"description": "failed only: why (the original still serves)"},
    )

    def _error(self, variant: Any) -> dict[str, str] | None:
        if variant.error_code is None:
            return None
        return {"code": variant.error_code, "message": variant.error_message or ""}

    @post_dump
    def _only_what_it_has(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # A pending variant is {"state": "pending"}; fields appear once they mean something.
        return {name: value for name, value in data.items() if value is not None}


class ImageSchema(Schema):
    """An image as the API shows it."""

    id = fields.String(required=True)
    key = fields.String(required=True)
    owner = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    content_md5 = fields.String(allow_none=True)
    etag = fields.String(allow_none=True)
    kind = fields.String(required=True)
    is_primary = fields.Boolean(required=True)
    caption = fields.String(allow_none=True)
    tags = fields.List(fields.String(), required=True)
    usage_count = fields.Integer(required=True)
    last_used_at = UtcDateTime(allow_none=True)
    visibility = fields.String(required=True, metadata={"enum": list(domain.VISIBILITIES)})
    public_url = fields.Method(
        "_public_url",
        allow_none=True,
        metadata={
            "type": "string",
            "format": "uri",
            "description": "public images only: an absolute link that needs no token and "
            "redirects (302) to a signed GET of the image",
        },
    )
    variants = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(VariantSchema),
        required=True,
        metadata={"description": "every configured variant (BROKER_VARIANTS) and its state"},
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)

    def _public_url(self, image: domain.Image) -> str | None:
        if image.visibility != domain.PUBLIC or not image.public_token:
            return None
        links = LINKS.get(None)
        if links is None:
            raise RuntimeError("images are dumped inside schemas.LINKS (see json_response)")
        return domain.public_link(links.public_base_url, image.public_token)


class ImageEnvelope(Schema):
    """``{"image": Image}``."""

    image = fields.Nested(ImageSchema, required=True)


class ListedImageSchema(ImageSchema):
    """An image in a listing; with ``sign=1`` it carries a signed GET URL and its expiry."""

    url = fields.String()
    expires_at = UtcDateTime()
    variant = fields.String(metadata={"description": "what `url` shows: a variant or `original`"})


class ImagePage(Schema):
    """``{"images": [Image…], "next_cursor": …}``."""

    images = fields.List(fields.Nested(ListedImageSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class PresignUploadResponse(Schema):
    """What a client needs to PUT straight into the bucket."""

    upload_id = fields.String(required=True)
    key = fields.String(required=True)
    url = fields.String(required=True)
    method = fields.String(required=True)
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "description": "every header the PUT must carry, all signed: Content-Type, "
            "Cache-Control, Content-MD5, x-amz-acl, x-amz-tagging and If-None-Match: * (the "
            "URL writes once: a second PUT answers 412)"
        },
    )
    expires_at = UtcDateTime(required=True)


class MultipartUploadResponse(Schema):
    """A multipart upload, ready for its parts to be signed."""

    upload_id = fields.String(required=True)
    key = fields.String(required=True)
    part_size = fields.Integer(required=True)
    part_count = fields.Integer(required=True)
    expires_at = UtcDateTime(
        required=True,
        metadata={"description": "parts can be signed until then, complete a little longer"},
    )


class SignedPartSchema(Schema):
    """One part's PUT: its URL (signing the part's length and Content-MD5) and headers."""

    part_number = fields.Integer(required=True)
    url = fields.String(required=True)
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "every header the PUT must carry (Content-MD5)"},
    )
    expires_at = UtcDateTime(required=True)


class SignedPartsResponse(Schema):
    """``{"parts": [{part_number, url, headers, expires_at}]}``."""

    parts = fields.List(fields.Nested(SignedPartSchema), required=True)


class StoredPartSchema(Schema):
    """A part the bucket holds."""

    part_number = fields.Integer(required=True)
    etag = fields.String(required=True)
    size = fields.Integer(required=True)


class StoredPartsResponse(Schema):
    """``{"parts": [{part_number, etag, size}]}``, in part order."""

    parts = fields.List(fields.Nested(StoredPartSchema), required=True)


class SignedUrlResponse(Schema):
    """A signed GET URL, its expiry, and what it shows."""

    url = fields.String(required=True)
    expires_at = UtcDateTime(required=True)
    variant = fields.String(
        required=True,
        metadata={
            "description": "the variant signed, or `original` (none asked for, or not ready)"
        },
    )


class SignedUrlsResponse(Schema):
    """``{"urls": {"<id>": {"url", "expires_at"}}}``."""

    urls = fields.Dict(keys=fields.String(), values=fields.Nested(SignedUrlResponse), required=True)


class MultipartLimits(Schema):
    """What a client needs to cut a file into parts the broker accepts."""

    threshold = fields.Integer(
        required=True, metadata={"description": "a hint: files above this go in parts"}
    )
    part_size = fields.Integer(
        required=True, metadata={"description": "the default part size (for files up to 80 GB)"}
    )
    min_part_size = fields.Integer(required=True)
    max_part_size = fields.Integer(required=True)
    max_parts = fields.Integer(required=True)
    parts_per_call = fields.Integer(required=True)
    max_single_upload_bytes = fields.Integer(
        required=True, metadata={"description": "the largest file one presigned PUT may carry"}
    )
    expires = fields.Integer(
        required=True, metadata={"description": "seconds from create to complete"}
    )


class ClientConfigResponse(Schema):
    """``GET /config``: the limits a client checks before presigning."""

    allowed_types = fields.List(fields.String(), required=True)
    extensions = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    max_upload_bytes = fields.Integer(required=True)
    kinds = fields.List(fields.String(), required=True)
    default_kind = fields.String(required=True)
    public_kinds = fields.List(fields.String(), required=True)
    upload_expires = fields.Integer(required=True)
    download_expires = fields.Integer(required=True)
    download_max_expires = fields.Integer(required=True)
    max_pixels = fields.Integer(required=True)
    min_width = fields.Integer(required=True)
    min_height = fields.Integer(required=True)
    max_width = fields.Integer(required=True)
    max_height = fields.Integer(required=True)
    multipart = fields.Nested(MultipartLimits, required=True)
    variants = fields.List(
        fields.Nested(lambda: VariantSpecSchema()),
        required=True,
        metadata={"description": "the variants the worker makes (BROKER_VARIANTS); empty: none"},
    )
    variant_content_type = fields.String(required=True)


class VariantSpecSchema(Schema):
    """One configured variant: its name and its box (``cover``: filled and cropped)."""

    name = fields.String(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    cover = fields.Boolean(required=True)


class StatusResponse(Schema):
    """Health and readiness."""

    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


class ErrorBody(Schema):
    """The error itself."""

    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorResponse(Schema):
    """The envelope every error uses."""

    error = fields.Nested(ErrorBody, required=True)


class ReadinessError(ErrorResponse):
    """``/readyz`` while not ready: the envelope plus each dependency's state."""

    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


presign_upload_request = PresignUploadRequest()
multipart_create_request = MultipartCreateRequest()
sign_parts_request = SignPartsRequest()
complete_multipart_request = CompleteMultipartRequest()
confirm_upload_request = ConfirmUploadRequest()
update_image_request = UpdateImageRequest()
list_images_query = ListImagesQuery()
signed_url_query = SignedUrlQuery()
signed_url_by_key_query = SignedUrlByKeyQuery()
signed_urls_request = SignedUrlsRequest()
public_link_query = PublicLinkQuery()
empty_request = EmptyRequest()

image_envelope = ImageEnvelope()
image_page = ImagePage()
presign_upload_response = PresignUploadResponse()
multipart_upload_response = MultipartUploadResponse()
signed_parts_response = SignedPartsResponse()
stored_parts_response = StoredPartsResponse()
signed_url_response = SignedUrlResponse()
signed_urls_response = SignedUrlsResponse()
status_response = StatusResponse()
client_config_response = ClientConfigResponse()


# ---- the hot paths' answers, dumped by plain functions ------------------------------------------
# A gallery's 100 images or a batch's 100 URLs went through marshmallow's per-field machinery
# (a quarter of such a request). For the answers of the signing and listing routes, each schema
# is compiled once into a plain function writing exactly what ``schema.dump`` writes, field for
# field and in the same order: the schemas stay the one definition of the shapes (the OpenAPI
# document reads them, and a field added to one is dumped at once), and still load every input.
# tests/unit/test_dumps.py holds the functions to the schemas' own output.

Dump = Callable[[Any], dict[str, Any]]


def _str(value: Any) -> str | None:
    return value if value is None or type(value) is str else utils.ensure_text_type(value)


def _num(value: Any) -> int | None:
    return value if value is None or type(value) is int else int(value)


def _same(value: Any) -> Any:
    return value


def _strings(value: Any) -> list[str | None] | None:
    return None if value is None else [_str(each) for each in value]


def _converter(field: fields.Field[Any]) -> Callable[[Any], Any]:
    """What ``field._serialize`` does to a value, as a plain function where that is simple."""
    if isinstance(field, UtcDateTime):
        return utc_iso
    if type(field) is fields.String:
        return _str
    if type(field) is fields.Integer and not field.as_string:
        return _num
    if type(field) is fields.Boolean:
        return _same  # marshmallow dumps a boolean as it is
    if type(field) is fields.List and type(field.inner) is fields.String:
        return _strings
    if (
        type(field) is fields.Dict
        and type(field.key_field) is fields.String
        and type(field.value_field) is fields.Nested
        and not (field.value_field.many or field.value_field.only or field.value_field.exclude)
        and not field.value_field.schema.many
    ):
        # An image's variants: each value dumped as its own schema dumps it.
        return _mapping_of(plain_dump(field.value_field.schema))
    return partial(field._serialize, attr=None, obj=None)  # anything else: marshmallow's own


def _mapping_of(dump_value: Dump) -> Callable[[Any], dict[str | None, Any] | None]:
    """What a ``Dict`` of text keys and ``Nested`` values writes, each value by ``dump_value``."""

    def dump(value: Any) -> dict[str | None, Any] | None:
        if value is None:
            return None
        return {
            _str(key): None if each is None else dump_value(each) for key, each in value.items()
        }

    return dump


def plain_dump(schema: Schema) -> Dump:
    """A function dumping an object as ``schema.dump`` does (an absent attribute is left out;
    a field computed from the whole object, a ``fields.Method``, is marshmallow's own; a
    post-dump hook of one object is called as marshmallow calls it)."""
    finish = _post_dump_hooks(schema)
    if finish is None:
        return schema.dump  # hooks only marshmallow knows how to run
    steps = [
        (
            field.data_key or name,
            field.attribute or name,
            _converter(field) if field._CHECK_ATTRIBUTE else partial(field.serialize, name),
            field._CHECK_ATTRIBUTE,
        )
        for name, field in schema.dump_fields.items()
    ]

    def dump(obj: Any) -> dict[str, Any]:
        dumped = {}
        for key, attribute, convert, from_attribute in steps:
            if not from_attribute:
                dumped[key] = convert(obj)
                continue
            value = getattr(obj, attribute, _ABSENT)
            if value is not _ABSENT:
                dumped[key] = convert(value)
        for hook in finish:
            dumped = hook(dumped, many=False)
        return dumped

    return dump


def _post_dump_hooks(schema: Schema) -> list[Callable[..., dict[str, Any]]] | None:
    """The schema's post-dump hooks of one object, in marshmallow's order; None when it has a
    hook a plain dump cannot call as marshmallow would (pre-dump, whole-collection, or one
    asking for the original object)."""
    if schema._hooks[PRE_DUMP]:
        return None
    hooks = []
    for name, pass_collection, options in schema._hooks[POST_DUMP]:
        if pass_collection or options.get("pass_original"):
            return None
        hooks.append(getattr(schema, name))
    return hooks


_ABSENT = object()
dump_listed_image = plain_dump(ListedImageSchema())
dump_signed_url = plain_dump(signed_url_response)


def dump_image_page(page: Any) -> dict[str, Any]:
    """A page of images as :class:`ImagePage` dumps it."""
    return {
        "images": [dump_listed_image(image) for image in page.images],
        "next_cursor": _str(page.next_cursor),
    }


def dump_signed_urls(urls: dict[str, Any]) -> dict[str, Any]:
    """``{"urls": {id: signed GET}}`` as :class:`SignedUrlsResponse` dumps it."""
    return {"urls": {_str(key): dump_signed_url(signed) for key, signed in urls.items()}}


# ---- the hot paths' requests, checked by plain functions ----------------------------------------
# A batch's 100 ids went through marshmallow's per-field machinery (field.deserialize, its
# validators and error store, per id: a sixth of the request). A schema made only of text
# fields and lists of text, checked by length alone, is compiled into one pass over the body
# that accepts exactly what the schema accepts. Anything it is not sure of (a bad body, a field
# missing) goes to ``schema.load`` itself, so every refusal is the schema's own, word for word;
# tests/unit/test_loads.py holds the two to the same answers.

Load = Callable[[Any], dict[str, Any]]
# (name, is a list, the text's length bounds, the list's, required)
_Check = tuple[str, bool, tuple[int, float], tuple[int, float], bool]


def _length_bounds(field: fields.Field[Any]) -> tuple[int, float] | None:
    """The bounds a field's only validators, ``Length`` ones, set (None: other validators)."""
    low, high = 0, float("inf")
    for validator in field.validators:
        if type(validator) is not validate.Length or validator.equal is not None:
            return None
        low = max(low, validator.min or 0)
        high = min(high, float("inf") if validator.max is None else validator.max)
    return low, high


def _plain_text(field: fields.Field[Any]) -> bool:
    """Whether loading the field is a type check and nothing else (no defaults, hooks or
    renaming)."""
    return (
        type(field) in (fields.String, fields.List)
        and field.load_default is missing
        and not field.dump_only
        and not field.allow_none
        and field.data_key is None
        and field.attribute is None
        and not field.pre_load
        and not field.post_load
    )


def _check(name: str, field: fields.Field[Any]) -> _Check | None:
    """What loading one field checks, if it is only text and lengths."""
    if not _plain_text(field) or (bounds := _length_bounds(field)) is None:
        return None
    if type(field) is fields.String:
        return (name, False, bounds, (0, 0), field.required)
    inner = field.inner  # type: ignore[attr-defined]
    if type(inner) is not fields.String or not _plain_text(inner):
        return None
    if (inner_bounds := _length_bounds(inner)) is None:
        return None
    return (name, True, inner_bounds, bounds, field.required)


def plain_load(schema: Schema) -> Load:
    """A function loading a body as ``schema.load`` does: a body it accepts is checked in one
    pass; any other is given to ``schema.load``, which refuses it (or loads it) as always.
    A schema with anything but length-checked text fields is loaded by marshmallow alone."""
    if any(schema._hooks.values()) or schema.unknown != RAISE or schema.many or schema.partial:
        return schema.load
    checks = [_check(name, field) for name, field in schema.load_fields.items()]
    if not all(checks) or schema.only is not None or schema.exclude:
        return schema.load
    known = frozenset(schema.load_fields)
    steps = [check for check in checks if check is not None]

    def checked(data: Any) -> dict[str, Any] | None:
        """The loaded body, or None when the schema must look at it."""
        if type(data) is not dict or not known.issuperset(data):
            return None
        loaded: dict[str, Any] = {}
        for name, is_list, (low, high), (fewest, most), required in steps:
            value = data.get(name, _ABSENT)
            if value is _ABSENT:
                if required:
                    return None
                continue
            if is_list:
                if type(value) is not list or not fewest <= len(value) <= most:
                    return None
                for each in value:
                    if type(each) is not str or not low <= len(each) <= high:
                        return None
                loaded[name] = list(value)
            elif type(value) is str and low <= len(value) <= high:
                loaded[name] = value
            else:
                return None
        return loaded

    def load(data: Any) -> dict[str, Any]:
        loaded = checked(data)
        if loaded is None:
            # Refused (or a shape the pass does not follow): the schema's own words.
            loaded = schema.load(data)
        return loaded

    return load


load_signed_urls_request = plain_load(signed_urls_request)
