"""Forged pagination cursors: any cursor text answers a page or 400, never a 5xx.

A cursor is base64url JSON (``{"s": sort, "v": [values…]}``) that the client hands back, so an
attacker can put anything in it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.envelope import assert_envelope
from tests.support.tokens import auth
from tests.support.upload import Flow

OID = "0123456789abcdef01234567"
SORTS = ["newest", "oldest", "most_used"]


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def flow(module_flows: Callable[..., Flow]) -> Flow:
    flow = module_flows()
    for _ in range(3):
        flow.upload()
    return flow


def assert_page_or_400(response: Any) -> None:
    assert response.status_code in (200, 400), (response.status_code, response.get_data()[:300])
    if response.status_code == 400:
        assert "cursor" in assert_envelope(response, 400, "validation_error")["details"]
    else:
        assert isinstance(response.json["images"], list)


def test_real_cursors_page_through(flow: Flow) -> None:
    for sort in SORTS:
        seen: list[str] = []
        cursor = None
        while True:
            query = f"/images?sort={sort}&limit=1" + (f"&cursor={cursor}" if cursor else "")
            page = flow.client.get(query, headers=auth())
            assert page.status_code == 200
            seen += [image["id"] for image in page.json["images"]]
            cursor = page.json["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 3


# Integers stay within what the bugs below leave alone, so this property holds today.
safe_ints = st.integers(min_value=-(2**40), max_value=2**40)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), safe_ints, st.floats(), st.text(max_size=40), st.just(OID)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)
cursors = st.one_of(
    st.fixed_dictionaries({"s": st.sampled_from(SORTS), "v": st.lists(values, max_size=4)}),
    st.fixed_dictionaries(
        {"s": st.sampled_from(SORTS), "v": st.tuples(safe_ints, safe_ints, st.just(OID))}
    ),
    values,
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(sort=st.sampled_from(SORTS), cursor=cursors)
def test_forged_cursor_contents(flow: Flow, sort: str, cursor: Any) -> None:
    response = flow.client.get(f"/images?sort={sort}&cursor={encode(cursor)}", headers=auth())
    assert_page_or_400(response)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(text=st.text(max_size=200))
def test_cursor_text_that_is_not_base64_json(flow: Flow, text: str) -> None:
    response = flow.client.get("/images", query_string={"cursor": text}, headers=auth())
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert_envelope(response, 400, "validation_error")


def test_a_cursor_made_for_another_sort_is_400(flow: Flow) -> None:
    page = flow.client.get("/images?sort=newest&limit=1", headers=auth())
    cursor = page.json["next_cursor"]
    response = flow.client.get(f"/images?sort=most_used&cursor={cursor}", headers=auth())
    assert_envelope(response, 400, "validation_error")


@pytest.mark.parametrize("count", [2**63, -(2**63) - 1, 10**30])
def test_an_out_of_range_usage_count_is_400(flow: Flow, count: int) -> None:
    cursor = encode({"s": "most_used", "v": [count, 1, OID]})
    assert_page_or_400(flow.client.get(f"/images?sort=most_used&cursor={cursor}", headers=auth()))


@pytest.mark.parametrize("sort", SORTS)
def test_a_created_at_past_year_9999_is_400(flow: Flow, sort: str) -> None:
    millis = 253402300800000
    values_ = [millis, OID] if sort != "most_used" else [0, millis, OID]
    cursor = encode({"s": sort, "v": values_})
    assert_page_or_400(flow.client.get(f"/images?sort={sort}&cursor={cursor}", headers=auth()))
