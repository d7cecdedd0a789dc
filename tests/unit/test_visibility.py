"""Who sees and who changes an image, whose images a listing shows, public-link tokens, and the
lookup cache that remembers visibility for at most its TTL."""

from __future__ import annotations

import pytest

from broker.caches import LookupCache
from broker.domain import (
    PRIVATE,
    PUBLIC,
    Image,
    Principal,
    check_may_change,
    check_may_write,
    initial_visibility,
    is_public_token,
    listing_scope,
    may_change,
    may_see,
    new_public_token,
    public_link,
)
from broker.errors import Forbidden

ALICE = Principal("alice")
BOB = Principal("bob")
ADMIN = Principal("root", is_admin=True)
READER = Principal("backend", is_reader=True)
BOTH = Principal("root", is_admin=True, is_reader=True)
# A reader token whose subject happens to own the image: it still changes nothing.
READING_ALICE = Principal("alice", is_reader=True)


@pytest.mark.parametrize(
    ("principal", "private", "public", "changes"),
    [
        (ALICE, True, True, True),
        (BOB, False, True, False),
        (ADMIN, True, True, True),
        (READER, True, True, False),
        (BOTH, True, True, True),
        (READING_ALICE, True, True, False),
    ],
    ids=["owner", "other", "admin", "reader", "admin+reader", "reader-owner"],
)
def test_who_sees_and_who_changes_alices_image(
    principal: Principal, private: bool, public: bool, changes: bool
) -> None:
    assert may_see(principal, "alice", PRIVATE) is private
    assert may_see(principal, "alice", PUBLIC) is public
    assert may_change(principal, "alice") is changes
    if changes:
        check_may_change(principal, "alice")
    else:
        with pytest.raises(Forbidden):
            check_may_change(principal, "alice")


def test_a_reader_cannot_write_at_all() -> None:
    for principal in (ALICE, ADMIN, BOTH):
        check_may_write(principal)
    for principal in (READER, READING_ALICE):
        with pytest.raises(Forbidden, match="reader"):
            check_may_write(principal)


@pytest.mark.parametrize(
    ("principal", "owner", "scope"),
    [
        (ALICE, None, ("alice", None)),
        (ALICE, "alice", ("alice", None)),
        (ALICE, "bob", ("bob", PUBLIC)),
        (ADMIN, None, (None, None)),
        (ADMIN, "bob", ("bob", None)),
        (READER, None, (None, None)),
        (READER, "bob", ("bob", None)),
    ],
)
def test_listing_scope(
    principal: Principal, owner: str | None, scope: tuple[str | None, str | None]
) -> None:
    assert listing_scope(principal, owner) == scope


def test_initial_visibility() -> None:
    assert initial_visibility(None, "gallery", ()) == PRIVATE
    assert initial_visibility(None, "profile", ("profile",)) == PUBLIC
    assert initial_visibility(PRIVATE, "profile", ("profile",)) == PRIVATE
    assert initial_visibility(PUBLIC, "gallery", ()) == PUBLIC


def test_tokens_are_256_random_bits_in_url_safe_text() -> None:
    tokens = {new_public_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_public_token(token) for token in tokens)
    assert public_link("https://x.example/b/", "t") == "https://x.example/b/p/t"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a" * 42,
        "a" * 44,
        "a" * 42 + "=",
        "a" * 42 + "+",
        "a" * 42 + "/",
        "a" * 42 + "\n",
        "a" * 42 + "é",
        "a" * 42 + "٣",  # a digit, but not an ASCII one
        "0123456789abcdef01234567",  # an image id
        "../" + "a" * 40,
    ],
)
def test_anything_else_is_no_token(text: str) -> None:
    assert not is_public_token(text)


def image(visibility: str, token: str | None) -> Image:
    return Image(
        id="0" * 24,
        key="alice/x.png",
        owner="alice",
        filename="x.png",
        content_type="image/png",
        size=1,
        width=1,
        height=1,
        content_md5=None,
        etag=None,
        kind="gallery",
        is_primary=False,
        caption=None,
        visibility=visibility,
        public_token=token,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestLookupCache:
    def test_remembers_visibility_and_link_for_its_ttl_only(self) -> None:
        clock = Clock()
        cache = LookupCache(100, 10, clock=clock)
        cache.put_many([image(PUBLIC, "t" * 43)])
        assert cache.get("0" * 24, BOB) is not None
        assert cache.by_link("t" * 43) is not None
        clock.now = 9.9
        assert cache.by_link("t" * 43) is not None
        clock.now = 10.1
        assert cache.get("0" * 24, ALICE) is None and cache.by_link("t" * 43) is None

    def test_a_private_entry_is_the_owners_and_has_no_link(self) -> None:
        cache = LookupCache(100, 10, clock=Clock())
        cache.put_many([image(PRIVATE, None)])
        assert cache.get("0" * 24, BOB) is None
        assert cache.get("0" * 24, ALICE) is not None
        assert cache.get("0" * 24, READER) is not None

    def test_forgetting_drops_the_link_of_the_image_and_of_the_entry(self) -> None:
        cache = LookupCache(100, 10, clock=Clock())
        cache.put_many([image(PUBLIC, "a" * 43)])
        # What the caller knows may be older or newer than the entry: both links go.
        cache.forget(image(PRIVATE, None))
        assert cache.by_link("a" * 43) is None and cache.get("0" * 24, ALICE) is None
        cache.put_many([image(PUBLIC, "b" * 43)])
        cache.forget(image(PUBLIC, "b" * 43))
        assert cache.by_link("b" * 43) is None

    def test_off_remembers_nothing(self) -> None:
        cache = LookupCache(100, 0)
        cache.put_many([image(PUBLIC, "a" * 43)])
        assert cache.by_link("a" * 43) is None and cache.get("0" * 24, ALICE) is None
