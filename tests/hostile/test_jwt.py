"""Hostile tokens: every forged, malformed or out-of-policy JWT is a clean 401 in the envelope.

Tokens are built by hand (base64url segments, HMAC or RSA signatures) so that no library
refuses to produce the hostile ones. Unusual but valid subjects work, and their keys stay in
their own safe namespace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.envelope import assert_envelope
from tests.support.tokens import JWT_SECRET, bearer
from tests.support.upload import KEY_PATTERN, Flow

NOW = int(time.time())
HOUR = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return b64url(raw)


def hs_token(
    payload: Any,
    *,
    secret: str | bytes = JWT_SECRET,
    alg: str = "HS256",
    header: dict[str, Any] | None = None,
) -> str:
    """An HMAC-signed token with any header and payload (no library checks in the way)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{segment(header or {'alg': alg, 'typ': 'JWT'})}.{segment(payload)}"
    key = secret.encode() if isinstance(secret, str) else secret
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def rs_token(payload: Any, private_key: rsa.RSAPrivateKey, alg: str = "RS256") -> str:
    digest = {"RS256": hashes.SHA256(), "RS512": hashes.SHA512()}[alg]
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(payload)}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), digest)
    return f"{signing_input}.{b64url(signature)}"


def claims(sub: Any = "alice", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"iat": NOW - 10, "exp": NOW + HOUR, **extra}
    if sub is not None:
        payload["sub"] = sub
    return payload


def assert_unauthorized(flow: Flow, headers: dict[str, str], token: str = "") -> None:
    for method, path in (
        ("GET", "/images"),
        ("POST", "/images/presign-upload"),
        ("GET", "/config"),
    ):
        response = flow.client.open(path, method=method, headers=headers, json={})
        assert_envelope(response, 401, "unauthorized")
        body = response.get_data(as_text=True)
        assert "Traceback" not in body
        if token:
            assert token not in body and JWT_SECRET not in body


@pytest.fixture(scope="module")
def flow(module_flows: Callable[..., Flow]) -> Flow:
    """The default HS256 app."""
    return module_flows()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rs_flow(module_flows: Callable[..., Flow], rsa_key: rsa.RSAPrivateKey) -> Flow:
    """An RS256 app (the HS256 secret is still configured too: it must not be accepted)."""
    return module_flows(BROKER_JWT_PUBLIC_KEY=public_pem(rsa_key))


@pytest.fixture(scope="module")
def aud_flow(module_flows: Callable[..., Flow]) -> Flow:
    """An app that requires an audience and an issuer."""
    return module_flows(BROKER_JWT_AUDIENCE="image-broker", BROKER_JWT_ISSUER="https://idp.test")


def test_a_valid_token_works(flow: Flow) -> None:
    assert flow.client.get("/images", headers=bearer(hs_token(claims()))).status_code == 200


# ---- structure and algorithms --------------------------------------------------------------------

HEADER = segment({"alg": "HS256", "typ": "JWT"})
PAYLOAD = segment(claims())

MALFORMED = {
    "alg none, empty signature": f"{segment({'alg': 'none', 'typ': 'JWT'})}.{PAYLOAD}.",
    "alg none, no signature part": f"{segment({'alg': 'none', 'typ': 'JWT'})}.{PAYLOAD}",
    "alg None capitalised": f"{segment({'alg': 'None', 'typ': 'JWT'})}.{PAYLOAD}.",
    "alg NONE": f"{segment({'alg': 'NONE'})}.{PAYLOAD}.",
    "alg missing": f"{segment({'typ': 'JWT'})}.{PAYLOAD}.",
    "two segments": f"{HEADER}.{PAYLOAD}",
    "four segments": hs_token(claims()) + ".AAAA",
    "five segments": hs_token(claims()) + ".AAAA.BBBB",
    "one segment": PAYLOAD,
    "empty segments": "..",
    "non-base64 segments": "%%%.^^^.***",
    "base64 of non-json header": f"{b64url(b'not json')}.{PAYLOAD}.AAAA",
    "header is a list": f"{segment([1, 2])}.{PAYLOAD}.AAAA",
    "payload is a list": hs_token([1, 2]),
    "payload is a string": hs_token("alice"),
    "payload is null": hs_token(None),
    "payload not json": f"{HEADER}.{b64url(b'{sub: alice')}.AAAA",
    "signature stripped": f"{HEADER}.{PAYLOAD}.",
    "signature of another payload": f"{HEADER}.{segment(claims('admin'))}."
    + hs_token(claims()).split(".")[2],
    "signature bit flipped": hs_token(claims())[:-2]
    + ("A" if hs_token(claims())[-2] != "A" else "B")
    + hs_token(claims())[-1],
    "wrong secret": hs_token(claims(), secret="x" * 64),
    "empty secret": hs_token(claims(), secret=""),
    "HS384 with the right secret": hs_token(claims(), alg="HS384"),
    "HS512 with the right secret": hs_token(claims(), alg="HS512"),
    "HS256 header claiming HS512": hs_token(claims(), header={"alg": "HS512", "typ": "JWT"}),
    "crit header": hs_token(claims(), header={"alg": "HS256", "crit": ["exp"]}),
    "unencoded payload b64 false": hs_token(
        claims(), header={"alg": "HS256", "b64": False, "crit": ["b64"]}
    ),
    "padding in segments": f"{HEADER}==.{PAYLOAD}==.AAAA==",
    "whitespace inside": hs_token(claims()).replace(".", " . ", 1),
    "huge token 7 KB, wrong secret": hs_token(claims(padding="x" * 5_000), secret="y" * 64),
    "huge token 7 KB, alg none": (
        f"{segment({'alg': 'none'})}.{segment(claims(padding='x' * 5_000))}."
    ),
    "huge garbage 8 KB": "A" * 8_000,
    "unicode in token": "\u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9",
}


