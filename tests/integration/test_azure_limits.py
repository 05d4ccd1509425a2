"""Azure's storage limits, not Azurite's (contract §3 "Limits").

Every entity the app stores is built here from the largest input the API accepts, through
the real path (HTTP, schema validation, entity mapping, Azurite), read back raw and checked
against Azure Table storage's documented limits with a size calculator written from Azure's
formula ("Understanding the Table service data model"): 4 bytes + 2 bytes a key character
+ per property 8 bytes + 2 bytes a name character + the value (a string 2 bytes a UTF-16
unit + 4). Azurite checks some of these and not others; this does not depend on it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.api.problems import problem_for
from shared.domain.conversation import Conversation, State
from shared.domain.errors import StorageRefused, TooLargeToStore
from shared.domain.events import CHANGE_ID_MEMORY
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.storage.tables import TABLE_NAMES, refusal
from tests.conftest import START
from tests.keys import public_pem

KIB = 1024
MAX_STRING_BYTES = 64 * KIB
MAX_BINARY_BYTES = 64 * KIB
MAX_ENTITY_BYTES = 1024 * KIB
MAX_KEY_BYTES = 1 * KIB
MAX_CUSTOM_PROPERTIES = 252  # 255 with PartitionKey, RowKey and Timestamp
MAX_NAME_CHARACTERS = 255
FORBIDDEN_IN_KEYS = set("/\\#?") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}

EMOJI = "\U0001f600"  # outside the BMP: two UTF-16 units, four UTF-8 bytes
SLUG = "{ReconnectUrl{ReconnectID}}"


@pytest.fixture(scope="module")
def pem(key1: rsa.RSAPrivateKey) -> str:
    return public_pem(key1)


# --- Azure's size formula -------------------------------------------------------------------


def utf16_bytes(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass"))


def value_bytes(value: Any) -> int:
    """Sizeof(.Net property type) of Azure's formula."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return 4 if -(2**31) <= value < 2**31 else 8
    if isinstance(value, float | datetime):
        return 8
    if isinstance(value, str):
        return utf16_bytes(value) + 4
    if isinstance(value, bytes):
        return len(value) + 4
    raise AssertionError(f"a property type the calculator does not know: {type(value)}")


def entity_bytes(entity: dict[str, Any]) -> int:
    size = 4 + utf16_bytes(entity["PartitionKey"]) + utf16_bytes(entity["RowKey"])
    for name, value in entity.items():
        if name not in ("PartitionKey", "RowKey"):
            size += 8 + utf16_bytes(name) + value_bytes(value)
    return size


def azure_refusals(entity: dict[str, Any]) -> list[str]:
    """Why Azure would refuse this entity (empty when it fits every limit)."""
    found = []
    for key in ("PartitionKey", "RowKey"):
        if utf16_bytes(entity[key]) > MAX_KEY_BYTES:
            found.append(f"{key} is {utf16_bytes(entity[key])} bytes")
        if FORBIDDEN_IN_KEYS & set(entity[key]):
            found.append(f"{key} holds a character keys may not hold")
    custom = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}
    if len(custom) > MAX_CUSTOM_PROPERTIES:
        found.append(f"{len(custom)} properties")
    for name, value in custom.items():
        if len(name) > MAX_NAME_CHARACTERS:
            found.append(f"property name {name[:20]}... is too long")
        if isinstance(value, str) and utf16_bytes(value) > MAX_STRING_BYTES:
            found.append(f"{name} is {utf16_bytes(value)} bytes")
        if isinstance(value, bytes) and len(value) > MAX_BINARY_BYTES:
            found.append(f"{name} is {len(value)} bytes")
    if entity_bytes(entity) > MAX_ENTITY_BYTES:
        found.append(f"the entity is {entity_bytes(entity)} bytes")
    return found


def test_the_calculator_follows_azures_worked_example() -> None:
    # 4 + keys + one string property: 8 + 2 * len("Name") + 2 * len("héllo") + 4
    entity = {"PartitionKey": "pk", "RowKey": "rk", "Name": "héllo", "Flag": True}
    assert entity_bytes(entity) == 4 + 8 + (8 + 8 + 10 + 4) + (8 + 8 + 1)
    assert utf16_bytes(EMOJI) == 4
    assert azure_refusals({"PartitionKey": "a", "RowKey": "b", "x": "y" * 32769}) != []
    assert azure_refusals({"PartitionKey": "a", "RowKey": "b", "x": "y" * 32768}) == []


