"""The events' JSON Schema (contract §5): served beside the OpenAPI document, built from the
conversation's own view model, and strict enough to catch what an event must never be.

`tests/events.py` validates every event the other tests see against it; these tests show
that it accepts each kind of event the contract describes and refuses the wrong ones.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from jsonschema import Draft202012Validator

from shared.api.event_schema import EVENT_TYPE_PREFIX, EVENT_VIAS, event_schema
from shared.api.schemas import ConversationView
from tests.conftest import fresh_function_app
from tests.events import AFTER, InvalidEvent, validate_event
from tests.events import sample_event as example

ROOT = Path(__file__).resolve().parents[2]


def test_every_event_type_of_the_contract_has_an_example() -> None:
    assert set(AFTER) == set(EVENT_VIAS)
    assert set(EVENT_VIAS) == {
        *("registered", "agent_assigned", "customer_disconnected", "customer_reconnected"),
        *("customer_declined", "agent_ended", "customer_ended", "agent_closed"),
        *("reconnect_timeout", "auto_closed", "link_revoked"),
    }


@pytest.mark.parametrize("what", sorted(AFTER))
def test_each_kind_of_event_is_valid(what: str) -> None:
    validate_event(example(what))


def test_a_customer_reconnects_through_the_platform_or_the_widget() -> None:
    for via in ("platform", "widget"):
        event = example("customer_reconnected")
        event["data"]["via"] = via
        validate_event(event)


def test_optional_looking_members_are_null_not_absent() -> None:
    event = example("registered")
    assert event["data"]["agentId"] is None
    validate_event(event)
    del event["data"]["agentId"]
    with pytest.raises(InvalidEvent, match="'agentId' is a required property"):
        validate_event(event)


def with_change(what: str, path: str, value: Any) -> dict[str, Any]:
    """example(what) with the member at `path` (a/b) set to `value`, or removed for DELETE."""
    event = copy.deepcopy(example(what))
    *parents, last = path.split("/")
    node = event
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return event


DELETE = object()

INVALID: list[tuple[str, str, Any, str]] = [
    # `via` is decided by the type.
    ("reconnect_timeout", "data/via", "platform", "'timer' was expected"),
    ("auto_closed", "data/via", "widget", "'timer' was expected"),
    ("customer_declined", "data/via", "platform", "'widget' was expected"),
    ("registered", "data/via", "widget", "'platform' was expected"),
    ("link_revoked", "data/via", "timer", "'platform' was expected"),
    ("customer_reconnected", "data/via", "timer", "is not one of ['platform', 'widget']"),
    # `sequence`: ten digits, as a string; registration is the first.
    ("agent_assigned", "sequence", "4", "does not match"),
    ("agent_assigned", "sequence", "00000000004", "does not match"),
    ("agent_assigned", "sequence", "000000000x", "does not match"),
    ("agent_assigned", "sequence", 4, "is not of type 'string'"),
    ("registered", "sequence", "0000000002", "'0000000001' was expected"),
    # `previousState`: null exactly for the registration.
    ("registered", "data/previousState", "open", "is not of type 'null'"),
    ("agent_assigned", "data/previousState", None, "is not one of"),
    ("agent_assigned", "data/previousState", DELETE, "'previousState' is a required property"),
    # A reconnect link is a credential: never in an event.
    (
        "customer_disconnected",
        "data/reconnectUrl",
        "https://contoso.example/help?oc.reconnectid=x",
        "Additional properties are not allowed ('reconnectUrl' was unexpected)",
    ),
    ("agent_ended", "data/state", "paused", "is not one of"),
    ("agent_ended", "data/endReason", "tired", "is not one of"),
    ("agent_ended", "data/capacityReleased", 7, "data/capacityReleased: 7 is not valid"),
    # Times: UTC to the second with `Z`, and a real date.
    ("agent_ended", "time", "2026-11-25T12:04:31+00:00", "does not match"),
    ("agent_ended", "time", "2026-11-25T12:04:31.250Z", "does not match"),
    ("agent_ended", "time", "2026-11-25 12:04:31Z", "is not a 'date-time'"),
    ("agent_ended", "time", "2026-02-30T12:04:31Z", "is not a 'date-time'"),
    ("agent_ended", "data/createdAt", "yesterday", "data/createdAt: 'yesterday' is not a"),
    ("agent_ended", "data/disconnectedAt", "2026-13-01T00:00:00Z", "is not a 'date-time'"),
    # The envelope.
    ("agent_ended", "specversion", "0.3", "'1.0' was expected"),
    ("agent_ended", "datacontenttype", "text/plain", "'application/json' was expected"),
    ("agent_ended", "id", "short", "does not match"),
    ("agent_ended", "id", "kD3v9Qx0TlWm1b7ZpA+/cQ", "does not match"),
    ("agent_ended", "source", "", "should be non-empty"),
    ("agent_ended", "subject", "conversation/conv-42", "does not match"),
    ("agent_ended", "traceparent", "00-abc", "('traceparent' was unexpected)"),
    ("agent_ended", "data", DELETE, "'data' is a required property"),
    ("agent_ended", "type", EVENT_TYPE_PREFIX + "exploded", "known types: agent_assigned"),
    ("agent_ended", "type", DELETE, "known types:"),
    # What JSON Schema cannot say: one conversation, one moment.
    ("agent_ended", "subject", "conversations/conv-43", "is not conversations/conv-42"),
    ("agent_ended", "time", "2026-11-25T12:04:32Z", "is not data.updatedAt"),
]


@pytest.mark.parametrize(
    ("what", "path", "value", "message"),
    INVALID,
    ids=[f"{what}:{path}={value!r}"[:60] for what, path, value, _ in INVALID],
)
def test_a_wrong_event_is_refused_with_the_reason(
    what: str, path: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidEvent) as refused:
        validate_event(with_change(what, path, value))
    assert message in str(refused.value)


def test_the_data_is_the_conversation_view_without_the_link_plus_three_members() -> None:
    schema = event_schema()
    # The wire names as the model itself answers (its fields' aliases exist once it is built:
    # contract models build on first use).
    wire = set(ConversationView.model_json_schema(by_alias=True)["properties"])
    assert "reconnectUrl" in wire
    for what in EVENT_VIAS:
        data = schema["$defs"][f"{''.join(p.capitalize() for p in what.split('_'))}Data"]
        expected = wire - {"reconnectUrl"} | {"previousState", "via", "capacityReleased"}
        assert set(data["properties"]) == expected, what
        assert set(data["required"]) == expected, what
        assert data["additionalProperties"] is False


def test_each_type_allows_exactly_its_vias() -> None:
    schema = event_schema()
    allowed: dict[str, set[str]] = {}
    for option in schema["oneOf"]:
        event = schema["$defs"][option["$ref"].removeprefix("#/$defs/")]
        what = event["properties"]["type"]["const"].removeprefix(EVENT_TYPE_PREFIX)
        via = schema["$defs"][event["properties"]["data"]["$ref"].removeprefix("#/$defs/")][
            "properties"
        ]["via"]
        allowed[what] = set(via["enum"]) if "enum" in via else {via["const"]}
    assert allowed == {
        "registered": {"platform"},
        "agent_assigned": {"platform"},
        "customer_disconnected": {"platform"},
        "customer_reconnected": {"platform", "widget"},
        "agent_ended": {"platform"},
        "customer_ended": {"platform"},
        "agent_closed": {"platform"},
        "customer_declined": {"widget"},
        "link_revoked": {"platform"},
        "reconnect_timeout": {"timer"},
        "auto_closed": {"timer"},
    }


def test_the_schema_is_a_valid_draft_2020_12_document() -> None:
    schema = event_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert "discriminator" not in json.dumps(schema)  # OpenAPI's keyword, not JSON Schema's


def served_schema() -> func.HttpResponse:
    functions = {f.get_function_name(): f for f in fresh_function_app().get_functions()}
    handler = functions["events_schema"].get_user_function()
    response: func.HttpResponse = handler(
        func.HttpRequest("GET", "http://localhost/api/events.schema.json", body=b"")
    )
    return response


def test_the_schema_is_served_as_built() -> None:
    response = served_schema()
    assert response.status_code == 200
    assert response.mimetype == "application/schema+json"
    assert response.headers["Cache-Control"] == "no-store"
    assert json.loads(response.get_body()) == event_schema()


def test_the_schema_is_built_on_first_use_not_when_the_app_is_imported() -> None:
    script = (
        "import function_app\n"
        "from shared.api import event_schema as module\n"
        "print(module.event_schema.cache_info().currsize)\n"
        "module.event_schema()\n"
        "print(module.event_schema.cache_info().currsize)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"RECONNECT_SIGNING_KEY": "k" * 40, "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.split() == ["0", "1"]