@pytest.mark.parametrize("token", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_or_forged_tokens_are_401(flow: Flow, token: str) -> None:
    assert_unauthorized(flow, bearer(token), token)


HUGE = {
    "100 KB, valid": hs_token(claims(pad="x" * 100_000)),
    "100 KB, wrong secret": hs_token(claims(padding="x" * 100_000), secret="y" * 64),
    "100 KB, alg none": f"{segment({'alg': 'none'})}.{segment(claims(padding='x' * 100_000))}.",
    "100 KB garbage": "A" * 100_000,
}


@pytest.mark.parametrize("token", HUGE.values(), ids=list(HUGE))
def test_a_token_over_the_header_field_limit_is_413_before_it_is_read(
    flow: Flow, token: str
) -> None:
    # The app refuses header fields over 8 KB (as gunicorn does, but in the envelope), so no
    # token that big is ever decoded, whether or not its signature would hold.
    response = flow.client.get("/images", headers=bearer(token))
    assert "headers" in assert_envelope(response, 413, "too_large")["details"]


@pytest.mark.parametrize(
    "header",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWxpY2U6cHc="},
        {"Authorization": "Token " + hs_token(claims())},
        {"Authorization": hs_token(claims())},
        {"Authorization": "Bearer " + hs_token(claims()) + " extra"},
        {"Authorization": "Bearer\t" + hs_token(claims()).replace(".", "\t.", 1)},
        {"X-Authorization": "Bearer " + hs_token(claims())},
        {"Cookie": "access_token_cookie=" + hs_token(claims())},
    ],
    ids=[
        "missing",
        "empty",
        "scheme only",
        "scheme and space",
        "basic",
        "other scheme",
        "no scheme",
        "trailing junk",
        "tabs",
        "other header",
        "cookie",
    ],
)
def test_missing_or_misplaced_credentials_are_401(flow: Flow, header: dict[str, str]) -> None:
    assert_unauthorized(flow, header)


def test_a_token_in_the_query_string_is_ignored(flow: Flow) -> None:
    token = hs_token(claims())
    for name in ("jwt", "token", "access_token"):
        response = flow.client.get(f"/images?{name}={token}")
        assert response.status_code in (400, 401)
        assert_envelope(response)


def test_the_bearer_scheme_is_case_insensitive(flow: Flow) -> None:
    response = flow.client.get("/images", headers={"Authorization": "bearer " + hs_token(claims())})
    assert response.status_code == 200


# ---- time claims -------------------------------------------------------------------------------

TIME_CLAIMS = {
    "expired": {"exp": NOW - 120},
    "expired long ago": {"exp": 1},
    "exp as word": {"exp": "tomorrow"},
    "expired as numeric string": {"exp": str(NOW - 120)},
    "exp as float string": {"exp": "1e20"},
    "exp as list": {"exp": [NOW + HOUR]},
    "exp as null": {"exp": None},
    "exp as bool": {"exp": True},
    "nbf in the future": {"nbf": NOW + HOUR},
    "iat in the future": {"iat": NOW + HOUR},
    "iat as string": {"iat": "yesterday"},
    "nbf as object": {"nbf": {"t": 1}},
}


