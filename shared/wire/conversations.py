"""The conversation as the contract shows it (`GET /api/conversations/{id}`), in one place:
the HTTP answer and every integration event's `data` are shaped by `conversation_view`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from shared.domain.conversation import Conversation, EndReason, State
from shared.wire.times import format_utc

UtcDateTime = Annotated[
    datetime,
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    Field(json_schema_extra={"format": "date-time"}),
]


# Every model builds its validator and serializer on first use, not at import: building
# all of them was a third of `import function_app`, paid by every cold start even when the
# instance then serves only a few kinds of request (docs/performance.md).
DEFER = ConfigDict(defer_build=True)


class Model(BaseModel):
    """Base of every contract model: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, **DEFER)


class ConversationView(Model):
    conversation_id: str
    widget_id: str
    state: State
    agent_id: str | None
    customer_connected: bool
    disconnected_at: UtcDateTime | None
    reconnect_deadline: UtcDateTime | None
    end_reason: EndReason | None
    reconnect_url: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


def conversation_view(conversation: Conversation, reconnect_url: str | None) -> ConversationView:
    """The conversation as the platform sees it, with its current link (None while off)."""
    return ConversationView(
        conversation_id=conversation.conversation_id,
        widget_id=conversation.widget_id,
        state=conversation.state,
        agent_id=conversation.agent_id,
        customer_connected=conversation.customer_connected,
        disconnected_at=conversation.disconnected_at,
        reconnect_deadline=conversation.reconnect_deadline,
        end_reason=conversation.end_reason,
        reconnect_url=reconnect_url,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
    )
