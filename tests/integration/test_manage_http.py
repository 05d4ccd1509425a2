"""The admin settings API over real HTTP through the local host: the cases whose point is the
wire (status, headers, raw bodies, paging links) of contract §3 "Admin".
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shared.services.app import App
from tests.conftest import START
from tests.integration.manage import (
    MAX_BODY,
    MERGE_PATCH,
    PORTAL,
    PROBLEM,
    VALID,
    WIDGET,
    _padded,
    put,
)

pytestmark = pytest.mark.usefixtures("service")


# --- over real HTTP through the local host -------------------------------------------------


def _problem_over_http(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    return body


def test_http_acceptance_scenario(api: httpx.Client) -> None:
    """The issue's acceptance walk-through, over real HTTP."""
    created = api.put("manage/widgets/demo", json=VALID)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/json")
    etag = created.headers["etag"]

    read = api.get("manage/widgets/demo")
    assert read.status_code == 200
    assert read.headers["etag"] == etag
    assert read.json()["portalUrl"] == PORTAL

    replaced = api.put(
        "manage/widgets/demo", json={**VALID, "timeLimitMinutes": 20}, headers={"If-Match": etag}
    )
    assert replaced.status_code == 200, replaced.text

    stale = api.put(
        "manage/widgets/demo", json={**VALID, "timeLimitMinutes": 30}, headers={"If-Match": etag}
    )
    _problem_over_http(stale, 412)

    invalid = api.put("manage/widgets/demo", json={**VALID, "timeLimitMinutes": 0})
    body = _problem_over_http(invalid, 422)
    assert [error["field"] for error in body["errors"]] == ["timeLimitMinutes"]

    assert api.get("manage/widgets/demo").json()["timeLimitMinutes"] == 20


def test_http_patch_with_both_media_types(api: httpx.Client) -> None:
    api.put("manage/widgets/demo", json=VALID)
    for index, media_type in enumerate((MERGE_PATCH, "application/json"), start=1):
        response = api.patch(
            "manage/widgets/demo",
            content=json.dumps({"timeLimitMinutes": 10 + index}),
            headers={"content-type": media_type},
        )
        assert response.status_code == 200, response.text
        assert response.json()["timeLimitMinutes"] == 10 + index
        assert response.json()["portalUrl"] == PORTAL


def test_http_body_size_limit(api: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    _problem_over_http(
        api.put("manage/widgets/demo", content=_padded(VALID, MAX_BODY + 1), headers=headers), 413
    )
    accepted = api.put("manage/widgets/demo", content=_padded(VALID, MAX_BODY), headers=headers)
    assert accepted.status_code == 201, accepted.text


def test_http_content_types(api: httpx.Client) -> None:
    raw = json.dumps(VALID).encode()
    _problem_over_http(
        api.put("manage/widgets/demo", content=raw, headers={"content-type": "text/plain"}), 415
    )
    missing = api.build_request("PUT", "manage/widgets/demo", content=raw)
    assert "content-type" not in missing.headers
    _problem_over_http(api.send(missing), 415)
    _problem_over_http(api.put("manage/widgets/demo", json=[VALID]), 422)
    _problem_over_http(
        api.put(
            "manage/widgets/demo",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
        400,
    )


@pytest.mark.parametrize("widget_id", ["-bad", "a" * 129])
def test_http_bad_widget_id(api: httpx.Client, widget_id: str) -> None:
    _problem_over_http(api.put(f"manage/widgets/{widget_id}", json=VALID), 400)
    _problem_over_http(api.get(f"manage/widgets/{widget_id}"), 400)
    _problem_over_http(api.delete(f"manage/widgets/{widget_id}"), 400)


def test_http_delete_then_404(api: httpx.Client) -> None:
    api.put("manage/widgets/demo", json=VALID)
    deleted = api.delete("manage/widgets/demo")
    assert deleted.status_code == 204
    assert deleted.content == b""
    _problem_over_http(api.get("manage/widgets/demo"), 404)
    _problem_over_http(api.delete("manage/widgets/demo"), 404)
    _problem_over_http(
        api.patch("manage/widgets/demo", content=b"{}", headers={"content-type": MERGE_PATCH}),
        404,
    )


def test_http_list_follows_next_link(api: httpx.Client) -> None:
    ids = [f"w{index:02d}" for index in range(7)]
    for widget_id in ids:
        assert api.put(f"manage/widgets/{widget_id}", json={}).status_code == 201

    seen: list[str] = []
    response = api.get("manage/widgets", params={"top": "3"})
    for _ in range(10):
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [widget["widgetId"] for widget in page["value"]]
        if page["nextLink"] is None:
            break
        # nextLink is rooted at the host ("/api/..."): resolve it against the server.
        response = api.get(api.base_url.join(page["nextLink"]))
    assert seen == ids

    bad = api.get("manage/widgets", params={"top": "0"})
    _problem_over_http(bad, 400)


def test_service_fixture_is_the_one_the_handlers_use(service: App) -> None:
    """Guards the other tests: what the handlers write is in this test's tables."""
    put(VALID)
    found = service.settings.get_widget(WIDGET)
    assert found.value.portal_url == PORTAL
    assert found.value.updated_at == START