@pytest.mark.parametrize("extra", TIME_CLAIMS.values(), ids=list(TIME_CLAIMS))
def test_out_of_time_or_badly_typed_time_claims_are_401(flow: Flow, extra: dict[str, Any]) -> None:
    token = hs_token({**claims(), **extra})
    assert_unauthorized(flow, bearer(token), token)


def test_an_expired_token_says_so(flow: Flow) -> None:
    response = flow.client.get("/images", headers=bearer(hs_token(claims(exp=NOW - 120))))
    assert "expired" in assert_envelope(response, 401, "unauthorized")["message"]


def test_a_token_without_exp_is_401(flow: Flow) -> None:
    payload = {"sub": "alice", "iat": NOW - 10}
    response = flow.client.get("/images", headers=bearer(hs_token(payload)))
    assert_envelope(response, 401, "unauthorized")


# ---- kind and lifetime -------------------------------------------------------------------------

WEEK = 7 * 24 * HOUR

NOT_ACCESS_TOKENS = {
    "flask-jwt-extended refresh": {"type": "refresh"},
    "other type": {"type": "id"},
    "type as list": {"type": ["access"]},
    "keycloak refresh": {"typ": "Refresh"},
    "keycloak offline": {"typ": "Offline"},
}


@pytest.mark.parametrize("extra", NOT_ACCESS_TOKENS.values(), ids=list(NOT_ACCESS_TOKENS))
def test_refresh_and_other_non_access_tokens_are_401(flow: Flow, extra: dict[str, Any]) -> None:
    token = hs_token(claims(**extra))
    assert_unauthorized(flow, bearer(token), token)


@pytest.mark.parametrize("extra", [{"type": "access"}, {"typ": "Bearer"}], ids=["type", "typ"])
def test_tokens_that_say_they_are_access_tokens_work(flow: Flow, extra: dict[str, Any]) -> None:
    response = flow.client.get("/images", headers=bearer(hs_token(claims(**extra))))
    assert response.status_code == 200


TOO_LONG_LIVED = {
    "exp in year 9999": {"exp": 253402300799},
    "issued for a week and a second": {"iat": NOW - 10, "exp": NOW - 10 + WEEK + 1},
    "issued long ago, still valid": {"iat": NOW - 30 * 24 * HOUR, "exp": NOW + HOUR},
    "no iat, a week and an hour left": {"iat": None, "exp": NOW + WEEK + HOUR},
    "iat as numeric string": {"iat": str(NOW - 10), "exp": NOW + 2 * WEEK},
    "exp as numeric string": {"exp": str(NOW + 2 * WEEK)},
}


@pytest.mark.parametrize("extra", TOO_LONG_LIVED.values(), ids=list(TOO_LONG_LIVED))
def test_tokens_living_longer_than_the_maximum_are_401(flow: Flow, extra: dict[str, Any]) -> None:
    payload = {**claims(), **extra}
    payload = {name: value for name, value in payload.items() if value is not None}
    token = hs_token(payload)
    assert_unauthorized(flow, bearer(token), token)


@pytest.mark.parametrize(
    "extra",
    [{"iat": NOW - 10, "exp": NOW - 10 + WEEK}, {"iat": None, "exp": NOW + WEEK - 60}],
    ids=["exactly a week", "no iat, under a week left"],
)
def test_tokens_within_the_maximum_lifetime_work(flow: Flow, extra: dict[str, Any]) -> None:
    payload = {name: value for name, value in {**claims(), **extra}.items() if value is not None}
    response = flow.client.get("/images", headers=bearer(hs_token(payload)))
    assert response.status_code == 200


def test_the_maximum_lifetime_is_configurable(make_flow: Callable[..., Flow]) -> None:
    flow = make_flow(BROKER_JWT_MAX_TTL="600")
    hour = hs_token(claims())
    assert_unauthorized(flow, bearer(hour), hour)
    # Issued now, not at import: a ten-minute token minted when the module loaded has expired
    # by the time a slow run of the whole suite reaches this test.
    now = int(time.time())
    minutes = hs_token(claims(iat=now - 10, exp=now - 10 + 600))
    assert flow.client.get("/images", headers=bearer(minutes)).status_code == 200


# ---- subject and roles -------------------------------------------------------------------------

BAD_SUBJECTS = {
    "missing": None,
    "empty": "",
    "blank": "   ",
    "number": 42,
    "zero": 0,
    "float": 1.5,
    "true": True,
    "list": ["alice"],
    "object": {"id": "alice"},
    "null": "__null__",
    # Control, format (bidi, zero-width) and separator characters spoof names where a
    # subject is shown (the admin UI, logs): refused.
    "nul inside": "ali\x00ce",
    "newline": "alice\nbob",
    "rtl override": "\u202ealice",
    "zero-width joiner": "ali\u200dce",
    "line separator": "alice\u2028bob",
    "delete": "alice\x7f",
}


