"""The platform's use cases: register a conversation, apply its lifecycle events, revoke its
link, render a quick reply, and list what holds an agent's capacity.

Every change is read -> decide (pure domain) -> conditional write through the
ConversationWriter; a lost race re-reads and decides again, so concurrent callers get one
consistent outcome.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from shared.domain import conversation as domain
from shared.domain.conversation import Conversation, Event
from shared.domain.errors import CustomerRequired, NoLinkToInsert, RegistrationConflict
from shared.domain.links import QUICK_REPLY_SLUG, reconnect_url, render_quick_reply
from shared.domain.settings import WidgetSettings
from shared.services.context import ConversationCases
from shared.services.retry import AGAIN, Retry, retry_lost_races

# A lost insert means the conversation now exists (conversations are never deleted), so
# the second attempt always finds it and answers: more attempts could not change anything.
REGISTER_ATTEMPTS = 2


@dataclass(frozen=True)
class ConversationResult:
    """A conversation with its current reconnect link (None while reconnection is off)."""

    conversation: Conversation
    reconnect_url: str | None


class ConversationUseCases(ConversationCases):
    """The platform's use cases."""

    def register(
        self,
        conversation_id: str,
        widget_id: str,
        agent_id: str | None,
        customer_id: str | None,
    ) -> tuple[ConversationResult, bool]:
        """Register a conversation (created=True) or confirm an identical earlier registration."""
        widget = self.widgets.require(widget_id)
        if widget.is_authenticated and customer_id is None:
            raise CustomerRequired()

        def attempt() -> tuple[ConversationResult, bool] | Retry:
            existing = self.store.get_conversation(conversation_id)
            if existing is not None:
                self._check_same_registration(existing.value, widget_id, agent_id, customer_id)
                return self._result(existing.value, widget), False
            customer_key = self.signer.customer_key(widget_id, customer_id) if customer_id else None
            created = domain.new_conversation(
                conversation_id, widget_id, agent_id, customer_key, self.clock()
            )
            stored = self.writer.insert(created)
            if stored is None:
                return AGAIN  # registered concurrently: compare with that one
            return self._result(stored, widget), True

        return retry_lost_races(
            attempt,
            "The conversation is being registered concurrently.",
            attempts=REGISTER_ATTEMPTS,
        )

    def _check_same_registration(
        self,
        existing: Conversation,
        widget_id: str,
        agent_id: str | None,
        customer_id: str | None,
    ) -> None:
        state = existing.state.value
        if existing.widget_id != widget_id:
            raise RegistrationConflict(
                f"Conversation '{existing.conversation_id}' belongs to another widget.", state
            )
        if agent_id is not None and existing.agent_id != agent_id:
            raise RegistrationConflict(
                f"Conversation '{existing.conversation_id}' is registered with another agent.",
                state,
            )
        if customer_id is not None and existing.customer_key not in self.signer.customer_keys(
            widget_id, customer_id
        ):
            raise RegistrationConflict(
                f"Conversation '{existing.conversation_id}' is registered with another customer.",
                state,
            )

    def get_conversation(self, conversation_id: str) -> ConversationResult:
        conversation = self.writer.read(conversation_id).value
        return self._result(conversation, self.widgets.or_default(conversation.widget_id))

    def apply_event(
        self, conversation_id: str, event: Event, event_id: str | None
    ) -> ConversationResult:
        """Apply a lifecycle event; a repeated eventId answers the current state unchanged."""
        widget: WidgetSettings | None = None

        def decide(conversation: Conversation) -> Conversation:
            nonlocal widget
            if event_id is not None and event_id in conversation.event_ids:
                return conversation
            if widget is None:
                widget = self.widgets.or_default(conversation.widget_id)
            changed = domain.apply_event(conversation, event, widget, self.clock())
            return domain.remember_event(changed, event_id)

        conversation = self.writer.mutate(conversation_id, decide)
        return self._result(conversation, widget or self.widgets.or_default(conversation.widget_id))

    def quick_reply(self, conversation_id: str, text: str) -> str:
        """The agent's text with the reconnect slug rendered to the conversation's link."""
        result = self.get_conversation(conversation_id)
        if result.reconnect_url is None:
            if QUICK_REPLY_SLUG not in text:
                return text
            raise NoLinkToInsert(
                "Reconnection is not enabled for this conversation's widget, "
                "so there is no link to insert.",
                result.conversation.state.value,
            )
        return render_quick_reply(text, result.reconnect_url)

    def revoke_link(self, conversation_id: str) -> ConversationResult:
        """Issue a new reconnect ID; every earlier link stops working at once."""

        def bump(conversation: Conversation) -> Conversation:
            return _replace(
                conversation, link_epoch=conversation.link_epoch + 1, updated_at=self.clock()
            )

        conversation = self.writer.mutate(conversation_id, bump)
        return self._result(conversation, self.widgets.or_default(conversation.widget_id))

    def agent_capacity(self, agent_id: str) -> list[Conversation]:
        """The conversations holding the agent's capacity, verified against each conversation."""
        held = []
        for conversation_id in self.store.capacity_rows(agent_id):
            found = self.store.get_conversation(conversation_id)
            if found and found.value.holds_capacity and found.value.agent_id == agent_id:
                held.append(found.value)
        return held

    def _result(self, conversation: Conversation, widget: WidgetSettings) -> ConversationResult:
        url = reconnect_url(widget, self.signer.reconnect_id(conversation))
        return ConversationResult(conversation, url)


def _replace(conversation: Conversation, **changes: Any) -> Conversation:
    return dataclasses.replace(conversation, **changes)
