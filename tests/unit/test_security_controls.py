"""Security controls of docs/security.md that need no storage: link forgery, route auth
levels, response headers and the answer to a bug."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime

import azure.functions as func
import pytest

import function_app  # noqa: F401  (registers every blueprint, so OPERATIONS is complete)
from shared.api.http import OPERATIONS, json_response, no_content
from shared.api.problems import internal_error_response, problem_response
from shared.api.schemas import HealthView
from shared.domain import errors
from shared.domain.conversation import Conversation, State
from shared.domain.links import MAC_LENGTH, LinkSigner, parse_reconnect_id

KEY = b"unit-test-signing-key-0123456789abcdef"
OTHER_KEY = b"another-signing-key-0123456789abcdef!!"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECURITY_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def conversation(
    widget_id: str = "w", conversation_id: str = "c-1", epoch: int = 0
) -> Conversation:
    return Conversation(
        conversation_id=conversation_id,
        widget_id=widget_id,
        state=State.ACTIVE,
        agent_id="agent-1",
        customer_key=None,
        customer_connected=False,
        disconnected_at=NOW,
        reconnect_deadline=NOW,
        end_reason=None,
        wrap_up_at=None,
        link_epoch=epoch,
        created_at=NOW,
        updated_at=NOW,
    )


def verifies(signer: LinkSigner, reconnect_id: str, target: Conversation) -> bool:
    parsed = parse_reconnect_id(reconnect_id)
    return parsed is not None and signer.verify(parsed, target)


# --- reconnect links: unguessable, bound to widget, conversation, epoch and key ---------------


def test_a_link_carries_192_bits_of_mac_in_url_safe_characters() -> None:
    reconnect_id = LinkSigner(KEY).reconnect_id(conversation())
    parsed = parse_reconnect_id(reconnect_id)
    assert parsed is not None
    assert MAC_LENGTH * 6 >= 192
    assert len(parsed.mac) == MAC_LENGTH
    assert set(reconnect_id) <= set(string.ascii_letters + string.digits + "-_.")


def test_every_single_character_change_of_the_mac_is_refused() -> None:
    signer = LinkSigner(KEY)
    target = conversation()
    reconnect_id = signer.reconnect_id(target)
    assert verifies(signer, reconnect_id, target)
    mac_start = len(reconnect_id) - MAC_LENGTH
    for position in range(mac_start, len(reconnect_id)):
        original = reconnect_id[position]
        replacement = "A" if original != "A" else "B"
        forged = reconnect_id[:position] + replacement + reconnect_id[position + 1 :]
        assert not verifies(signer, forged, target), position


@pytest.mark.parametrize(
    ("label", "target"),
    [
        ("another widget", conversation(widget_id="w2")),
        ("another conversation", conversation(conversation_id="c-2")),
        ("a revoked epoch", conversation(epoch=1)),
    ],
)
def test_a_link_opens_only_its_own_widget_conversation_and_epoch(
    label: str, target: Conversation
) -> None:
    signer = LinkSigner(KEY)
    reconnect_id = signer.reconnect_id(conversation())
    assert not verifies(signer, reconnect_id, target), label


def test_a_link_made_with_another_key_is_refused_even_with_our_key_id() -> None:
    ours, theirs = LinkSigner(KEY), LinkSigner(OTHER_KEY)
    target = conversation()
    foreign = theirs.reconnect_id(target)
    assert not verifies(ours, foreign, target)
    # Their MAC under our key id: the key id only picks the key, it proves nothing.
    our_id = ours.reconnect_id(target)
    parsed_ours, parsed_foreign = parse_reconnect_id(our_id), parse_reconnect_id(foreign)
    assert parsed_ours is not None
    assert parsed_foreign is not None
    spliced = f"c-1.0.{parsed_ours.kid}{parsed_foreign.mac}"
    assert not verifies(ours, spliced, target)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        ".",
        "c-1",
        "c-1.0.",
        "c-1.0." + "A" * 37,
        "c-1.x." + "A" * 38,
        "../../etc/passwd",
        "x" * 10_000,
    ],
)
def test_malformed_links_are_refused_before_any_work(garbage: str) -> None:
    assert parse_reconnect_id(garbage) is None


# --- function keys: which routes are anonymous ------------------------------------------------

ANONYMOUS_ROUTES = {
    ("GET", "health"),
    ("GET", "openapi.json"),
    ("GET", "events.schema.json"),
    ("GET", "widgets/{widgetId}/reconnect/{reconnectId}"),
    ("POST", "widgets/{widgetId}/reconnect/{reconnectId}"),
    ("POST", "widgets/{widgetId}/reconnect/{reconnectId}/decline"),
    ("GET", "widgets/{widgetId}/reconnectable"),
    # Omnichannel's chat SDK (contract §6): the same use cases as the widget's routes.
    ("GET", "livechatconnector/config/{orgId}/{widgetId}"),
    ("OPTIONS", "livechatconnector/config/{orgId}/{widgetId}"),
    ("GET", "livechatconnector/reconnect/{orgId}/{widgetId}/{reconnectId}"),
    ("OPTIONS", "livechatconnector/reconnect/{orgId}/{widgetId}/{reconnectId}"),
    ("GET", "livechatconnector/auth/reconnectablechats/{orgId}/{widgetId}/{requestId}"),
    ("OPTIONS", "livechatconnector/auth/reconnectablechats/{orgId}/{widgetId}/{requestId}"),
}


def test_only_the_widget_health_and_document_routes_are_anonymous() -> None:
    anonymous = {
        (op.method, op.route) for op in OPERATIONS if op.auth_level == func.AuthLevel.ANONYMOUS
    }
    assert anonymous == ANONYMOUS_ROUTES


def test_every_platform_and_admin_route_needs_a_function_key() -> None:
    keyed = [op for op in OPERATIONS if (op.method, op.route) not in ANONYMOUS_ROUTES]
    routes = {op.route.split("/")[0] for op in keyed}
    assert routes == {"conversations", "agents", "manage"}
    assert all(op.auth_level == func.AuthLevel.FUNCTION for op in keyed)


# --- response headers -------------------------------------------------------------------------


def headers_of(response: func.HttpResponse) -> dict[str, str]:
    return {key.lower(): value for key, value in response.headers.items()}


def assert_security_headers(response: func.HttpResponse) -> dict[str, str]:
    headers = headers_of(response)
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (response.status_code, headers)
    return headers


def test_json_answers_are_not_cached_or_sniffed_and_keep_their_own_headers() -> None:
    headers = assert_security_headers(json_response(HealthView(status="ok"), 200, {"ETag": "e1"}))
    assert headers["etag"] == "e1"
    assert_security_headers(no_content())


@pytest.mark.parametrize(
    ("error", "extra_header"),
    [
        (errors.StorageUnavailable("down"), "retry-after"),
        (errors.InvalidCustomerToken("no token"), "www-authenticate"),
        (errors.LinkUnavailable(None), None),
        (errors.InvalidInput((errors.FieldProblem("x", "bad"),)), None),
    ],
)
def test_problems_are_not_cached_or_sniffed_and_keep_their_own_headers(
    error: errors.ChatReconnectError, extra_header: str | None
) -> None:
    headers = assert_security_headers(problem_response(error))
    if extra_header is not None:
        assert extra_header in headers


def test_the_answer_to_a_bug_is_generic_and_not_cached() -> None:
    response = internal_error_response()
    assert response.status_code == 500
    assert_security_headers(response)
    body = json.loads(response.get_body())
    assert body["detail"] == "An unexpected error occurred."


# --- signing-key rotation: the previous key keeps working, and only until it is dropped -------


def test_links_and_customer_hashes_of_the_previous_key_work_until_it_is_dropped() -> None:
    target = conversation()
    old_link = LinkSigner(OTHER_KEY).reconnect_id(target)
    old_hash = LinkSigner(OTHER_KEY).customer_key("w", "alice")
    rotating = LinkSigner(KEY, previous_key=OTHER_KEY)
    assert verifies(rotating, old_link, target)
    assert old_hash in rotating.customer_keys("w", "alice")
    # New links and hashes use the new key only.
    assert rotating.reconnect_id(target) == LinkSigner(KEY).reconnect_id(target)
    assert rotating.customer_key("w", "alice") != old_hash
    rotated = LinkSigner(KEY)
    assert not verifies(rotated, old_link, target)
    assert old_hash not in rotated.customer_keys("w", "alice")
