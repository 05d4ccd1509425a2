"""The JSON Schema (draft 2020-12) of the integration events, generated from pydantic models.

One document: an event is one of the `$defs` `<What>Event` (the CloudEvents 1.0 envelope
with its `type` fixed), whose `data` is `<What>Data` (the conversation as
`GET /api/conversations/{id}` shows it, without `reconnectUrl`, plus `previousState`, `via`
and `capacityReleased`). Served beside the OpenAPI document (contract §5).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, create_model
from pydantic.alias_generators import to_camel

from shared.api.ids import ID_PATTERN
from shared.domain.conversation import State
from shared.domain.events import WHO_CAN
from shared.wire.conversations import ConversationView, UtcDateTime

EVENT_TYPE_PREFIX = "chatreconnect.conversation."
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Via = Literal["platform", "widget", "timer"]

# What happened -> who can have made it happen (`data.via`): the domain's table, as strings.
EVENT_VIAS: dict[str, tuple[Via, ...]] = {
    what: tuple(cast(Via, via.value) for via in vias) for what, vias in WHO_CAN.items()
}

# The conversation's members that an event must not carry: a reconnect link is a credential.
_NOT_IN_EVENTS = {"reconnect_url"}
# The registration's sequence; every later stored change adds one.
FIRST_SEQUENCE = "0000000001"
# Exactly the form the app writes (UTC, to the second, `Z`); `format` alone allows offsets.
_UTC_SECOND = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"

_EventId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{22}$"),
    Field(description="Unique per change, the same on every redelivery: dedupe by it."),
]
_Subject = Annotated[
    str, StringConstraints(pattern="^conversations/" + ID_PATTERN.removeprefix("^"))
]
_Sequence = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{10}$"),
    Field(description="Per conversation: 1 at registration, +1 per stored change."),
]


class _Closed(BaseModel):
    """Exactly the members listed: the schema says what this version sends, no more."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _title(what: str) -> str:
    return "".join(part.capitalize() for part in what.split("_"))


def _data_model(what: str, vias: tuple[Via, ...]) -> type[BaseModel]:
    """`<What>Data`: the conversation's fields, reused from ConversationView, and the change's."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in ConversationView.model_fields.items()
        if name not in _NOT_IN_EVENTS
    }
    previous: Any = type(None) if what == "registered" else State
    fields["previous_state"] = (previous, Field(description="The state before this change."))
    fields["via"] = (Literal[vias], ...)
    fields["capacity_released"] = (
        str | None,
        Field(description="The agent whose capacity this change gave back, else null."),
    )
    model: type[BaseModel] = create_model(f"{_title(what)}Data", __base__=_Closed, **fields)
    return model


def _event_model(what: str, vias: tuple[Via, ...]) -> type[BaseModel]:
    """`<What>Event`: the CloudEvents 1.0 envelope (structured JSON) of one kind of change."""
    sequence: Any = Literal[FIRST_SEQUENCE] if what == "registered" else _Sequence
    model: type[BaseModel] = create_model(
        f"{_title(what)}Event",
        __base__=_Closed,
        specversion=(Literal["1.0"], ...),
        id=(_EventId, ...),
        source=(Annotated[str, StringConstraints(min_length=1)], ...),
        type=(Literal[EVENT_TYPE_PREFIX + what], ...),
        subject=(_Subject, ...),
        time=(UtcDateTime, Field(description="When the change was stored: data.updatedAt.")),
        datacontenttype=(Literal["application/json"], ...),
        sequence=(sequence, ...),
        data=(_data_model(what, vias), ...),
    )
    return model


def _utc_to_the_second(node: Any) -> None:
    """Give every date-time the one form the app writes, which `format` alone does not pin."""
    if isinstance(node, dict):
        if node.get("format") == "date-time":
            node["pattern"] = _UTC_SECOND
        for value in node.values():
            _utc_to_the_second(value)
    elif isinstance(node, list):
        for value in node:
            _utc_to_the_second(value)


@functools.cache
def event_schema() -> dict[str, Any]:
    """The JSON Schema document of every integration event, built once, on first use."""
    events = tuple(_event_model(what, vias) for what, vias in EVENT_VIAS.items())
    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[Union[events], Field(discriminator="type")]  # noqa: UP007 (a runtime tuple)
    )
    schema = adapter.json_schema(mode="serialization", ref_template="#/$defs/{model}")
    # OpenAPI's keyword, not JSON Schema's: `oneOf` with a `const` type already decides.
    schema.pop("discriminator", None)
    _utc_to_the_second(schema)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "Chat Reconnect integration event",
        "description": "A CloudEvents 1.0 event (JSON structured mode), one per stored change "
        "of a conversation; one Storage queue message each, Base64 of the UTF-8 JSON.",
        **schema,
    }
