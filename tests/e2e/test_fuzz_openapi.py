"""Fuzzing every operation of the served OpenAPI document with schemathesis (issue 8, item 1).

The local host serves a fresh FunctionApp built from the same blueprints as
function_app.py, in this process, so the test installs its own service (on fresh tables,
with a FakeClock) before each operation is fuzzed. The document is read from the host's
`/api/openapi.json`, exactly as a client would read it.

Each operation gets a bounded, derandomized run (MAX_EXAMPLES cases, half of them
schema-valid, half deliberately invalid), so a failure reproduces on every run and the
whole fuzz stays within a couple of minutes. Every answer must:
- not be a 5xx (storage is up: 503 would be a bug too),
- have a documented status code and content type, and match the documented schema,
- when it is a 4xx, be an RFC 9457 `application/problem+json` with `type`, `title`,
  `status` and `detail`, `status` equal to the HTTP status.

Generated ids rarely name anything that exists, so a case's path ids, body `widgetId`
and bearer token are sometimes swapped for seeded ones (a reconnect-enabled widget,
an authenticated widget, conversations in several states, their live links and a
valid customer token): that is how the fuzz reaches the deeper paths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import jwt
import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from schemathesis import DataGenerationMethod
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.app import build_app
from local.azurite import Azurite
from local.server import serve_in_thread
from shared.api.http import OPERATIONS
from shared.wiring import set_service
from tests.conftest import OMNICHANNEL_ORG_ID, FakeClock, fresh_function_app, make_service

# Per operation; half positive, half negative. 17 operations x 40 stays well under two
# minutes on two cores against Azurite.
MAX_EXAMPLES = 40
PROBLEM = "application/problem+json"
# Building the app imports every blueprint, which is what fills OPERATIONS.
OPERATION_IDS = sorted(
    {operation.name for operation in OPERATIONS}
    | {function.get_function_name() for function in fresh_function_app().get_functions()}
    - {"enforce_time_limits", "relay_events"}  # the timer and the event relay: no HTTP
)

ISSUER = "https://login.contoso.example/"
PORTAL = "https://contoso.example/chat?lang=en"
CUSTOMER = "customer-1"
WIDGETS = ("demo", "secure", "plain")
AGENTS = ("agent-1", "agent-2")

# The 3.1 document uses JSON Schema 2020-12 (`"type": "null"`); schemathesis 3.x only
# validates responses against it with this switched on.
schemathesis.experimental.OPEN_API_3_1.enable()


def problem_details_on_4xx(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """Every 4xx is a problem+json with type, title, status, detail; status matches."""
    if not 400 <= response.status_code < 500:
        return
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type == PROBLEM, f"4xx answered as {media_type!r}, not {PROBLEM}"
    body = response.json()
    assert isinstance(body, dict), "the problem is not a JSON object"
    missing = [name for name in ("type", "title", "status", "detail") if name not in body]
    assert not missing, f"the problem lacks {missing}"
    assert (
        body["status"] == response.status_code
    ), f"problem status {body['status']} != HTTP status {response.status_code}"
    assert all(isinstance(body[name], str) for name in ("type", "title", "detail"))


CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_details_on_4xx,
)


@dataclass(frozen=True)
class Seeded:
    """What exists before an operation is fuzzed: ids that reach past the 404s."""

    conversations: tuple[str, ...]
    reconnect_ids: tuple[str, ...]
    authorization: str


@pytest.fixture(scope="module")
def fuzz_url() -> Iterator[str]:
    """A local host of its own (the session host belongs to the other e2e tests)."""
    environ = {"RECONNECT_ENFORCE_SCHEDULE": "0 0 0 1 1 *"}  # the timer never fires here
    with serve_in_thread(build_app(fresh_function_app(), environ)) as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_url: str) -> schemathesis.BaseSchema:
    """The OpenAPI document as the host serves it."""
    document = httpx.get(fuzz_url + "/api/openapi.json", timeout=30).raise_for_status().json()
    return schemathesis.from_dict(document, base_url=fuzz_url, validate_schema=True)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(key: rsa.RSAPrivateKey, subject: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": subject, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def _link_id(api: httpx.Client, conversation_id: str) -> str:
    url = api.get(f"/conversations/{conversation_id}").json()["reconnectUrl"]
    return parse_qs(urlsplit(url).query)["oc.reconnectid"][0]


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.is_success, response.text
    return response.json()


def seed(api: httpx.Client, key: rsa.RSAPrivateKey) -> Seeded:
    """Widgets of each kind and conversations in several states, through the API."""
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    enabled = {"reconnectEnabled": True, "timeLimitMinutes": 10, "portalUrl": PORTAL}
    _ok(api.put("/manage/widgets/demo", json={**enabled, "redirectUrl": "https://x.example/"}))
    _ok(
        api.put(
            "/manage/widgets/secure",
            json={
                **enabled,
                "authentication": {"issuer": ISSUER, "publicKeys": [{"kid": "k1", "pem": pem}]},
            },
        )
    )
    _ok(api.put("/manage/widgets/plain", json={}))
    registrations = {
        "c-active": {"widgetId": "demo", "agentId": "agent-1"},
        "c-away": {"widgetId": "demo", "agentId": "agent-1"},
        "c-queued": {"widgetId": "demo"},
        "c-ended": {"widgetId": "demo", "agentId": "agent-2"},
        "c-secure": {"widgetId": "secure", "agentId": "agent-2", "customerId": CUSTOMER},
        "c-plain": {"widgetId": "plain", "agentId": "agent-2"},
    }
    for conversation_id, body in registrations.items():
        _ok(api.put(f"/conversations/{conversation_id}", json=body))
    for conversation_id, event in (
        ("c-away", "customer_disconnected"),
        ("c-secure", "customer_disconnected"),
        ("c-ended", "agent_ended"),
    ):
        _ok(api.post(f"/conversations/{conversation_id}/events", json={"type": event}))
    linked = ("c-active", "c-away", "c-queued", "c-secure")
    return Seeded(
        conversations=tuple(registrations),
        reconnect_ids=tuple(_link_id(api, conversation_id) for conversation_id in linked),
        authorization="Bearer " + _token(key, CUSTOMER),
    )


@pytest.fixture
def seeded(azurite: Azurite, fuzz_url: str, signing_key: rsa.RSAPrivateKey) -> Iterator[Seeded]:
    """A service on fresh tables installed for the host, with the seed data in it."""
    service = make_service(azurite.connection_string, FakeClock())
    set_service(service)
    try:
        with httpx.Client(base_url=fuzz_url + "/api", timeout=30) as api:
            yield seed(api, signing_key)
    finally:
        set_service(None)


# RFC 9110 field names and values, as uvicorn's parser (h11) accepts them.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(
    r"(?:[\x21-\x7e\x80-\xff](?:[ \t\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)


def sendable(case: schemathesis.Case) -> bool:
    """Whether the request reaches the function at all.

    Two kinds of generated request never do, here or in Azure: a header that is not
    valid HTTP (the server's parser answers 400 text/plain itself), and a path id
    holding `/` or a line break (the router finds no function: a 404 that is not ours).
    """
    for name, value in (case.headers or {}).items():
        if not _FIELD_NAME.fullmatch(str(name)):
            return False
        text = str(value).strip(" \t")
        if not _FIELD_VALUE.fullmatch(text):
            return False
    # Path parameters arrive URL-quoted; the server unquotes them before routing.
    return all(
        isinstance(value, str) and value and not set(unquote(value)) & {"/", "\n", "\r"}
        for value in (case.path_parameters or {}).values()
    )


def known_values(seeded: Seeded) -> dict[str, tuple[str, ...]]:
    return {
        "widgetId": WIDGETS,
        "agentId": AGENTS,
        "conversationId": seeded.conversations,
        "reconnectId": seeded.reconnect_ids,
        "orgId": (OMNICHANNEL_ORG_ID,),
    }


def happy_cases(seeded: Seeded) -> dict[str, dict[str, Any]]:
    """One request per operation that must succeed on the seed data (`make_case` arguments)."""
    away_link, queued_link = seeded.reconnect_ids[1], seeded.reconnect_ids[2]
    return {
        "health": {},
        "openapi": {},
        "events_schema": {},
        "manage_list_widgets": {"query": {"top": 2}},
        "manage_get_widget": {"path_parameters": {"widgetId": "demo"}},
        "manage_put_widget": {
            "path_parameters": {"widgetId": "demo"},
            "body": {"reconnectEnabled": True, "portalUrl": PORTAL, "redirectUrl": ""},
            "media_type": "application/json",
        },
        "manage_patch_widget": {
            "path_parameters": {"widgetId": "demo"},
            "body": {"timeLimitMinutes": 5, "redirectUrl": None},
            "media_type": "application/merge-patch+json",
        },
        "manage_delete_widget": {"path_parameters": {"widgetId": "plain"}},
        "register_conversation": {
            "path_parameters": {"conversationId": "c-new"},
            "body": {"widgetId": "secure", "agentId": "agent-1", "customerId": CUSTOMER},
            "media_type": "application/json",
        },
        "get_conversation": {"path_parameters": {"conversationId": "c-away"}},
        "conversation_event": {
            "path_parameters": {"conversationId": "c-active"},
            "body": {"type": "customer_disconnected", "eventId": "e-1"},
            "media_type": "application/json",
        },
        "quick_reply": {
            "path_parameters": {"conversationId": "c-away"},
            "body": {"text": "Come back here: {ReconnectUrl{ReconnectID}}"},
            "media_type": "application/json",
        },
        "revoke_reconnect_link": {"path_parameters": {"conversationId": "c-away"}},
        "agent_capacity": {"path_parameters": {"agentId": "agent-1"}},
        "reconnect_context": {"path_parameters": {"widgetId": "demo", "reconnectId": away_link}},
        "reconnect_continue": {"path_parameters": {"widgetId": "demo", "reconnectId": away_link}},
        "reconnect_decline": {"path_parameters": {"widgetId": "demo", "reconnectId": queued_link}},
        "reconnectable": {
            "path_parameters": {"widgetId": "secure"},
            "headers": {"Authorization": seeded.authorization},
        },
        **omnichannel_happy_cases(seeded),
    }


def omnichannel_happy_cases(seeded: Seeded) -> dict[str, dict[str, Any]]:
    """The Omnichannel chat SDK's routes (and their CORS preflights) on the seed data."""
    org = {"orgId": OMNICHANNEL_ORG_ID}
    user_token = {"AuthenticatedUserToken": seeded.authorization.removeprefix("Bearer ")}
    chats = {"path_parameters": {**org, "widgetId": "secure", "requestId": "r-1"}}
    link = {"path_parameters": {**org, "widgetId": "demo", "reconnectId": seeded.reconnect_ids[1]}}
    config = {"path_parameters": {**org, "widgetId": "secure"}}
    return {
        "omnichannel_live_chat_config": config,
        "omnichannel_live_chat_config_preflight": config,
        "omnichannel_reconnect_availability": link,
        "omnichannel_reconnect_availability_preflight": link,
        "omnichannel_reconnectable_chats": {**chats, "headers": user_token},
        "omnichannel_reconnectable_chats_preflight": chats,
    }


def test_every_operation_is_fuzzed(fuzz_schema: schemathesis.BaseSchema) -> None:
    """The parametrization below covers exactly the operations the host documents."""
    served = {
        result.ok().definition.raw["operationId"] for result in fuzz_schema.get_all_operations()
    }
    assert served == set(OPERATION_IDS)
    assert set(happy_cases(Seeded((), ("", "", ""), ""))) == served


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,  # the same cases on every run: a failure reproduces
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_fuzz_operation(
    operation_id: str,
    fuzz_schema: schemathesis.BaseSchema,
    seeded: Seeded,
    record_property: Callable[[str, object], None],
) -> None:
    """A seeded request that must succeed, then valid and invalid generated requests."""
    operation = fuzz_schema.get_operation_by_id(operation_id)
    pools = known_values(seeded)
    security = operation.definition.raw.get("security") or []
    bearer = security == [{}, {"customerToken": []}]
    user_token = {"authenticatedUserToken": []} in security

    # Requests sent and 5xx seen, printed per operation (run with -s to read them).
    counts = {"requests": 0, "5xx": 0}

    def call(case: schemathesis.Case, session: requests.Session) -> requests.Response:
        response = case.call(session=session, timeout=30)
        counts["requests"] += 1
        counts["5xx"] += response.status_code >= 500
        return response

    with requests.Session() as session:
        happy = operation.make_case(**happy_cases(seeded)[operation_id])
        response = call(happy, session)
        assert response.ok, response.text
        happy.validate_response(response, checks=CHECKS)

        def run(cases: st.SearchStrategy[schemathesis.Case], max_examples: int) -> None:
            @_settings(max_examples)
            @given(data=st.data())
            def fuzz(data: st.DataObject) -> None:
                case = data.draw(cases, label="case")
                # Now and then an id that exists, so the fuzz gets past "not found".
                for name in list(case.path_parameters or {}):
                    if name in pools:
                        known = data.draw(st.sampled_from((None, *pools[name])), label=name)
                        case.path_parameters[name] = known or case.path_parameters[name]
                if isinstance(case.body, dict) and "widgetId" in case.body:
                    known = data.draw(st.sampled_from((None, *WIDGETS)), label="body widgetId")
                    case.body["widgetId"] = known or case.body["widgetId"]
                if bearer and data.draw(st.booleans(), label="customer token"):
                    case.headers = {**(case.headers or {}), "Authorization": seeded.authorization}
                if user_token and data.draw(st.booleans(), label="AuthenticatedUserToken"):
                    token = seeded.authorization.removeprefix("Bearer ")
                    case.headers = {**(case.headers or {}), "AuthenticatedUserToken": token}
                assume(sendable(case))
                response = call(case, session)
                case.validate_response(response, checks=CHECKS)

            fuzz()

        positive = operation.as_strategy(data_generation_method=DataGenerationMethod.positive)
        run(positive, MAX_EXAMPLES // 2)
        if any((operation.path_parameters, operation.query, operation.headers, operation.body)):
            negative = operation.as_strategy(data_generation_method=DataGenerationMethod.negative)
            run(negative, MAX_EXAMPLES // 2)
    record_property("schemathesis_requests", counts["requests"])
    print(f"schemathesis {operation_id}: {counts['requests']} requests, {counts['5xx']} 5xx")
