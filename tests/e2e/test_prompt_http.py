"""The widget's prompt route on an authenticated widget end to end (`shared/api/widget.py`,
`shared/services/reconnect.py: reconnectable`): which customer tokens it accepts (401,
never 500, for every bad one) and which conversation it offers.

Everything goes over real HTTP to the local host serving function_app. Token validation
uses the real clock (PyJWT); the service's FakeClock only drives conversation deadlines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import FakeClock
from tests.e2e.authenticated import (
    ALICE,
    BOB,
    WIDGET,
    assert_unauthorized,
    b64,
    bearer,
    claims,
    conversation,
    disconnected,
    event,
    put_widget,
    reconnect_id,
    register,
    segment,
    token,
)
from tests.keys import public_pem

# --- the prompt: token checks --------------------------------------------------------------


def test_a_valid_token_gets_the_prompt(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "reconnectId": reconnect_id(api, "c-1"),
        "conversationId": "c-1",
        "expiresAt": "2026-11-25T12:10:00Z",
        "disconnectedAt": "2026-11-25T12:00:00Z",
    }


def test_no_token_is_401_with_a_bearer_challenge(api: httpx.Client, widget: str) -> None:
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnectable"))


def test_basic_authorization_is_401(api: httpx.Client, widget: str) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnectable", headers=basic))


def _hs256_with_public_pem(pem: str, header: dict[str, Any]) -> str:
    # PyJWT refuses a PEM as an HMAC secret, so the key-confusion token is made by hand.
    signing_input = f"{segment(header)}.{segment(claims())}"
    mac = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _oversized(key: rsa.RSAPrivateKey) -> str:
    made = token(key, pad="p" * 7000)
    assert len(made) > 8192
    return made


def _bad_tokens(key1: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey) -> dict[str, str]:
    now = int(time.time())
    return {
        "expired": token(key1, iat=now - 7200, exp=now - 3600),
        "nbf in the future": token(key1, nbf=now + 600),
        "iat in the future": token(key1, iat=now + 600, exp=now + 1200),
        "wrong issuer": token(key1, iss="https://evil.example.com"),
        "wrong audience": token(key1, aud="another-app"),
        "missing audience": token(key1, aud=None),
        "unknown kid": token(key1, kid="k9"),
        "wrong key": token(stranger_key, kid="k1"),
        "wrong key, no kid": token(stranger_key, kid=None),
        "alg none": f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims())}.",
        "alg none with kid": f"{segment({'alg': 'none', 'kid': 'k1'})}.{segment(claims())}.",
        "hs256 with public pem": _hs256_with_public_pem(
            public_pem(key1), {"alg": "HS256", "typ": "JWT", "kid": "k1"}
        ),
        "hs256 with public pem, no kid": _hs256_with_public_pem(
            public_pem(key1), {"alg": "HS256", "typ": "JWT"}
        ),
        "missing sub": token(key1, sub=None),
        "missing iss": token(key1, iss=None),
        "missing iat": token(key1, iat=None),
        "missing exp": token(key1, exp=None),
        "malformed abc": "abc",
        "malformed a.b.c": "a.b.c",
        "malformed non-base64": "!!!.???.***",
        "malformed non-json": "bm90IGpzb24.bm90IGpzb24.c2ln",
        "oversized": _oversized(key1),
        "oversized garbage": "a" * 20_000,
    }


CASES = [
    "expired",
    "nbf in the future",
    "iat in the future",
    "wrong issuer",
    "wrong audience",
    "missing audience",
    "unknown kid",
    "wrong key",
    "wrong key, no kid",
    "alg none",
    "alg none with kid",
    "hs256 with public pem",
    "hs256 with public pem, no kid",
    "missing sub",
    "missing iss",
    "missing iat",
    "missing exp",
    "malformed abc",
    "malformed a.b.c",
    "malformed non-base64",
    "malformed non-json",
    "oversized",
    "oversized garbage",
]


@pytest.mark.parametrize("case", CASES)
def test_every_bad_token_is_401_never_500(
    case: str,
    api: httpx.Client,
    widget: str,
    key1: rsa.RSAPrivateKey,
    stranger_key: rsa.RSAPrivateKey,
) -> None:
    disconnected(api, "c-1", ALICE)
    bad = _bad_tokens(key1, stranger_key)[case]
    assert_unauthorized(
        api.get(f"/widgets/{widget}/reconnectable", headers=bearer(bad)), secret=bad
    )
    # The link routes refuse it the same way, and nothing changes.
    link = reconnect_id(api, "c-1")
    assert_unauthorized(api.get(f"/widgets/{widget}/reconnect/{link}", headers=bearer(bad)))
    assert_unauthorized(api.post(f"/widgets/{widget}/reconnect/{link}", headers=bearer(bad)))
    assert_unauthorized(
        api.post(f"/widgets/{widget}/reconnect/{link}/decline", headers=bearer(bad))
    )
    after = conversation(api, "c-1")
    assert (after["state"], after["customerConnected"]) == ("active", False)


def test_every_bad_token_case_is_run(
    key1: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey
) -> None:
    assert sorted(CASES) == sorted(_bad_tokens(key1, stranger_key))


def test_audience_is_not_checked_when_the_widget_has_none(
    api: httpx.Client, key1: rsa.RSAPrivateKey
) -> None:
    put_widget(api, [("k1", key1)], audience=None)
    disconnected(api, "c-1", ALICE)
    for jwt_token in (token(key1, aud="whatever-app"), token(key1, aud=None)):
        answer = api.get(f"/widgets/{WIDGET}/reconnectable", headers=bearer(jwt_token))
        assert answer.status_code == 200, answer.text
        assert answer.json()["conversationId"] == "c-1"


# --- the prompt: which conversation --------------------------------------------------------


def test_the_newer_of_two_disconnected_conversations_is_offered(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-old", ALICE)
    clock.advance(minutes=2)
    disconnected(api, "c-new", ALICE)
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversationId"] == "c-new"
    assert answer.json()["reconnectId"] == reconnect_id(api, "c-new")


def test_newer_means_latest_disconnect_not_latest_registration(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    register(api, "c-first", ALICE)
    clock.advance(minutes=1)
    register(api, "c-second", ALICE)
    clock.advance(minutes=1)
    event(api, "c-second", "customer_disconnected")
    clock.advance(minutes=1)
    event(api, "c-first", "customer_disconnected")
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversationId"] == "c-first"
    assert answer.json()["disconnectedAt"] == "2026-11-25T12:03:00Z"


def test_a_still_connected_newer_conversation_wins_page_refresh(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-dropped", ALICE)
    clock.advance(minutes=1)
    register(api, "c-live", ALICE)  # active, customer still connected
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "reconnectId": reconnect_id(api, "c-live"),
        "conversationId": "c-live",
        "expiresAt": None,
        "disconnectedAt": None,
    }


def test_a_customer_with_nothing_gets_204(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204
    assert answer.content == b""


@pytest.mark.parametrize("ending", ["agent_ended", "customer_ended"])
def test_ended_conversations_are_not_offered(
    ending: str, api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    event(api, "c-1", ending)
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204


def test_an_ended_newer_conversation_leaves_the_older_offered(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-old", ALICE)
    clock.advance(minutes=1)
    disconnected(api, "c-new", ALICE)
    event(api, "c-new", "agent_ended")
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["conversationId"] == "c-old"


def test_a_conversation_past_its_deadline_is_not_offered(
    api: httpx.Client, clock: FakeClock, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-1", ALICE)
    clock.advance(minutes=10)  # exactly at the deadline: no longer reconnectable
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204


def test_another_customers_conversations_are_not_offered(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    disconnected(api, "c-bob", BOB)
    alice = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1, ALICE)))
    assert alice.status_code == 204
    bob = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1, BOB)))
    assert bob.status_code == 200
    assert bob.json()["conversationId"] == "c-bob"


def test_conversations_of_another_widget_are_not_offered(
    api: httpx.Client, widget: str, key1: rsa.RSAPrivateKey
) -> None:
    put_widget(api, [("k1", key1)], widget_id="w-other")
    register(api, "c-elsewhere", ALICE, widget_id="w-other")
    event(api, "c-elsewhere", "customer_disconnected")
    answer = api.get(f"/widgets/{widget}/reconnectable", headers=bearer(token(key1)))
    assert answer.status_code == 204