@pytest.mark.parametrize("sub", BAD_SUBJECTS.values(), ids=list(BAD_SUBJECTS))
def test_bad_subjects_are_401(flow: Flow, sub: Any) -> None:
    payload = claims(None) if sub is None else claims(sub)
    if sub == "__null__":
        payload["sub"] = None
    token = hs_token(payload)
    assert_unauthorized(flow, bearer(token), token)


BAD_ROLES = {
    "string": "admin",
    "object": {"admin": True},
    "number": 1,
    "true": True,
    "null": None,
    "list of numbers": [1],
    "list with null": [None],
    "mixed list": ["admin", 1],
    "nested list": [["admin"]],
}


@pytest.mark.parametrize("roles", BAD_ROLES.values(), ids=list(BAD_ROLES))
def test_badly_typed_roles_are_401(flow: Flow, roles: Any) -> None:
    token = hs_token(claims(roles=roles))
    assert_unauthorized(flow, bearer(token), token)


# Contract v1.1: listing another owner's images is no longer admin-only (it shows their public
# ones), so what tells the roles apart is a private image of bob's: hidden from a plain user,
# seen by a reader, seen and changed by an admin.
@pytest.mark.parametrize(
    "roles",
    [["Admin"], ["ADMIN"], ["admin "], ["administrator"], ["Reader"], ["readers"], ["reader "], []],
)
def test_only_the_exact_admin_or_reader_role_gives_one(flow: Flow, roles: list[str]) -> None:
    image = flow.upload(sub="bob").image
    response = flow.client.get(
        f"/images/{image['id']}", headers=bearer(hs_token(claims(roles=roles)))
    )
    assert_envelope(response, 404, "not_found")


def test_the_exact_reader_role_sees_and_changes_nothing(flow: Flow) -> None:
    image = flow.upload(sub="bob").image
    headers = bearer(hs_token(claims(roles=["reader"])))
    assert flow.client.get(f"/images/{image['id']}", headers=headers).status_code == 200
    patched = flow.client.patch(f"/images/{image['id']}", json={"caption": "x"}, headers=headers)
    assert_envelope(patched, 403, "forbidden")


def test_the_exact_admin_role_does_even_beside_reader(flow: Flow) -> None:
    image = flow.upload(sub="bob").image
    token = hs_token(claims(roles=["reader", "admin"]))
    patched = flow.client.patch(
        f"/images/{image['id']}", json={"caption": "x"}, headers=bearer(token)
    )
    assert patched.status_code == 200 and patched.json["image"]["caption"] == "x"


UNUSUAL_SUBJECTS = {
    "unicode": "\u00e9l\u00e8ve-\u4e2d\u6587",
    "path traversal": "../x",
    "deep traversal": "../../../../etc/passwd",
    "slash": "alice/bob",
    "backslash": "alice\\bob",
    "500 characters": "s" * 500,
    "65 safe characters": "a" * 65,
    "looks hashed": "u.0123456789abcdef0123456789abcdef",
    "email": "alice@example.test",
    "url": "https://idp.test/users/42",
    "emoji": "\U0001f600",
    "dots": "..",
    "leading space": " alice",
}


@pytest.fixture(scope="module")
def unusual_uploads(flow: Flow) -> dict[str, dict[str, Any]]:
    return {
        sub_id: flow.upload(headers=bearer(hs_token(claims(sub)))).image
        for sub_id, sub in UNUSUAL_SUBJECTS.items()
    }


@pytest.mark.parametrize("sub_id", list(UNUSUAL_SUBJECTS))
def test_unusual_valid_subjects_work_and_keys_stay_safe(
    flow: Flow, unusual_uploads: dict[str, dict[str, Any]], sub_id: str
) -> None:
    sub = UNUSUAL_SUBJECTS[sub_id]
    image = unusual_uploads[sub_id]
    assert KEY_PATTERN.match(image["key"]), image["key"]
    segment_ = image["key"].split("/", 1)[0]
    assert segment_.startswith("u."), segment_  # none of these is a plain safe segment
    assert image["owner"] == sub
    headers = bearer(hs_token(claims(sub)))
    listed = flow.client.get("/images", headers=headers)
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json["images"]] == [image["id"]]
    signed = flow.client.get(f"/images/{image['id']}/signed-url", headers=headers)
    assert signed.status_code == 200


