"""Get, list (cursor, kind, q, sort, owner), patch, primary, usage and delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from broker.domain import PRIVATE, PUBLIC, new_public_token
from broker.extension import Broker
from tests.support.apps import broker_of
from tests.support.records import image_record
from tests.support.tokens import auth, bearer, make_token
from tests.support.upload import Uploader


def seed(app: Flask, owner: str, count: int, **fields: Any) -> list[str]:
    """Record images straight in MongoDB (listing needs no bytes), one second apart.

    ``at=`` records them all at that one instant instead.
    """
    repo = broker_of(app).db.images
    start = fields.get("at", datetime(2026, 1, 1, tzinfo=UTC))
    step = timedelta(0) if "at" in fields else timedelta(seconds=1)
    ids = []
    for i in range(count):
        image = image_record(
            owner,
            filename=fields.get("filename", f"file-{i}.png"),
            kind=fields.get("kind", "gallery"),
            caption=fields.get("caption"),
            usage_count=fields.get("usage", i % 3),
            created_at=start + step * i,
            updated_at=start,
            visibility=fields.get("visibility", PRIVATE),
            public_token=new_public_token() if fields.get("visibility") == PUBLIC else None,
        )
        repo.insert(image)
        ids.append(image.id)
    return ids


def list_all(client: FlaskClient, headers: dict[str, str], **query: Any) -> list[str]:
    """Follow the cursor to the end, returning ids in order."""
    seen: list[str] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = client.get("/images", query_string=params, headers=headers)
        assert response.status_code == 200, response.json
        seen += [image["id"] for image in response.json["images"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return seen


class TestGet:
    def test_owner_and_admin_see_it_others_get_404(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        assert client.get(f"/images/{image['id']}", headers=auth()).json["image"] == image
        assert (
            client.get(f"/images/{image['id']}", headers=auth("root", admin=True)).status_code
            == 200
        )
        other = client.get(f"/images/{image['id']}", headers=auth("bob"))
        assert other.status_code == 404
        assert other.json["error"]["code"] == "not_found"

    def test_malformed_id_is_404(self, client: FlaskClient) -> None:
        assert client.get("/images/not-an-id", headers=auth()).status_code == 404


class TestList:
    def test_pages_cover_everything_once_in_order(self, app: Flask, client: FlaskClient) -> None:
        ids = seed(app, "alice", 7)
        seed(app, "bob", 3)
        assert list_all(client, auth(), limit=3) == list(reversed(ids))
        assert list_all(client, auth(), limit=2, sort="oldest") == ids

    def test_most_used_orders_by_count_then_newest(self, app: Flask, client: FlaskClient) -> None:
        seed(app, "alice", 6)  # usage 0,1,2,0,1,2
        images = client.get("/images?sort=most_used&limit=100", headers=auth()).json["images"]
        assert [i["usage_count"] for i in images] == [2, 2, 1, 1, 0, 0]
        paged = list_all(client, auth(), sort="most_used", limit=1)
        assert paged == [i["id"] for i in images]

    def test_kind_filter(self, app: Flask, client: FlaskClient) -> None:
        covers = seed(app, "alice", 2, kind="cover")
        seed(app, "alice", 2)
        assert sorted(list_all(client, auth(), kind="cover")) == sorted(covers)

    def test_q_matches_filename_or_caption_case_insensitively(
        self, app: Flask, client: FlaskClient
    ) -> None:
        by_name = seed(app, "alice", 1, filename="Beach-Day.PNG")
        by_caption = seed(app, "alice", 1, caption="a day at the BEACH")
        seed(app, "alice", 2)
        assert sorted(list_all(client, auth(), q="beach")) == sorted(by_name + by_caption)

    def test_q_is_literal_not_a_regex(self, app: Flask, client: FlaskClient) -> None:
        literal = seed(app, "alice", 1, filename="a.(b)*.png")
        seed(app, "alice", 1, filename="aXbb.png")
        assert list_all(client, auth(), q=".(b)*") == literal
        assert list_all(client, auth(), q=".*") == []

    def test_admin_sees_everyone_and_filters_by_owner(
        self, app: Flask, client: FlaskClient
    ) -> None:
        alice = seed(app, "alice", 2)
        bob = seed(app, "bob", 2)
        admin = auth("root", admin=True)
        assert sorted(list_all(client, admin)) == sorted(alice + bob)
        assert sorted(list_all(client, admin, owner="bob")) == sorted(bob)

    def test_owner_filter_on_someone_else_shows_non_admins_only_the_public_ones(
        self, app: Flask, client: FlaskClient
    ) -> None:
        # Contract v1.1 (sharing): this answered 403 before; now it is the owner's gallery.
        seed(app, "bob", 2)
        public = seed(app, "bob", 3, visibility=PUBLIC)
        seed(app, "carol", 1, visibility=PUBLIC)
        assert sorted(list_all(client, auth(), owner="bob", limit=2)) == sorted(public)
        assert list_all(client, auth(), owner="bob", kind="cover") == []
        assert list_all(client, auth(), owner="nobody") == []
        # Without owner, still only the caller's own.
        mine = seed(app, "alice", 1)
        assert list_all(client, auth()) == mine

    def test_a_reader_lists_like_an_admin(self, app: Flask, client: FlaskClient) -> None:
        private = seed(app, "bob", 2)
        public = seed(app, "bob", 1, visibility=PUBLIC)
        carols = seed(app, "carol", 1)
        reader = bearer(make_token("backend", roles=["reader"]))
        assert sorted(list_all(client, reader, owner="bob")) == sorted(private + public)
        assert sorted(list_all(client, reader)) == sorted(private + public + carols)

    def test_bad_query_is_400(self, client: FlaskClient) -> None:
        for query in (
            "limit=0",
            "limit=101",
            "limit=x",
            "sort=random",
            "cursor=%%%",
            "cursor=abc",
            "unknown=1",
        ):
            response = client.get(f"/images?{query}", headers=auth())
            assert response.status_code == 400, query
            assert response.json["error"]["code"] == "validation_error"

    def test_cursor_of_another_sort_is_400(self, app: Flask, client: FlaskClient) -> None:
        seed(app, "alice", 3)
        cursor = client.get("/images?limit=1", headers=auth()).json["next_cursor"]
        response = client.get(f"/images?limit=1&sort=most_used&cursor={cursor}", headers=auth())
        assert response.status_code == 400
        assert response.json["error"]["details"] == {"cursor": ["invalid cursor"]}

    def test_deep_pages_are_ranges_from_the_cursor_not_skips(
        self, app: Flask, broker: Broker, client: FlaskClient, monkeypatch: Any
    ) -> None:
        seed(app, "alice", 5)
        cursor = client.get("/images?limit=2&kind=gallery", headers=auth()).json["next_cursor"]
        collection = broker.db.images.collection
        filters: list[dict[str, Any]] = []
        real_find = collection.find

        def spy(query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            filters.append(query)
            found = real_find(query, *args, **kwargs)
            monkeypatch.setattr(found, "skip", lambda n: pytest.fail("a page must not skip"))
            return found

        monkeypatch.setattr(collection, "find", spy)
        page = client.get(f"/images?limit=2&kind=gallery&cursor={cursor}", headers=auth()).json
        assert len(page["images"]) == 2
        # First the rows tied with the cursor's created_at, then everything strictly older:
        # each one index range (owner, kind, created_at, _id), no $or for a planner to trip on.
        ties, older = filters[0], filters[1]
        assert set(ties) == {"owner", "kind", "deleting_at", "created_at", "_id"}
        assert isinstance(ties["created_at"], datetime) and "$lt" in ties["_id"]
        assert set(older) == {"owner", "kind", "deleting_at", "created_at"}
        assert "$lt" in older["created_at"]

    def test_rows_sharing_a_timestamp_page_exactly_once(
        self, app: Flask, client: FlaskClient
    ) -> None:
        ids = seed(app, "alice", 7, at=datetime(2026, 5, 1, tzinfo=UTC), usage=1)
        for sort in ("newest", "oldest", "most_used"):
            listed = list_all(client, auth(), limit=2, sort=sort)
            assert sorted(listed) == sorted(ids) and len(listed) == len(set(listed)), sort


class TestPatch:
    def test_caption_kind_and_tags(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        response = client.patch(
            f"/images/{image['id']}",
            json={"caption": "new", "kind": "profile", "tags": [" a ", "A", "b"]},
            headers=auth(),
        )
        assert response.status_code == 200
        changed = response.json["image"]
        assert (changed["caption"], changed["kind"], changed["tags"]) == (
            "new",
            "profile",
            ["a", "b"],
        )
        assert changed["updated_at"] > image["updated_at"]

    def test_one_primary_per_owner_and_kind(self, client: FlaskClient, upload: Uploader) -> None:
        first, second = upload().image, upload().image
        cover = upload(kind="cover").image
        for image in (first, second, cover):
            client.patch(f"/images/{image['id']}", json={"is_primary": True}, headers=auth())

        def primary(image: dict[str, Any]) -> bool:
            return bool(
                client.get(f"/images/{image['id']}", headers=auth()).json["image"]["is_primary"]
            )

        assert (primary(first), primary(second), primary(cover)) == (False, True, True)

    def test_changing_kind_unmarks_primary(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        client.patch(f"/images/{image['id']}", json={"is_primary": True}, headers=auth())
        moved = client.patch(f"/images/{image['id']}", json={"kind": "cover"}, headers=auth())
        assert moved.json["image"]["is_primary"] is False

    def test_invalid_patch_is_400_and_changes_nothing(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload(caption="keep").image
        for body in (
            {"owner": "bob"},
            {"tags": ["x" * 51]},
            {"tags": ["t"] * 21},
            {"kind": "banner"},
            {"is_primary": "yes"},
            {"caption": "c" * 2001},
        ):
            response = client.patch(f"/images/{image['id']}", json=body, headers=auth())
            assert response.status_code == 400, body
        assert client.get(f"/images/{image['id']}", headers=auth()).json["image"] == image

    def test_someone_elses_image_is_404(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        response = client.patch(
            f"/images/{image['id']}", json={"caption": "x"}, headers=auth("bob")
        )
        assert response.status_code == 404


class TestUsage:
    def test_counts_and_stamps(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        client.post(f"/images/{image['id']}/usage", headers=auth())
        used = client.post(f"/images/{image['id']}/usage", headers=auth()).json["image"]
        assert used["usage_count"] == 2
        assert used["last_used_at"] is not None


class TestDelete:
    def test_removes_object_and_record(
        self, broker: Broker, client: FlaskClient, upload: Uploader
    ) -> None:
        uploaded = upload()
        bucket = broker.bucket
        assert bucket.head(uploaded.image["key"]) is not None
        response = client.delete(f"/images/{uploaded.image['id']}", headers=auth())
        assert response.status_code == 204
        assert client.get(f"/images/{uploaded.image['id']}", headers=auth()).status_code == 404
        assert bucket.head(uploaded.image["key"]) is None
        assert broker.db.images.collection.count_documents({}) == 0

    def test_someone_elses_image_is_404_and_kept(
        self, client: FlaskClient, upload: Uploader
    ) -> None:
        image = upload().image
        assert client.delete(f"/images/{image['id']}", headers=auth("bob")).status_code == 404
        assert client.get(f"/images/{image['id']}", headers=auth()).status_code == 200

    def test_admin_can_delete_anyones(self, client: FlaskClient, upload: Uploader) -> None:
        image = upload().image
        assert (
            client.delete(f"/images/{image['id']}", headers=auth("root", admin=True)).status_code
            == 204
        )
