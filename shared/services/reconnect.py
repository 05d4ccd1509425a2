"""The widget's use cases: who is calling, what a link offers, continue, decline, and the
prompt's "continue your last conversation?"."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain import conversation as domain
from shared.domain.auth import bearer_token, customer_id_from_token
from shared.domain.conversation import Conversation
from shared.domain.errors import LinkUnavailable, NotAnAuthenticatedWidget
from shared.domain.events import Via
from shared.domain.links import parse_reconnect_id
from shared.domain.settings import WidgetSettings
from shared.services.context import ConversationCases
from shared.services.retry import AGAIN, Retry, retry_lost_races
from shared.services.writes import CHANGING_TOO_FAST
from shared.storage.entities import Versioned

logger = logging.getLogger(__name__)

# The prompt's bound: how many of a customer's conversations (per customer key, newest
# created first) it reads at most, and how many index rows it asks for a page. The index
# holds a customer's conversations until they close (wrap-ups auto-close), so only a
# customer with more than this many open, active or wrap-up conversations on one widget
# at once can have one left out: the oldest created, logged as a warning.
PROMPT_MAX_CANDIDATES = 100
PROMPT_PAGE_SIZE = 100


@dataclass(frozen=True)
class ReconnectContext:
    """What the widget learns about a link: usable or not, and where to go if not."""

    available: bool
    reconnect_id: str | None
    conversation_id: str | None
    expires_at: datetime | None
    redirect_url: str | None


@dataclass(frozen=True)
class ContinueResult:
    conversation: Conversation
    same_agent: bool
    reconnected_at: datetime


@dataclass(frozen=True)
class Reconnectable:
    """The prompt's answer: the customer's most recent conversation that can be continued."""

    reconnect_id: str
    conversation: Conversation


@dataclass(frozen=True)
class CustomerSession:
    """A widget request's caller: the widget's settings and, when authenticated, the customer."""

    widget: WidgetSettings
    customer_id: str | None


class ReconnectUseCases(ConversationCases):
    """The widget's use cases."""

    def customer_session(self, widget_id: str, authorization: str | None) -> CustomerSession:
        """The widget and, on authenticated widgets, the customer proven by the bearer token."""
        return self.session_for(self.widgets.require(widget_id), authorization)

    def session_for(self, widget: WidgetSettings, authorization: str | None) -> CustomerSession:
        """`customer_session` for settings the caller has already read (from the cache)."""
        if widget.authentication is None:
            return CustomerSession(widget, None)
        token = bearer_token(authorization)
        return CustomerSession(widget, customer_id_from_token(token, widget.authentication))

    def reconnect_context(self, session: CustomerSession, reconnect_id: str) -> ReconnectContext:
        """Whether a link can be continued now; every unusable link gets the same answer."""
        found = self._resolve_link(session, reconnect_id)
        if found is None:
            return ReconnectContext(False, None, None, None, session.widget.redirect_url)
        conversation = found.value
        return ReconnectContext(
            True,
            reconnect_id,
            conversation.conversation_id,
            conversation.reconnect_deadline,
            None,
        )

    def continue_conversation(self, session: CustomerSession, reconnect_id: str) -> ContinueResult:
        """Reconnect the customer: one read and one conditional write of the conversation
        (the writer's `continue_in_place`)."""

        def attempt() -> ContinueResult | Retry:
            found = self._resolve_link(session, reconnect_id)
            if found is None:
                raise LinkUnavailable(session.widget.redirect_url)
            now = self.clock()
            continued = domain.continue_conversation(found.value, now)
            if continued is not found.value and not self.writer.continue_in_place(found, continued):
                return AGAIN
            same_agent = domain.returns_to_same_agent(found.value)
            return ContinueResult(continued, same_agent, now)

        return retry_lost_races(attempt, CHANGING_TOO_FAST)

    def decline(self, session: CustomerSession, reconnect_id: str) -> None:
        """End the previous conversation so the customer can start fresh; unusable links: no-op."""

        def attempt() -> None | Retry:
            found = self._resolve_link(session, reconnect_id)
            if found is None:
                return None
            ended = domain.decline(found.value, self.clock())
            return None if self.writer.write(found, ended, Via.WIDGET) else AGAIN

        retry_lost_races(attempt, CHANGING_TOO_FAST)

    def reconnectable(self, session: CustomerSession) -> Reconnectable | None:
        """The authenticated customer's most recently connected conversation that can continue.

        The customer index is ordered by creation, not by last connection: an older
        conversation may have been disconnected last, so every page is read, up to
        PROMPT_MAX_CANDIDATES conversations per customer key. A still-connected one counts
        as now, the latest possible, and the first found wins a tie, so the search stops at
        the first connected one: no row after it can change the answer.
        """
        widget = session.widget
        if widget.authentication is None or session.customer_id is None:
            raise NotAnAuthenticatedWidget(widget.widget_id)
        now = self.clock()
        keys = self.signer.customer_keys(widget.widget_id, session.customer_id)
        best: Conversation | None = None
        for key in keys:
            for conversation in self._customer_conversations(widget.widget_id, key):
                if conversation.customer_key not in keys:
                    continue
                if not domain.can_continue(conversation, widget, now):
                    continue
                if best is None or _last_connected(conversation, now) > _last_connected(best, now):
                    best = conversation
                if best.customer_connected:
                    return Reconnectable(self.signer.reconnect_id(best), best)
        if best is None:
            return None
        return Reconnectable(self.signer.reconnect_id(best), best)

    def _customer_conversations(self, widget_id: str, customer_key: str) -> Iterator[Conversation]:
        """A customer's conversations on a widget, newest created first, read page by page
        as the caller asks for them, at most PROMPT_MAX_CANDIDATES."""
        read = 0
        continuation: Any | None = None
        while True:
            ids, continuation = self.store.customer_conversations(
                widget_id, customer_key, PROMPT_PAGE_SIZE, continuation
            )
            for conversation_id in ids:
                if read == PROMPT_MAX_CANDIDATES:
                    logger.warning(
                        "The prompt considered a customer's %d newest conversations only",
                        PROMPT_MAX_CANDIDATES,
                    )
                    return
                read += 1
                found = self.store.get_conversation(conversation_id)
                if found is not None:
                    yield found.value
            if continuation is None:
                return

    def _resolve_link(
        self, session: CustomerSession, reconnect_id: str
    ) -> Versioned[Conversation] | None:
        """The conversation a link opens if a continue would succeed now, else None."""
        parsed = parse_reconnect_id(reconnect_id)
        if parsed is None:
            return None
        found = self.store.get_conversation(parsed.conversation_id)
        if found is None:
            return None
        conversation = found.value
        widget = session.widget
        if not self.signer.verify(parsed, conversation):
            return None
        if session.customer_id is not None and conversation.customer_key not in (
            self.signer.customer_keys(widget.widget_id, session.customer_id)
        ):
            return None
        if not domain.can_continue(conversation, widget, self.clock()):
            return None
        return found


def _last_connected(conversation: Conversation, now: datetime) -> datetime:
    if conversation.customer_connected or conversation.disconnected_at is None:
        return now
    return conversation.disconnected_at
