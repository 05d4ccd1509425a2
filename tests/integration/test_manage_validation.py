"""The admin settings API refuses what contract §2.1 forbids, naming the field, against a real
Azurite: every settings rule, unusable keys and malformed requests (400, 413, 415, 422).

The cases call the decorated handlers of `shared/api/manage.py` directly with a real
`func.HttpRequest`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.api.manage import put_widget
from tests.conftest import decode, http_request
from tests.integration.manage import (
    MAX_BODY,
    MERGE_PATCH,
    VALID,
    WIDGET,
    _auth,
    _padded,
    assert_problem,
    delete,
    get,
    patch,
    put,
)

pytestmark = pytest.mark.usefixtures("service")


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
