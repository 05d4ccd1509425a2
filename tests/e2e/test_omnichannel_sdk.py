"""Microsoft's own client, `@microsoft/omnichannel-chat-sdk` (pinned in package.json), resolves
reconnects against the local host: contract §6, issue 16.

Each case runs tests/e2e/sdk/reconnect_context.cjs in Node (jsdom supplies the browser
globals): the SDK's `initialize()` and `getChatReconnectContext()` with `orgUrl` pointed at
the local host serving function_app, in this process, so the test's `service` (fresh tables,
FakeClock) answers. What the SDK returned in each case is printed and collected in
tests/e2e/artifacts/omnichannel-sdk-results.json.

What the SDK does that the plain contract would not lead one to expect (and how our answers
steer it), from its source (OmnichannelChatSDK.getChatReconnectContext):
- an availability answer without a body counts as *usable*: so unusable links get a 200
  body with `isReconnectAvailable: false`, never a 204;
- an error (4xx, 5xx) from either call is swallowed and yields {null, null};
- a redirect URL returns at once; otherwise, on authenticated widgets, the prompt's answer
  replaces the link's (a 204 clears it): the link route therefore answers 401 without the
  customer's token, and the SDK ends with what the prompt decides for that customer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.api import omnichannel
from shared.config import get_settings
from shared.services.app import App
from tests.conftest import OMNICHANNEL_ORG_ID, FakeClock
from tests.keys import public_pem

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "sdk" / "reconnect_context.cjs"
RESULTS = Path(__file__).resolve().parent / "artifacts" / "omnichannel-sdk-results.json"
PORTAL = "https://portal.example.com/help?lang=en"
REDIRECT = "https://portal.example.com/new-chat"
ISSUER = "https://login.example.com/tenant"
ALICE = "alice@example.com"
BOB = "bob@example.com"
AGENT = "agent-7"
TIME_LIMIT = 10
SDK_TIMEOUT = 120
UNAVAILABLE_WITH_REDIRECT = {"reconnectId": None, "redirectURL": REDIRECT}
NOTHING = {"reconnectId": None, "redirectURL": None}

_results: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def results_file() -> Iterator[None]:
    """Collects what the SDK returned per case into the results file, for the report."""
    yield
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(_results, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_sdk(
    case: str,
    host_url: str,
    widget_id: str,
    *,
    reconnect_id: str | None = None,
    token: str | None = None,
    org_id: str = OMNICHANNEL_ORG_ID,
    again: bool = False,
) -> dict[str, Any]:
    """What the real SDK's initialize() and getChatReconnectContext() give, as JSON."""
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (make test installs it with the npm packages)"
    arguments: dict[str, Any] = {
        "orgUrl": host_url + "/api",
        "orgId": org_id,
        "widgetId": widget_id,
        "pageUrl": PORTAL,
    }
    if reconnect_id is not None:
        arguments["reconnectId"] = reconnect_id
    if token is not None:
        arguments["token"] = token
    if again:
        arguments["again"] = True
    done = subprocess.run(
        [node, str(SCRIPT), json.dumps(arguments)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SDK_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    _results[case] = result
    print(f"SDK {case}: {json.dumps(result)}")
    return result


# --- the platform's and the admin's side, over HTTP ----------------------------------------


def put_widget(api: httpx.Client, widget_id: str, **changes: Any) -> None:
    body: dict[str, Any] = {
        "widgetId": widget_id,
        "reconnectEnabled": True,
        "timeLimitMinutes": TIME_LIMIT,
        "portalUrl": PORTAL,
        "redirectUrl": REDIRECT,
        **changes,
    }
    answer = api.put(f"/manage/widgets/{widget_id}", json=body)
    assert answer.status_code in (200, 201), answer.text


def disconnected_conversation(
    api: httpx.Client, widget_id: str, customer: str | None = None
) -> tuple[str, str]:
    """A conversation whose customer just dropped out, and its reconnect id."""
    conversation_id = "c-" + uuid.uuid4().hex[:10]
    body: dict[str, Any] = {"widgetId": widget_id, "agentId": AGENT}
    if customer is not None:
        body["customerId"] = customer
    assert api.put(f"/conversations/{conversation_id}", json=body).status_code == 201
    answer = api.post(
        f"/conversations/{conversation_id}/events", json={"type": "customer_disconnected"}
    )
    assert answer.status_code == 200, answer.text
    url = api.get(f"/conversations/{conversation_id}").json()["reconnectUrl"]
    return conversation_id, parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def customer_token(key: rsa.RSAPrivateKey, subject: str) -> str:
    """A real RS256 customer token, as the portal's identity provider would sign it."""
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": subject, "iat": now - 60, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def authenticated(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return {
        "authentication": {
            "issuer": ISSUER,
            "audience": None,
            "publicKeys": [{"kid": "k1", "pem": public_pem(key)}],
        }
    }


def widget_id() -> str:
    return "w-" + uuid.uuid4().hex[:10]


# --- anonymous widgets: the link ---------------------------------------------------------


def test_a_usable_link_gives_back_its_reconnect_id(
    host_url: str, api: httpx.Client, service: App
) -> None:
    widget = widget_id()
    put_widget(api, widget)
    _, reconnect_id = disconnected_conversation(api, widget)

    result = run_sdk("usable link", host_url, widget, reconnect_id=reconnect_id)

    assert result["initialized"] is True
    assert result["reconnectEnabled"] == "true"
    assert result["authenticated"] is False
    assert result["context"] == {"reconnectId": reconnect_id, "redirectURL": None}


@pytest.mark.parametrize("redirect", [REDIRECT, ""], ids=["with-redirect", "without-redirect"])
def test_an_expired_link_gives_the_redirect_url_or_nothing(
    host_url: str, api: httpx.Client, service: App, clock: FakeClock, redirect: str
) -> None:
    widget = widget_id()
    put_widget(api, widget, redirectUrl=redirect)
    _, reconnect_id = disconnected_conversation(api, widget)
    clock.advance(minutes=TIME_LIMIT, seconds=1)

    case = "expired link, " + ("with redirect URL" if redirect else "without redirect URL")
    result = run_sdk(case, host_url, widget, reconnect_id=reconnect_id)

    assert result["context"] == (UNAVAILABLE_WITH_REDIRECT if redirect else NOTHING)


def test_revoked_forged_and_other_widget_links_are_unavailable_alike(
    host_url: str, api: httpx.Client, service: App
) -> None:
    widget, other = widget_id(), widget_id()
    put_widget(api, widget)
    put_widget(api, other)
    conversation_id, revoked = disconnected_conversation(api, widget)
    assert api.post(f"/conversations/{conversation_id}/reconnect-link/revoke").status_code == 200
    _, others = disconnected_conversation(api, other)
    forged = revoked[:-4] + ("AAAA" if not revoked.endswith("AAAA") else "BBBB")

    links = {"revoked link": revoked, "forged link": forged, "other widget's link": others}
    contexts = {
        case: run_sdk(case, host_url, widget, reconnect_id=link)["context"]
        for case, link in links.items()
    }
    wire = {
        case: api.get(f"/livechatconnector/reconnect/{OMNICHANNEL_ORG_ID}/{widget}/{link}").json()
        for case, link in links.items()
    }

    assert all(context == UNAVAILABLE_WITH_REDIRECT for context in contexts.values()), contexts
    # The same answer whatever the cause: nothing tells a revoked link from a forged one.
    expected = {
        "reconnectId": None,
        "isReconnectAvailable": False,
        "reconnectRedirectionURL": REDIRECT,
    }
    assert all(body == expected for body in wire.values()), wire


def test_reconnection_switched_off_in_the_widget_settings(
    host_url: str, api: httpx.Client, service: App
) -> None:
    widget = widget_id()
    put_widget(api, widget)
    _, reconnect_id = disconnected_conversation(api, widget)
    assert api.patch(f"/manage/widgets/{widget}", json={"reconnectEnabled": False}).is_success

    result = run_sdk("reconnection switched off", host_url, widget, reconnect_id=reconnect_id)

    assert result["initialized"] is True
    assert result["reconnectEnabled"] == "false"
    assert result["context"] == UNAVAILABLE_WITH_REDIRECT


# --- authenticated widgets: the prompt ---------------------------------------------------


def test_an_authenticated_widget_gets_the_prompts_conversation(
    host_url: str, api: httpx.Client, service: App, key1: rsa.RSAPrivateKey
) -> None:
    widget = widget_id()
    put_widget(api, widget, **authenticated(key1))
    conversation_id, reconnect_id = disconnected_conversation(api, widget, ALICE)
    token = customer_token(key1, ALICE)
    prompt = api.get(
        f"/widgets/{widget}/reconnectable", headers={"Authorization": f"Bearer {token}"}
    )
    assert prompt.status_code == 200
    assert prompt.json()["conversationId"] == conversation_id

    without_link = run_sdk("authenticated, prompt only", host_url, widget, token=token)
    with_link = run_sdk(
        "authenticated, with the customer's link",
        host_url,
        widget,
        reconnect_id=reconnect_id,
        token=token,
        again=True,
    )

    assert without_link["authenticated"] is True
    assert without_link["context"] == {
        "reconnectId": prompt.json()["reconnectId"],
        "redirectURL": None,
    }
    assert with_link["context"] == without_link["context"]
    # Asked again, the availability call carries the token too: the same answer.
    assert with_link["contextAgain"] == without_link["context"]


def test_another_customers_token_gets_nothing(
    host_url: str, api: httpx.Client, service: App, key1: rsa.RSAPrivateKey
) -> None:
    widget = widget_id()
    put_widget(api, widget, **authenticated(key1))
    _, alices_link = disconnected_conversation(api, widget, ALICE)
    bob = customer_token(key1, BOB)

    prompt_only = run_sdk("another customer's token", host_url, widget, token=bob)
    with_link = run_sdk(
        "another customer's token, with Alice's link",
        host_url,
        widget,
        reconnect_id=alices_link,
        token=bob,
        again=True,
    )

    assert prompt_only["context"] == NOTHING
    assert with_link["context"] == NOTHING
    # Asked again, Bob's token reaches the link's availability call, which answers as the
    # widget route does for someone else's link: unavailable, go to the redirect URL.
    assert with_link["contextAgain"] == UNAVAILABLE_WITH_REDIRECT


@pytest.mark.parametrize("kind", ["garbage", "unknown-key"])
def test_a_bad_token_gets_nothing(
    host_url: str,
    api: httpx.Client,
    service: App,
    key1: rsa.RSAPrivateKey,
    stranger_key: rsa.RSAPrivateKey,
    kind: str,
) -> None:
    widget = widget_id()
    put_widget(api, widget, **authenticated(key1))
    disconnected_conversation(api, widget, ALICE)
    token = "not-a-jwt" if kind == "garbage" else customer_token(stranger_key, ALICE)
    answer = api.get(
        f"/livechatconnector/auth/reconnectablechats/{OMNICHANNEL_ORG_ID}/{widget}/r1",
        headers={"AuthenticatedUserToken": token},
    )
    assert answer.status_code == 401

    result = run_sdk(f"bad token ({kind})", host_url, widget, token=token)

    assert result["initialized"] is True
    assert result["context"] == NOTHING


# --- what makes initialize() fail ----------------------------------------------------------


@pytest.mark.parametrize("case", ["unknown widget", "another org id"])
def test_initialize_fails_for_an_unknown_widget_or_org(
    host_url: str, api: httpx.Client, service: App, case: str
) -> None:
    widget = widget_id()
    if case == "another org id":
        put_widget(api, widget)
    org_id = OMNICHANNEL_ORG_ID if case == "unknown widget" else str(uuid.uuid4())

    result = run_sdk(case, host_url, widget, org_id=org_id)

    assert result["initialized"] is False
    assert result["error"]["message"] == "ChatConfigRetrievalFailure"


# --- the routes themselves ------------------------------------------------------------------


def test_the_routes_are_404_while_the_org_id_is_unset(
    api: httpx.Client, service: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = widget_id()
    put_widget(api, widget)
    assert api.get(f"/livechatconnector/config/{OMNICHANNEL_ORG_ID}/{widget}").status_code == 200
    unset = replace(get_settings(), omnichannel_org_id=None)
    monkeypatch.setattr(omnichannel, "get_settings", lambda: unset)

    for path in (
        f"/livechatconnector/config/{OMNICHANNEL_ORG_ID}/{widget}",
        f"/livechatconnector/reconnect/{OMNICHANNEL_ORG_ID}/{widget}/x",
        f"/livechatconnector/auth/reconnectablechats/{OMNICHANNEL_ORG_ID}/{widget}/r1",
    ):
        answer = api.get(path, headers={"AuthenticatedUserToken": "x"})
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


def test_cors_allows_the_sdk_headers_from_the_widgets_portal_origin_only(
    api: httpx.Client, service: App
) -> None:
    widget = widget_id()
    put_widget(api, widget)
    path = f"/livechatconnector/auth/reconnectablechats/{OMNICHANNEL_ORG_ID}/{widget}/r1"
    asked = "authenticatedusertoken,authcodenonce,ms-oc-user-agent,x-ms-client-request-id"

    portal = api.options(
        path,
        headers={
            "Origin": "https://portal.example.com",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": asked,
        },
    )
    stranger = api.options(path, headers={"Origin": "https://evil.example.net"})
    answer = api.get(
        f"/livechatconnector/config/{OMNICHANNEL_ORG_ID}/{widget}",
        headers={"Origin": "https://portal.example.com"},
    )

    assert portal.status_code == 204
    assert portal.headers["access-control-allow-origin"] == "https://portal.example.com"
    allowed = {
        name.strip().lower() for name in portal.headers["access-control-allow-headers"].split(",")
    }
    assert set(asked.split(",")) | {"oc-sessionid", "content-type"} <= allowed
    assert "access-control-allow-origin" not in stranger.headers
    assert answer.headers["access-control-allow-origin"] == "https://portal.example.com"