def test_unusual_subjects_never_share_a_namespace(
    unusual_uploads: dict[str, dict[str, Any]],
) -> None:
    segments = [image["key"].split("/", 1)[0] for image in unusual_uploads.values()]
    assert len(set(segments)) == len(segments)


def test_a_subject_spelling_another_users_segment_gets_its_own(
    flow: Flow, unusual_uploads: dict[str, dict[str, Any]]
) -> None:
    victim = unusual_uploads["path traversal"]
    impostor_sub = victim["key"].split("/", 1)[0]  # "u.<digest>" of "../x"
    image = flow.upload(headers=bearer(hs_token(claims(impostor_sub)))).image
    assert image["key"].split("/", 1)[0] != impostor_sub
    seen = flow.client.get(
        f"/images/{victim['id']}", headers=bearer(hs_token(claims(impostor_sub)))
    )
    assert_envelope(seen, 404, "not_found")


def test_a_plain_subject_keeps_its_readable_segment(flow: Flow) -> None:
    image = flow.upload(headers=bearer(hs_token(claims("Bob_42-x")))).image
    assert image["key"].startswith("Bob_42-x/")


@pytest.mark.parametrize("path", ["/images", "/images/presign-upload"])
def test_a_lone_surrogate_subject_does_not_crash(flow: Flow, path: str) -> None:
    token = hs_token(claims("a\ud800b"))  # json.dumps writes the escape "\ud800"
    body = {"filename": "a.png", "filetype": "image/png", "size": 10}
    method = "GET" if path == "/images" else "POST"
    response = flow.client.open(path, method=method, headers=bearer(token), json=body)
    assert response.status_code < 500, response.get_data()[:300]


# ---- RS256: no HS/RS confusion -----------------------------------------------------------------


def test_rs256_accepts_a_token_signed_by_the_key(rs_flow: Flow, rsa_key: rsa.RSAPrivateKey) -> None:
    response = rs_flow.client.get("/images", headers=bearer(rs_token(claims(), rsa_key)))
    assert response.status_code == 200


def test_rs256_refuses_hs256_signed_with_the_public_key_as_secret(
    rs_flow: Flow, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = public_pem(rsa_key)
    for secret in (pem, pem.strip(), pem.encode()):
        token = hs_token(claims(), secret=secret)
        assert_unauthorized(rs_flow, bearer(token), token)


def test_rs256_refuses_the_hs256_secret(rs_flow: Flow) -> None:
    token = hs_token(claims())
    assert_unauthorized(rs_flow, bearer(token), token)


def test_rs256_refuses_other_keys_and_algorithms(rs_flow: Flow, rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for token in (
        rs_token(claims(), other),
        rs_token(claims(), rsa_key, alg="RS512"),
        f"{segment({'alg': 'none'})}.{segment(claims())}.",
        rs_token(claims(exp=NOW - 120), rsa_key),
    ):
        assert_unauthorized(rs_flow, bearer(token), token)


# ---- audience and issuer -----------------------------------------------------------------------

GOOD = {"aud": "image-broker", "iss": "https://idp.test"}


@pytest.mark.parametrize(
    "extra",
    [GOOD, {**GOOD, "aud": ["other", "image-broker"]}],
    ids=["exact", "audience list"],
)
def test_the_configured_audience_and_issuer_are_accepted(
    aud_flow: Flow, extra: dict[str, Any]
) -> None:
    response = aud_flow.client.get("/images", headers=bearer(hs_token(claims(**extra))))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"iss": GOOD["iss"]},
        {"aud": GOOD["aud"]},
        {**GOOD, "aud": "other"},
        {**GOOD, "aud": ["other"]},
        {**GOOD, "aud": ""},
        {**GOOD, "aud": 5},
        {**GOOD, "aud": "image-broker "},
        {**GOOD, "aud": "IMAGE-BROKER"},
        {**GOOD, "iss": "https://evil.test"},
        {**GOOD, "iss": ""},
        {**GOOD, "iss": ["https://idp.test"]},
        {**GOOD, "iss": "https://idp.test/"},
        {},
    ],
    ids=[
        "missing aud",
        "missing iss",
        "wrong aud",
        "wrong aud list",
        "empty aud",
        "numeric aud",
        "aud with space",
        "aud case",
        "wrong iss",
        "empty iss",
        "iss as list",
        "iss trailing slash",
        "neither",
    ],
)
def test_a_wrong_or_missing_audience_or_issuer_is_401(
    aud_flow: Flow, extra: dict[str, Any]
) -> None:
    token = hs_token(claims(**extra))
    assert_unauthorized(aud_flow, bearer(token), token)
