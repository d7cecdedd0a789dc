"""Arbitrary JSON in every body field: never a 5xx, and every 4xx is the contract's envelope.

Each test starts from a valid body, swaps one field (or the whole body) for an arbitrary JSON
value, and sends it as raw JSON text (so NaN, Infinity and huge numbers reach the parser as
such). Strings are any Unicode except lone surrogates, which have their own test below (they
crash the broker today).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import Flow, presign_body

MAX_EXAMPLES = 60

SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.sampled_from(["", " ", "image/png", "gallery", "../../etc/passwd", "\x00", "\u202e"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=8),
        st.dictionaries(st.text(max_size=20), children, max_size=8),
    ),
    max_leaves=30,
)


def _send(flow: Flow, method: str, path: str, body: Any) -> Any:
    # json.dumps writes NaN/Infinity literals and arbitrarily long integers, as a hostile
    # client would; the broker must cope with whatever its JSON parser makes of them.
    return flow.client.open(
        path,
        method=method,
        data=json.dumps(body),
        headers={**auth(), "Content-Type": "application/json"},
    )


def _check(response: Any, allowed_success: set[int]) -> None:
    assert response.status_code < 500, response.get_data()[:500]
    if response.status_code >= 400:
        assert_envelope(response)
    else:
        assert response.status_code in allowed_success, response.status_code
        assert response.mimetype == "application/json"


@pytest.fixture
def target(flow: Flow) -> tuple[Flow, dict[str, Any]]:
    """An app with one real image, so PATCH and usage reach the image."""
    return flow, flow.upload().image


# A valid declaration with every optional field too: each case changes one of them.
PRESIGN = presign_body(kind="gallery", caption="a caption")
PRESIGN_FIELDS = [*PRESIGN, "checksum_sha256", "unknown_field"]
CONFIRM_FIELDS = ["key", "filename", "filetype", "kind", "caption", "unknown_field"]
PATCH_FIELDS = ["caption", "kind", "tags", "is_primary", "unknown_field"]


@SETTINGS
@given(field=st.sampled_from(PRESIGN_FIELDS), value=json_values)
def test_presign_field_values(target: tuple[Flow, dict[str, Any]], field: str, value: Any) -> None:
    flow, _ = target
    body = {**PRESIGN, field: value}
    _check(_send(flow, "POST", "/images/presign-upload", body), {201})


@SETTINGS
@given(field=st.sampled_from(CONFIRM_FIELDS), value=json_values)
def test_confirm_field_values(target: tuple[Flow, dict[str, Any]], field: str, value: Any) -> None:
    flow, image = target
    # The already-confirmed key: overrides are checked before the idempotent answer.
    body = {"key": image["key"], field: value}
    _check(_send(flow, "POST", "/images", body), {200, 201})


@SETTINGS
@given(field=st.sampled_from(PATCH_FIELDS), value=json_values)
def test_patch_field_values(target: tuple[Flow, dict[str, Any]], field: str, value: Any) -> None:
    flow, image = target
    _check(_send(flow, "PATCH", f"/images/{image['id']}", {field: value}), {200})


@SETTINGS
@given(
    ids=st.one_of(json_values, st.lists(json_values, max_size=120)),
    extra=st.one_of(st.none(), json_values),
)
def test_signed_urls_ids_values(target: tuple[Flow, dict[str, Any]], ids: Any, extra: Any) -> None:
    flow, image = target
    body: dict[str, Any] = {"ids": ids if not isinstance(ids, list) else [image["id"], *ids]}
    if extra is not None:
        body["unknown_field"] = extra
    _check(_send(flow, "POST", "/images/signed-urls", body), {200})


@SETTINGS
@given(
    path=st.sampled_from(
        [
            ("POST", "/images/presign-upload"),
            ("POST", "/images"),
            ("PATCH", "/images/{id}"),
            ("POST", "/images/signed-urls"),
            ("POST", "/images/{id}/usage"),
        ]
    ),
    body=json_values,
)
def test_whole_body_values(
    target: tuple[Flow, dict[str, Any]], path: tuple[str, str], body: Any
) -> None:
    flow, image = target
    method, template = path
    response = _send(flow, method, template.format(id=image["id"]), body)
    _check(response, {200, 201})


# ---- lone surrogates --------------------------------------------------------------------------
# JSON's "\ud800" escape decodes to a lone surrogate, which is a valid Python str but cannot be
# encoded as UTF-8 (BSON, hashing). Every string field must refuse it (400) or drop it.

LONE = "a\ud800b"


@pytest.fixture(scope="module")
def shared_target(module_flows: Callable[..., Flow]) -> tuple[Flow, dict[str, Any]]:
    flow = module_flows()
    return flow, flow.upload().image


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("POST", "/images/presign-upload", "filename"),
        ("POST", "/images/presign-upload", "caption"),
        ("POST", "/images/presign-upload", "filetype"),
        ("POST", "/images/presign-upload", "kind"),
        ("POST", "/images/presign-upload", "content_md5"),
        ("POST", "/images", "key"),
        ("PATCH", "/images/{id}", "caption"),
        ("PATCH", "/images/{id}", "tags"),
        ("PATCH", "/images/{id}", "kind"),
        ("POST", "/images/signed-urls", "ids"),
    ],
)
def test_lone_surrogates_are_refused_not_crashing(
    shared_target: tuple[Flow, dict[str, Any]], method: str, path: str, field: str
) -> None:
    flow, image = shared_target
    value: Any = [LONE] if field in ("tags", "ids") else LONE
    body = {**PRESIGN, field: value} if path.endswith("presign-upload") else {field: value}
    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape "\ud800"
    assert "\\ud800" in raw
    response = flow.client.open(
        path.format(id=image["id"]),
        method=method,
        data=raw,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code < 500, response.get_data()[:300]
    if response.status_code >= 400:
        assert_envelope(response)
