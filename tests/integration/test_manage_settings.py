"""The admin settings API against a real Azurite: create, read, replace, delete, the
If-Match / If-None-Match preconditions and merge patch (contract §2.1 and §3 "Admin").

The cases call the decorated handlers of `shared/api/manage.py` directly with a real
`func.HttpRequest`.
"""

from __future__ import annotations

import pytest

from tests.conftest import FakeClock
from tests.integration.manage import (
    DEFAULTS,
    MERGE_PATCH,
    PORTAL,
    VALID,
    WIDGET,
    _auth,
    assert_problem,
    delete,
    get,
    patch,
    put,
    settings,
)

pytestmark = pytest.mark.usefixtures("service")


# --- create, read, replace, delete ----------------------------------------------------------


def test_put_creates_with_etag_and_get_returns_the_same() -> None:
    created = put(VALID)

    assert created.status == 201
    assert created.media_type == "application/json"
    assert created.headers["etag"]
    assert created.body == {
        **DEFAULTS,
        **VALID,
        "widgetId": WIDGET,
        "updatedAt": "2026-11-25T12:00:00Z",
    }

    read = get()
    assert read.status == 200
    assert read.headers["etag"] == created.headers["etag"]
    assert read.body == created.body


def test_put_replaces_with_200_and_a_new_etag(clock: FakeClock) -> None:
    first = put(VALID)
    clock.advance(minutes=5)

    replaced = put({**VALID, "timeLimitMinutes": 30})

    assert replaced.status == 200
    assert replaced.body["timeLimitMinutes"] == 30
    assert replaced.body["updatedAt"] == "2026-11-25T12:05:00Z"
    assert replaced.headers["etag"] != first.headers["etag"]
    assert get().headers["etag"] == replaced.headers["etag"]


def test_put_omitting_optional_fields_resets_them_to_defaults(rsa_pem: str) -> None:
    full = {
        "reconnectEnabled": True,
        "timeLimitMinutes": 45,
        "portalUrl": PORTAL,
        "redirectUrl": "https://contoso.example/sorry",
        "authentication": _auth(("k1", rsa_pem)),
    }
    assert put(full).status == 201

    replaced = put({})

    assert replaced.status == 200
    assert settings(replaced) == {**DEFAULTS, "widgetId": WIDGET}
    assert settings(get()) == {**DEFAULTS, "widgetId": WIDGET}


def test_body_widget_id_equal_to_the_path_is_accepted() -> None:
    answer = put({**VALID, "widgetId": WIDGET})
    assert answer.status == 201
    assert answer.body["widgetId"] == WIDGET


def test_body_widget_id_other_than_the_path_is_422() -> None:
    assert_problem(put({**VALID, "widgetId": "other"}), 422, "widgetId")
    assert_problem(get(), 404)


def test_get_unknown_widget_is_404() -> None:
    assert_problem(get("nobody"), 404)


def test_delete_answers_204_then_404() -> None:
    put(VALID)

    deleted = delete()

    assert deleted.status == 204
    assert deleted.body is None
    assert_problem(get(), 404)
    assert_problem(delete(), 404)


def test_delete_unknown_widget_is_404() -> None:
    assert_problem(delete("never-created"), 404)


def test_redirect_url_empty_means_none() -> None:
    answer = put({**VALID, "redirectUrl": ""})
    assert answer.status == 201
    assert answer.body["redirectUrl"] is None
    assert get().body["redirectUrl"] is None


def test_valid_rsa_2048_key_is_accepted_and_stored(rsa_pem: str, other_rsa_pem: str) -> None:
    authentication = _auth(("k1", rsa_pem), ("k2", other_rsa_pem))

    answer = put({**VALID, "authentication": authentication})

    assert answer.status == 201, answer.body
    assert answer.body["authentication"] == authentication
    assert get().body["authentication"] == authentication


def test_authentication_without_audience_answers_null(rsa_pem: str) -> None:
    authentication = {
        "issuer": "https://idp.example/",
        "publicKeys": [{"kid": "a", "pem": rsa_pem}],
    }
    answer = put({**VALID, "authentication": authentication})
    assert answer.status == 201, answer.body
    assert answer.body["authentication"] == {**authentication, "audience": None}


# --- preconditions ---------------------------------------------------------------------------


def test_stale_if_match_is_412_and_changes_nothing(clock: FakeClock) -> None:
    stale = put(VALID).headers["etag"]
    clock.advance(seconds=1)
    current = put({**VALID, "timeLimitMinutes": 20}).headers["etag"]

    assert_problem(put({**VALID, "timeLimitMinutes": 99}, headers={"If-Match": stale}), 412)
    assert_problem(patch({"timeLimitMinutes": 99}, headers={"If-Match": stale}), 412)
    assert_problem(delete(headers={"If-Match": stale}), 412)

    read = get()
    assert read.body["timeLimitMinutes"] == 20
    assert read.headers["etag"] == current


def test_matching_if_match_succeeds() -> None:
    etag = put(VALID).headers["etag"]

    replaced = put({**VALID, "timeLimitMinutes": 20}, headers={"If-Match": etag})
    assert replaced.status == 200
    assert replaced.body["timeLimitMinutes"] == 20

    patched = patch({"timeLimitMinutes": 25}, headers={"If-Match": replaced.headers["etag"]})
    assert patched.status == 200
    assert patched.body["timeLimitMinutes"] == 25

    assert delete(headers={"If-Match": patched.headers["etag"]}).status == 204
    assert_problem(get(), 404)


