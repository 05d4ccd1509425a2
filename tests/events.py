"""Check an integration event against the JSON Schema the app serves (contract §5).

Every test that sees an event — decoded from a queue message, or built by the code — calls
`validate_event` on it, so the schema and what the app sends cannot drift apart.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from shared.api.event_schema import EVENT_TYPE_PREFIX, event_schema


class InvalidEvent(AssertionError):
    """The event does not match the served JSON Schema or the envelope's own rules."""


@cache
def _validators() -> tuple[Draft202012Validator, dict[str, Draft202012Validator]]:
    """(the whole document's validator, type -> the validator of that type's `$defs` entry)."""
    schema = event_schema()
    Draft202012Validator.check_schema(schema)
    checker = Draft202012Validator.FORMAT_CHECKER
    # Without the optional rfc3339-validator package jsonschema skips date-time silently.
    assert "date-time" in checker.checkers, "pip install rfc3339-validator (requirements-dev)"
    whole = Draft202012Validator(schema, format_checker=checker)
    by_type: dict[str, Draft202012Validator] = {}
    for option in schema["oneOf"]:
        name = option["$ref"].removeprefix("#/$defs/")
        event_type = schema["$defs"][name]["properties"]["type"]["const"]
        one = {"$schema": schema["$schema"], "$ref": option["$ref"], "$defs": schema["$defs"]}
        by_type[event_type] = Draft202012Validator(one, format_checker=checker)
    return whole, by_type


def validate_event(event: dict[str, Any]) -> None:
    """Raise InvalidEvent, naming the first problem, unless `event` is a valid event."""
    whole, by_type = _validators()
    # The type's own schema first: its error names the member, where `oneOf` only says "none".
    event_type = event.get("type") if isinstance(event, dict) else None
    own = by_type.get(event_type) if isinstance(event_type, str) else None
    error = best_match((own or whole).iter_errors(event))
    if error is None and own is not None:
        error = best_match(whole.iter_errors(event))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(the event)"
        known = ", ".join(sorted(t.removeprefix(EVENT_TYPE_PREFIX) for t in by_type))
        hint = "" if own is not None else f" (known types: {known})"
        raise InvalidEvent(f"{where}: {error.message}{hint}")
    data = event["data"]
    # Rules JSON Schema cannot state: one conversation, one moment.
    if event["subject"] != f"conversations/{data['conversationId']}":
        raise InvalidEvent(
            f"subject: {event['subject']!r} is not conversations/{data['conversationId']}"
        )
    if event["time"] != data["updatedAt"]:
        raise InvalidEvent(f"time: {event['time']!r} is not data.updatedAt {data['updatedAt']!r}")


# --- sample events, for tests that need one of each kind --------------------------------------

CREATED = "2026-11-25T12:00:00Z"
CHANGED = "2026-11-25T12:04:31Z"

# One realistic conversation after each kind of change: (state, agent, connected, end reason,
# previous state, capacity released, via).
AFTER: dict[str, tuple[str, str | None, bool, str | None, str | None, str | None, str]] = {
    "registered": ("open", None, True, None, None, None, "platform"),
    "agent_assigned": ("active", "agent-7", True, None, "open", None, "platform"),
    "customer_disconnected": ("active", "agent-7", False, None, "active", None, "platform"),
    "customer_reconnected": ("active", "agent-7", True, None, "active", None, "widget"),
    "agent_ended": ("wrap_up", "agent-7", False, "agent_ended", "active", "agent-7", "platform"),
    "customer_ended": (
        "wrap_up",
        "agent-7",
        False,
        "customer_ended",
        "active",
        "agent-7",
        "platform",
    ),
    "agent_closed": ("open", None, False, None, "active", "agent-7", "platform"),
    "customer_declined": (
        "wrap_up",
        "agent-7",
        False,
        "customer_declined",
        "active",
        "agent-7",
        "widget",
    ),
    "link_revoked": ("active", "agent-7", False, None, "active", None, "platform"),
    "reconnect_timeout": (
        "wrap_up",
        "agent-7",
        False,
        "reconnect_timeout",
        "active",
        "agent-7",
        "timer",
    ),
    "auto_closed": ("closed", "agent-7", False, "auto_closed", "wrap_up", None, "timer"),
}


def sample_event(
    what: str,
    *,
    conversation_id: str = "conv-42",
    sequence: int | None = None,
    event_id: str = "kD3v9Qx0TlWm1b7ZpA-_cQ",
) -> dict[str, Any]:
    """A valid event of type `what`, as the app sends it (sequence 4 unless registered)."""
    state, agent, connected, reason, previous, released, via = AFTER[what]
    waiting = what in ("customer_disconnected", "link_revoked", "agent_closed")
    if sequence is None:
        sequence = 1 if what == "registered" else 4
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/chat-reconnect",
        "type": EVENT_TYPE_PREFIX + what,
        "subject": f"conversations/{conversation_id}",
        "time": CHANGED,
        "datacontenttype": "application/json",
        "sequence": f"{sequence:010d}",
        "data": {
            "conversationId": conversation_id,
            "widgetId": "demo",
            "state": state,
            "agentId": agent,
            "customerConnected": connected,
            "disconnectedAt": "2026-11-25T12:02:00Z" if not connected else None,
            "reconnectDeadline": "2026-11-25T12:12:00Z" if waiting else None,
            "endReason": reason,
            "createdAt": CREATED,
            "updatedAt": CHANGED,
            "previousState": previous,
            "via": via,
            "capacityReleased": released,
        },
    }
