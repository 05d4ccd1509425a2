"""The admin settings API's listing and paging ($top, nextLink, continuation tokens) against a
real Azurite, through the decorated handlers of `shared/api/manage.py`.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.manage import DEFAULTS, VALID, WIDGET, assert_problem, listing, put

pytestmark = pytest.mark.usefixtures("service")


# --- listing and paging --------------------------------------------------------------------


def test_list_is_empty_without_widgets() -> None:
    answer = listing()
    assert answer.status == 200
    assert answer.body == {"value": [], "nextLink": None}


def test_list_returns_every_widget_with_its_settings() -> None:
    put(VALID, widget_id="b")
    put({"timeLimitMinutes": 5}, widget_id="a")

    answer = listing()

    assert answer.status == 200
    assert answer.body["nextLink"] is None
    assert [widget["widgetId"] for widget in answer.body["value"]] == ["a", "b"]
    assert answer.body["value"][0] == {
        **DEFAULTS,
        "widgetId": "a",
        "timeLimitMinutes": 5,
        "updatedAt": "2026-11-25T12:00:00Z",
    }


def _next_params(next_link: str) -> dict[str, str]:
    parts = urlsplit(next_link)
    assert parts.path == "/api/manage/widgets"
    return {key: values[0] for key, values in parse_qs(parts.query).items()}


def test_list_pages_with_top_and_next_link() -> None:
    ids = [f"w{index}" for index in range(5)]
    for widget_id in ids:
        assert put(VALID, widget_id=widget_id).status == 201

    seen: list[str] = []
    sizes: list[int] = []
    params = {"top": "2"}
    for _ in range(10):
        page = listing(**params)
        assert page.status == 200, page.body
        sizes.append(len(page.body["value"]))
        seen += [widget["widgetId"] for widget in page.body["value"]]
        if page.body["nextLink"] is None:
            break
        params = _next_params(page.body["nextLink"])
        assert params["top"] == "2"
        assert params["continuationToken"]

    assert seen == ids
    assert sizes == [2, 2, 1]


@pytest.mark.parametrize("top", ["0", "1001", "-1", "abc", "1.5", "", " 2"])
def test_bad_top_is_400(top: str) -> None:
    answer = listing(top=top)
    assert_problem(answer, 400, "top")


@pytest.mark.parametrize("top", ["1", "1000"])
def test_top_bounds_are_accepted(top: str) -> None:
    put(VALID)
    answer = listing(top=top)
    assert answer.status == 200
    assert [widget["widgetId"] for widget in answer.body["value"]] == [WIDGET]


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("%%%", id="percent"),
        pytest.param(base64.urlsafe_b64encode(b"not json").decode(), id="not-json"),
        pytest.param(_token("x"), id="json-string"),
        pytest.param(_token(123), id="json-number"),
        pytest.param(_token([1, 2]), id="json-array"),
        pytest.param(_token({"PartitionKey": 1, "RowKey": 2}), id="json-object-of-numbers"),
        pytest.param(_token({"unexpected": "x"}), id="json-object-other-members"),
        pytest.param(_token({}), id="json-empty-object"),
        pytest.param(_token({"PartitionKey": None, "RowKey": None}), id="json-object-of-nulls"),
    ],
)
def test_bad_continuation_token_is_400(token: str) -> None:
    put(VALID)
    assert_problem(listing(continuationToken=token), 400, "continuationToken")
