"""The admin settings API (contract §2.1 and 3 "Admin") against a real Azurite.

Most cases call the decorated handlers directly with a real `func.HttpRequest`; the
ones whose point is the wire (status, headers, raw bodies, paging links) go through
the local host over real HTTP.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.api.manage import delete_widget, get_widget, list_widgets, patch_widget, put_widget
from shared.services.app import App
from tests.conftest import START, Answer, FakeClock, decode, http_request
from tests.keys import public_pem as _public_pem

pytestmark = pytest.mark.usefixtures("service")

WIDGET = "demo"
PORTAL = "https://contoso.example/help"
VALID: dict[str, Any] = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL}
DEFAULTS: dict[str, Any] = {
    "reconnectEnabled": False,
    "timeLimitMinutes": 10,
    "portalUrl": None,
    "redirectUrl": None,
    "authentication": None,
}
PROBLEM = "application/problem+json"
MERGE_PATCH = "application/merge-patch+json"
MAX_BODY = 65_536


# --- keys -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return _public_pem(rsa_key)


@pytest.fixture(scope="module")
def other_rsa_pem() -> str:
    return _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def small_rsa_pem() -> str:
    return _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.fixture(scope="module")
def ec_pem() -> str:
    return _public_pem(ec.generate_private_key(ec.SECP256R1()))


def _auth(*keys: tuple[str, str], issuer: str = "https://login.contoso.example/") -> dict[str, Any]:
    return {
        "issuer": issuer,
        "audience": "chat-widget",
        "publicKeys": [{"kid": kid, "pem": pem} for kid, pem in keys],
    }


# --- calling the handlers -----------------------------------------------------------------


def call(
    handler: Any,
    method: str,
    widget_id: str | None = WIDGET,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    content_type: str | None = "application/json",
) -> Answer:
    path = "manage/widgets" if widget_id is None else f"manage/widgets/{widget_id}"
    request = http_request(
        method,
        path,
        body,
        headers=headers,
        route_params={} if widget_id is None else {"widgetId": widget_id},
        params=params,
        content_type=content_type,
    )
    return decode(handler(request))


def put(body: Any, widget_id: str = WIDGET, **options: Any) -> Answer:
    return call(put_widget, "PUT", widget_id, body, **options)


def patch(body: Any, widget_id: str = WIDGET, **options: Any) -> Answer:
    options.setdefault("content_type", MERGE_PATCH)
    return call(patch_widget, "PATCH", widget_id, body, **options)


def get(widget_id: str = WIDGET) -> Answer:
    return call(get_widget, "GET", widget_id)


def delete(widget_id: str = WIDGET, **options: Any) -> Answer:
    return call(delete_widget, "DELETE", widget_id, **options)


def listing(**params: str) -> Answer:
    return call(list_widgets, "GET", None, params=params)


def settings(answer: Answer) -> dict[str, Any]:
    """The body without `updatedAt`, to compare with what was sent."""
    return {key: value for key, value in answer.body.items() if key != "updatedAt"}


def assert_problem(answer: Answer, status: int, field: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert answer.media_type == PROBLEM
    body = answer.body
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), member
        assert body[member], member
    if field is not None:
        fields = [error["field"] for error in body["errors"]]
        assert fields == [field], body
        assert all(error["message"] for error in body["errors"])


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


# --- validation: every rule of contract §2.1 -------------------------------------------------

LONG_URL = "https://contoso.example/" + "a" * (2049 - len("https://contoso.example/"))
BAD_URLS = [
    pytest.param("http://contoso.example/help", id="http-not-localhost"),
    pytest.param("ftp://contoso.example/help", id="ftp"),
    pytest.param("/help", id="relative-path"),
    pytest.param("contoso.example/help", id="no-scheme"),
    pytest.param("//contoso.example/help", id="scheme-relative"),
    pytest.param("https://user:pw@contoso.example/help", id="user-info"),
    pytest.param("https://user@contoso.example/help", id="user-only"),
    pytest.param(LONG_URL, id="2049-chars"),
    pytest.param("https://contoso.example/my help", id="space"),
    pytest.param(" https://contoso.example/help", id="leading-space"),
    pytest.param("https://contoso.example/help\n", id="newline"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("https://", id="no-host"),
    pytest.param("http://localhost.evil.example/", id="localhost-lookalike"),
]
GOOD_URLS = [
    pytest.param("http://localhost/help", id="http-localhost"),
    pytest.param("http://localhost:7071/demo/index.html", id="http-localhost-port"),
    pytest.param("http://127.0.0.1:8080/help", id="http-127.0.0.1"),
    pytest.param("https://contoso.example/help?lang=en#chat", id="query-fragment"),
    pytest.param(
        "https://contoso.example/" + "a" * (2048 - len("https://contoso.example/")), id="2048-chars"
    ),
]


def test_long_url_fixtures_have_the_lengths_they_claim() -> None:
    assert len(LONG_URL) == 2049
    assert len(GOOD_URLS[-1].values[0]) == 2048


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({**VALID, "timeLimitMinutes": 0}, "timeLimitMinutes", id="limit-0"),
        pytest.param({**VALID, "timeLimitMinutes": 1441}, "timeLimitMinutes", id="limit-1441"),
        pytest.param({**VALID, "timeLimitMinutes": -5}, "timeLimitMinutes", id="limit-negative"),
        pytest.param({**VALID, "timeLimitMinutes": "10"}, "timeLimitMinutes", id="limit-string"),
        pytest.param({**VALID, "timeLimitMinutes": True}, "timeLimitMinutes", id="limit-bool"),
        pytest.param({**VALID, "timeLimitMinutes": 1.5}, "timeLimitMinutes", id="limit-float"),
        pytest.param({**VALID, "reconnectEnabled": "yes"}, "reconnectEnabled", id="enabled-yes"),
        pytest.param({**VALID, "reconnectEnabled": 1}, "reconnectEnabled", id="enabled-1"),
        pytest.param({"reconnectEnabled": True}, "portalUrl", id="portal-missing-when-enabled"),
        pytest.param(
            {"reconnectEnabled": True, "portalUrl": ""}, "portalUrl", id="portal-empty-when-enabled"
        ),
        pytest.param({**VALID, "portalUrl": 42}, "portalUrl", id="portal-not-a-string"),
        pytest.param({**VALID, "colour": "blue"}, "colour", id="unknown-member"),
        pytest.param({**VALID, "widgetId": "someone-else"}, "widgetId", id="widget-id-mismatch"),
    ],
)
def test_invalid_settings_are_422_naming_the_field(body: dict[str, Any], field: str) -> None:
    assert_problem(put(body), 422, field)
    assert_problem(get(), 404)


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("field", ["portalUrl", "redirectUrl"])
def test_bad_urls_are_422_naming_the_field(field: str, url: str) -> None:
    assert_problem(put({**VALID, field: url}), 422, field)
    assert_problem(get(), 404)


@pytest.mark.parametrize("url", GOOD_URLS)
@pytest.mark.parametrize("field", ["portalUrl", "redirectUrl"])
def test_good_urls_are_accepted(field: str, url: str) -> None:
    answer = put({**VALID, field: url})
    assert answer.status == 201, answer.body
    assert answer.body[field] == url
    assert get().body[field] == url


def test_portal_url_is_optional_when_disabled() -> None:
    answer = put({"reconnectEnabled": False})
    assert answer.status == 201, answer.body
    assert answer.body["portalUrl"] is None


@pytest.mark.parametrize("minutes", [1, 1440])
def test_time_limit_bounds_are_accepted(minutes: int) -> None:
    answer = put({**VALID, "timeLimitMinutes": minutes})
    assert answer.status == 201, answer.body
    assert answer.body["timeLimitMinutes"] == minutes


def test_several_errors_are_each_named() -> None:
    answer = put({"reconnectEnabled": "no", "timeLimitMinutes": 0, "redirectUrl": "ftp://x"})
    assert answer.status == 422
    fields = {error["field"] for error in answer.body["errors"]}
    assert fields == {"reconnectEnabled", "timeLimitMinutes", "redirectUrl"}


BAD_PEM = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize(
    ("pem_name", "field"),
    [
        pytest.param("bad", "authentication.publicKeys[1].pem", id="pem-does-not-load"),
        pytest.param("garbage", "authentication.publicKeys[1].pem", id="not-pem-at-all"),
        pytest.param("ec", "authentication.publicKeys[1].pem", id="ec-key"),
        pytest.param("rsa1024", "authentication.publicKeys[1].pem", id="rsa-1024"),
        pytest.param("private", "authentication.publicKeys[1].pem", id="private-key-pem"),
        pytest.param("empty", "authentication.publicKeys[1].pem", id="empty-pem"),
    ],
)
def test_unusable_public_keys_are_422_naming_the_key(
    pem_name: str,
    field: str,
    rsa_pem: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_pem: str,
    small_rsa_pem: str,
) -> None:
    pems = {
        "bad": BAD_PEM,
        "garbage": "hello",
        "ec": ec_pem,
        "rsa1024": small_rsa_pem,
        "private": rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "empty": "",
    }
    body = {**VALID, "authentication": _auth(("good", rsa_pem), ("bad", pems[pem_name]))}
    assert_problem(put(body), 422, field)
    assert_problem(get(), 404)


def test_empty_public_keys_is_422() -> None:
    body = {**VALID, "authentication": _auth()}
    assert_problem(put(body), 422, "authentication.publicKeys")


def test_repeated_kid_is_422(rsa_pem: str, other_rsa_pem: str) -> None:
    body = {**VALID, "authentication": _auth(("same", rsa_pem), ("same", other_rsa_pem))}
    assert_problem(put(body), 422, "authentication.publicKeys")


@pytest.mark.parametrize(
    ("authentication", "field"),
    [
        pytest.param({"audience": "a", "publicKeys": []}, "authentication.issuer", id="no-issuer"),
        pytest.param({"issuer": "i"}, "authentication.publicKeys", id="no-keys"),
        pytest.param("yes", "authentication", id="not-an-object"),
    ],
)
def test_malformed_authentication_is_422(authentication: Any, field: str) -> None:
    answer = put({**VALID, "authentication": authentication})
    assert answer.status == 422
    assert field in [error["field"] for error in answer.body["errors"]]


def test_unknown_member_in_a_public_key_is_422(rsa_pem: str) -> None:
    body = {
        **VALID,
        "authentication": {
            "issuer": "i",
            "publicKeys": [{"kid": "k", "pem": rsa_pem, "alg": "RS256"}],
        },
    }
    assert_problem(put(body), 422, "authentication.publicKeys[0].alg")


def test_snake_case_member_is_unknown_and_422() -> None:
    # Only the camelCase wire names are the contract; a Python-style name is a typo.
    assert_problem(put({**VALID, "time_limit_minutes": 5}), 422, "time_limit_minutes")


# --- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"reconnectEnabled": ', id="truncated"),
        pytest.param(b"{'reconnectEnabled': true}", id="single-quotes"),
        pytest.param(b'{"timeLimitMinutes": NaN}', id="nan"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
    ],
)
def test_malformed_json_is_400(raw: bytes) -> None:
    answer = decode(
        put_widget(
            http_request(
                "PUT",
                f"manage/widgets/{WIDGET}",
                raw,
                headers={"content-type": "application/json"},
                route_params={"widgetId": WIDGET},
            )
        )
    )
    assert_problem(answer, 400)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([VALID], id="array"),
        pytest.param("settings", id="string"),
        pytest.param(10, id="number"),
        pytest.param(None, id="null"),
    ],
)
def test_json_that_is_not_an_object_is_422(body: Any) -> None:
    raw = json.dumps(body).encode()
    assert_problem(put(raw), 422, "body")


def test_wrong_content_type_is_415() -> None:
    assert_problem(put(json.dumps(VALID).encode(), content_type="text/plain"), 415)
    assert_problem(put(json.dumps(VALID).encode(), content_type=None), 415)
    assert_problem(put(json.dumps(VALID).encode(), content_type=MERGE_PATCH), 415)
    assert_problem(get(), 404)


BAD_IDS = [
    pytest.param("-bad", id="leading-dash"),
    pytest.param("bad\n", id="trailing-newline"),
    pytest.param(".bad", id="leading-dot"),
    pytest.param("a" * 129, id="129-chars"),
    pytest.param("has space", id="space"),
    pytest.param("semi;colon", id="semicolon"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("widget_id", BAD_IDS)
def test_bad_widget_id_in_path_is_400_on_every_route(widget_id: str) -> None:
    assert_problem(put(VALID, widget_id=widget_id), 400)
    assert_problem(get(widget_id), 400)
    assert_problem(patch({"timeLimitMinutes": 30}, widget_id=widget_id), 400)
    assert_problem(delete(widget_id), 400)
    for answer in (put(VALID, widget_id=widget_id), get(widget_id)):
        assert [error["field"] for error in answer.body["errors"]] == ["widgetId"]


def test_longest_valid_widget_id_is_accepted() -> None:
    widget_id = "W" + "a_.-9" * 25 + "xy"
    assert len(widget_id) == 128
    answer = put(VALID, widget_id=widget_id)
    assert answer.status == 201, answer.body
    assert get(widget_id).body["widgetId"] == widget_id


def _padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes, padded with whitespace inside the object."""
    text = json.dumps(body)
    padded = text[:-1] + " " * (size - len(text)) + "}"
    raw = padded.encode()
    assert len(raw) == size
    return raw


def test_body_of_exactly_64_kib_is_accepted() -> None:
    answer = put(_padded(VALID, MAX_BODY))
    assert answer.status == 201, answer.body


def test_body_one_byte_over_64_kib_is_413() -> None:
    assert_problem(put(_padded(VALID, MAX_BODY + 1)), 413)
    assert_problem(get(), 404)


def test_patch_body_over_64_kib_is_413() -> None:
    put(VALID)
    assert_problem(patch(_padded({"timeLimitMinutes": 30}, MAX_BODY + 1)), 413)
    assert get().body["timeLimitMinutes"] == 10


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