def test_if_match_star_matches_an_existing_widget() -> None:
    put(VALID)
    answer = put({**VALID, "timeLimitMinutes": 15}, headers={"If-Match": "*"})
    assert answer.status == 200
    assert answer.body["timeLimitMinutes"] == 15


def test_if_match_star_on_missing_widget_is_412() -> None:
    assert_problem(put(VALID, headers={"If-Match": "*"}), 412)
    assert_problem(get(), 404)


def test_if_match_on_missing_widget_is_412() -> None:
    assert_problem(put(VALID, headers={"If-Match": "W/\"datetime'2026'\""}), 412)
    assert_problem(get(), 404)


def test_if_none_match_star_creates_then_refuses_an_existing_widget() -> None:
    created = put(VALID, headers={"If-None-Match": "*"})
    assert created.status == 201

    assert_problem(put({**VALID, "timeLimitMinutes": 30}, headers={"If-None-Match": "*"}), 412)
    assert get().body["timeLimitMinutes"] == 10


# --- merge patch ------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [MERGE_PATCH, "application/json"])
def test_patch_changes_one_field_and_keeps_the_others(content_type: str, clock: FakeClock) -> None:
    original = put({**VALID, "redirectUrl": "https://contoso.example/sorry"})
    clock.advance(minutes=1)

    patched = patch({"timeLimitMinutes": 30}, content_type=content_type)

    assert patched.status == 200, patched.body
    assert patched.body == {
        **original.body,
        "timeLimitMinutes": 30,
        "updatedAt": "2026-11-25T12:01:00Z",
    }
    assert patched.headers["etag"] != original.headers["etag"]
    assert get().body == patched.body


def test_patch_with_charset_parameter_is_accepted() -> None:
    put(VALID)
    answer = patch(
        {"timeLimitMinutes": 12}, content_type="application/merge-patch+json; charset=utf-8"
    )
    assert answer.status == 200, answer.body
    assert answer.body["timeLimitMinutes"] == 12


def test_patch_null_resets_a_member_to_its_default() -> None:
    put({**VALID, "timeLimitMinutes": 60, "redirectUrl": "https://contoso.example/sorry"})

    patched = patch({"timeLimitMinutes": None, "redirectUrl": None})

    assert patched.status == 200, patched.body
    assert patched.body["timeLimitMinutes"] == 10
    assert patched.body["redirectUrl"] is None
    assert patched.body["portalUrl"] == PORTAL
    assert patched.body["reconnectEnabled"] is True


def test_patch_null_portal_url_while_enabled_is_422() -> None:
    put(VALID)
    assert_problem(patch({"portalUrl": None}), 422, "portalUrl")
    assert get().body["portalUrl"] == PORTAL


def test_patch_disabling_and_clearing_portal_url_together_is_accepted() -> None:
    put(VALID)
    patched = patch({"reconnectEnabled": False, "portalUrl": None})
    assert patched.status == 200, patched.body
    assert patched.body["reconnectEnabled"] is False
    assert patched.body["portalUrl"] is None


def test_patch_nested_authentication_is_merged_and_its_key_list_replaced(
    rsa_pem: str, other_rsa_pem: str
) -> None:
    put({**VALID, "authentication": _auth(("k1", rsa_pem))})

    patched = patch({"authentication": {"publicKeys": [{"kid": "k2", "pem": other_rsa_pem}]}})

    assert patched.status == 200, patched.body
    assert patched.body["authentication"] == {
        "issuer": "https://login.contoso.example/",
        "audience": "chat-widget",
        "publicKeys": [{"kid": "k2", "pem": other_rsa_pem}],
    }

    no_audience = patch({"authentication": {"audience": None}})
    assert no_audience.status == 200, no_audience.body
    assert no_audience.body["authentication"]["audience"] is None
    assert no_audience.body["authentication"]["issuer"] == "https://login.contoso.example/"

    removed = patch({"authentication": None})
    assert removed.status == 200, removed.body
    assert removed.body["authentication"] is None
    assert get().body["authentication"] is None


def test_patch_adds_authentication_to_a_widget_without_it(rsa_pem: str) -> None:
    put(VALID)
    authentication = _auth(("k1", rsa_pem))
    patched = patch({"authentication": authentication})
    assert patched.status == 200, patched.body
    assert patched.body["authentication"] == authentication


def test_patch_unknown_widget_is_404() -> None:
    assert_problem(patch({"timeLimitMinutes": 30}, widget_id="ghost"), 404)
    assert_problem(get("ghost"), 404)


def test_patch_invalid_value_is_422_and_changes_nothing() -> None:
    put(VALID)
    assert_problem(patch({"timeLimitMinutes": 0}), 422, "timeLimitMinutes")
    assert_problem(patch({"portalUrl": "ftp://contoso.example/"}), 422, "portalUrl")
    assert_problem(patch({"colour": "blue"}), 422, "colour")
    assert_problem(patch({"widgetId": "other"}), 422, "widgetId")
    assert settings(get()) == {**DEFAULTS, **VALID, "widgetId": WIDGET}


def test_patch_bodies_that_are_not_a_json_object() -> None:
    put(VALID)
    assert_problem(patch([{"op": "replace"}]), 422, "body")
    assert_problem(patch(b'{"timeLimitMinutes": '), 400)
    assert_problem(patch({"timeLimitMinutes": 30}, content_type="text/plain"), 415)
    assert_problem(patch({"timeLimitMinutes": 30}, content_type=None), 415)