def stored_entities(service: App) -> dict[str, list[dict[str, Any]]]:
    """Every entity of every table, read back raw from Azurite."""
    return {
        name: [dict(entity) for entity in service.store._table(name).list_entities()]
        for name in TABLE_NAMES
    }


def assert_every_entity_fits(service: App) -> dict[str, list[dict[str, Any]]]:
    entities = stored_entities(service)
    for table, rows in entities.items():
        for entity in rows:
            assert azure_refusals(entity) == [], (table, entity["PartitionKey"][:40])
    return entities


# --- requests as a platform sends them (UTF-8, not \\u-escaped) -------------------------------


def send_json(api: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    content = json.dumps(body, ensure_ascii=False).encode("utf-8")
    assert len(content) <= 64 * KIB, len(content)
    return api.request(method, path, content=content, headers={"content-type": "application/json"})


def worst_event_id(number: int) -> str:
    """A distinct eventId of MAX_EVENT_ID_LENGTH characters, each as costly as any can be
    as stored: a non-BMP character (2 units) or a character JSON escapes (`"`, `\\`)."""
    bits = "".join('"' if bit == "0" else "\\" for bit in f"{number:08b}")
    return EMOJI * 120 + bits


# --- widget settings --------------------------------------------------------------------------


def authentication_units(authentication: dict[str, Any]) -> int:
    """The UTF-16 units of `authentication` as the widget entity holds it (compact JSON)."""
    text = json.dumps(
        {
            "issuer": authentication["issuer"],
            "audience": authentication.get("audience"),
            "publicKeys": authentication["publicKeys"],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return utf16_bytes(text) // 2


def worst_authentication(pem: str, units: int) -> dict[str, Any]:
    """Ten keys, every name at its length limit in 2-unit characters, and PEMs padded with
    text before `-----BEGIN` (which loads) so that the stored form takes exactly `units`."""
    keys = [{"kid": f"{n}" + EMOJI * 127, "pem": pem} for n in range(10)]
    authentication = {"issuer": EMOJI * 2048, "audience": EMOJI * 2048, "publicKeys": keys}
    missing = units - authentication_units(authentication)
    assert missing >= 20
    for index, key in enumerate(keys):
        pad = missing // 10 + (1 if index < missing % 10 else 0)
        key["pem"] = "x" * (pad - 2) + "\n" + pem  # "\n" is stored as two characters
    assert authentication_units(authentication) == units
    return authentication


def worst_widget(pem: str, units: int) -> dict[str, Any]:
    url = "https://contoso.example/"
    return {
        "widgetId": "W" * 128,
        "reconnectEnabled": True,
        "timeLimitMinutes": 1440,
        "portalUrl": url + EMOJI * (2048 - len(url)),
        "redirectUrl": url + EMOJI * (2048 - len(url)),
        "authentication": worst_authentication(pem, units),
    }


def test_the_largest_widget_settings_accepted_fit_azure(
    api: httpx.Client, service: App, pem: str
) -> None:
    body = worst_widget(pem, 32 * KIB)
    answer = send_json(api, "PUT", f"/manage/widgets/{body['widgetId']}", body)
    assert answer.status_code == 201, answer.text[:500]
    (entity,) = assert_every_entity_fits(service)["widgets"]
    assert utf16_bytes(entity["authentication"]) == MAX_STRING_BYTES
    assert (
        api.get(f"/manage/widgets/{body['widgetId']}").json()["authentication"]
        == (body["authentication"])
    )


def test_authentication_one_unit_over_what_a_property_holds_is_413_naming_it(
    api: httpx.Client, service: App, pem: str
) -> None:
    body = worst_widget(pem, 32 * KIB + 1)
    answer = send_json(api, "PUT", f"/manage/widgets/{body['widgetId']}", body)
    assert answer.status_code == 413, answer.text[:500]
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in answer.json()["errors"]] == ["authentication"]
    assert stored_entities(service)["widgets"] == []


def test_a_non_ascii_issuer_with_ten_keys_is_stored(api: httpx.Client, pem: str) -> None:
    """The issue's case: ~16 KB of valid settings whose ASCII-escaped JSON overflowed."""
    keys = [{"kid": f"key-{n}", "pem": pem} for n in range(10)]
    authentication = {"issuer": EMOJI * 2048, "audience": EMOJI * 300, "publicKeys": keys}
    body = {"reconnectEnabled": False, "authentication": authentication}
    answer = send_json(api, "PUT", "/manage/widgets/intl", body)
    assert answer.status_code == 201, answer.text[:500]
    assert api.get("/manage/widgets/intl").json()["authentication"] == authentication


# --- conversations and their index rows --------------------------------------------------------


def test_the_largest_conversation_and_its_index_rows_fit_azure(
    api: httpx.Client, service: App, pem: str
) -> None:
    """Longest ids, a customer, 64 remembered eventIds of the costliest characters, a full
    ring of change ids, every optional property set, and the due row's snapshot of all that."""
    widget_id, conversation_id, agent_id = "W" * 128, "C" * 128, "A" * 128
    body = worst_widget(pem, 32 * KIB)
    assert send_json(api, "PUT", f"/manage/widgets/{widget_id}", body).status_code == 201
    registration = {"widgetId": widget_id, "agentId": agent_id, "customerId": EMOJI * 256}
    assert send_json(api, "PUT", f"/conversations/{conversation_id}", registration).status_code == (
        201
    )
    events = f"/conversations/{conversation_id}/events"
    for number in range(64):
        event = {"type": "customer_reconnected", "eventId": worst_event_id(number)}
        assert send_json(api, "POST", events, event).status_code == 200, number
    # A full ring of change ids (each revoke is a stored change) on top.
    for _ in range(CHANGE_ID_MEMORY):
        revoke = f"/conversations/{conversation_id}/reconnect-link/revoke"
        assert api.post(revoke).status_code == 200
    # The due row's snapshot is taken with a full memory of eventIds.
    event = {"type": "customer_disconnected", "eventId": worst_event_id(64)}
    assert send_json(api, "POST", events, event).status_code == 200
    entities = assert_every_entity_fits(service)
    (conversation,) = entities["conversations"]
    assert len(json.loads(conversation["eventIds"])) == 64
    assert utf16_bytes(conversation["eventIds"]) // 2 == 16_577  # the figure in domain.py
    assert {"disconnectedAt", "reconnectDeadline", "disconnectedFrom"} <= set(conversation)
    assert len(json.loads(conversation["changeIds"])) == CHANGE_ID_MEMORY
    assert conversation["sequence"] == CHANGE_ID_MEMORY + 2
    (due,) = entities["due"]
    assert due["eventIds"] == conversation["eventIds"]
    assert due["changeIds"] == conversation["changeIds"]
    assert all(entities[table] for table in ("customers", "capacity", "enforcer"))
    # Into wrap_up: end reason and wrap-up time on top, and a new snapshot.
    event = {"type": "agent_ended", "eventId": worst_event_id(65)}
    assert send_json(api, "POST", events, event).status_code == 200
    entities = assert_every_entity_fits(service)
    assert {"wrapUpAt", "endReason"} <= set(entities["conversations"][0])
    service.timer.run()
    assert_every_entity_fits(service)


# --- the eventId memory (contract §2.2.1; README "Limits") ----------------------------------


@pytest.mark.parametrize(("later_events", "recognised"), [(63, True), (64, False)])
def test_a_retry_of_one_of_the_last_64_applied_event_ids_is_recognised(
    api: httpx.Client, later_events: int, recognised: bool
) -> None:
    """With eventIds as long and costly as allowed: a retry is recognised while fewer than
    64 other eventIds were applied after it, and judged again once 64 were."""
    assert send_json(api, "PUT", "/manage/widgets/w", {"reconnectEnabled": False}).status_code
    assert send_json(api, "PUT", "/conversations/c", {"widgetId": "w"}).status_code == 201
    first = {"type": "agent_assigned", "agentId": "a", "eventId": worst_event_id(0)}
    assert send_json(api, "POST", "/conversations/c/events", first).status_code == 200
    for number in range(1, later_events + 1):
        event = {"type": "customer_reconnected", "eventId": worst_event_id(number)}
        assert send_json(api, "POST", "/conversations/c/events", event).status_code == 200
    retry = send_json(api, "POST", "/conversations/c/events", first)
    # Judged again, agent_assigned does not apply to an active conversation.
    assert retry.status_code == (200 if recognised else 409), retry.text[:300]


@pytest.mark.parametrize("event_id", ["a\u0000b", "tab\there", "\u0085", "\ud800"])
def test_an_event_id_with_control_characters_or_a_lone_surrogate_is_422(
    api: httpx.Client, event_id: str
) -> None:
    assert send_json(api, "PUT", "/manage/widgets/w", {"reconnectEnabled": False}).status_code
    assert send_json(api, "PUT", "/conversations/c", {"widgetId": "w"}).status_code == 201
    raw = json.dumps({"type": "customer_reconnected", "eventId": event_id}).encode()
    answer = api.post(
        "/conversations/c/events", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == ["eventId"]


# --- the quick reply ----------------------------------------------------------------------------


def test_a_quick_reply_renders_to_at_most_32768_characters(api: httpx.Client) -> None:
    widget = {"reconnectEnabled": True, "portalUrl": "https://contoso.example/" + "p" * 2000}
    assert send_json(api, "PUT", "/manage/widgets/w", widget).status_code == 201
    assert send_json(api, "PUT", "/conversations/c", {"widgetId": "w"}).status_code == 201
    link = api.get("/conversations/c").json()["reconnectUrl"]
    exact = SLUG + "a" * (32768 - len(link))
    answer = send_json(api, "POST", "/conversations/c/quick-reply", {"text": exact})
    assert answer.status_code == 200
    assert len(answer.json()["text"]) == 32768
    for text in (exact + "a", SLUG * (32768 // len(SLUG))):
        answer = send_json(api, "POST", "/conversations/c/quick-reply", {"text": text})
        assert answer.status_code == 422, answer.text[:300]
        assert [error["field"] for error in answer.json()["errors"]] == ["text"]


# --- a refusal storage still makes ---------------------------------------------------------------


def conversation(conversation_id: str) -> Conversation:
    return Conversation(
        conversation_id=conversation_id,
        widget_id="w",
        state=State.OPEN,
        agent_id=None,
        customer_key=None,
        customer_connected=True,
        disconnected_at=None,
        reconnect_deadline=None,
        end_reason=None,
        wrap_up_at=None,
        link_epoch=0,
        created_at=START,
        updated_at=START,
    )


def test_a_value_storage_refuses_as_too_large_is_a_413_problem(service: App) -> None:
    # Past the schema (which allows 2048 characters), so that Azurite itself refuses it.
    widget = WidgetSettings(widget_id="w", portal_url="https://contoso.example/" + "p" * 40000)
    with pytest.raises(TooLargeToStore) as refused:
        service.store.insert_widget(widget)
    assert problem_for(refused.value)[0] == 413


def test_a_value_storage_refuses_as_invalid_is_a_422_problem(service: App) -> None:
    # "#" is not allowed in a key; the schema's id pattern keeps it out of every real key.
    with pytest.raises(StorageRefused) as refused:
        service.store.insert_conversation(conversation("a#b"))
    assert problem_for(refused.value)[0] == 422


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "PropertyValueTooLarge", TooLargeToStore),
        (400, "EntityTooLarge", TooLargeToStore),
        (400, "TooManyProperties", TooLargeToStore),
        (413, "RequestBodyTooLarge", TooLargeToStore),
        (400, "InvalidInput", StorageRefused),
        (409, "EntityAlreadyExists", type(None)),
        (503, "ServerBusy", type(None)),
    ],
)
def test_each_storage_refusal_code_has_its_application_error(
    status: int, code: str, expected: type
) -> None:
    error = HttpResponseError(message=code)
    error.status_code = status
    error.error_code = code
    assert isinstance(refusal(error), expected)
