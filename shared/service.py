"""Use cases: widget settings, conversation lifecycle, reconnect links and the prompt; the
timer's run is `shared/enforcement.py`, reached through `enforce_time_limits`.

Every conversation change is read -> decide (pure domain) -> conditional write; a lost
race re-reads and decides again, so concurrent callers get one consistent outcome.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import domain
from shared.auth import bearer_token, customer_id_from_token
from shared.domain import Conversation, Event, State, WidgetSettings
from shared.enforcement import EnforcementReport, TimeLimitEnforcer
from shared.errors import (
    ConcurrencyExhausted,
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    ReconnectUnavailable,
    ValidationFailed,
)
from shared.links import (
    QUICK_REPLY_SLUG,
    LinkSigner,
    parse_reconnect_id,
    reconnect_url,
    render_quick_reply,
)
from shared.store import (
    MAX_WRITE_ATTEMPTS,
    ConcurrencyConflict,
    TableStore,
    Versioned,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# The prompt's bound: how many of a customer's conversations (per customer key, newest
# created first) it reads at most, and how many index rows it asks for a page. The index
# holds a customer's conversations until they close (wrap-ups auto-close), so only a
# customer with more than this many open, active or wrap-up conversations on one widget
# at once can have one left out: the oldest created, logged as a warning.
PROMPT_MAX_CANDIDATES = 100
PROMPT_PAGE_SIZE = 100
# How long after a write that moves an agent's capacity the timer checks the agent's index
# row (see _note_capacity_change): the bucket of now + 2 min is read from the next minute
# on, by when the request that wrote it has long finished (SDK retries are bounded).
CAPACITY_CHECK_DELAY = timedelta(minutes=2)


def utc_now() -> datetime:
    """The current UTC time to the second: the contract's deadlines are whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class ConversationResult:
    """A conversation with its current reconnect link (None while reconnection is off)."""

    conversation: Conversation
    reconnect_url: str | None


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


class ReconnectService:
    """The application's use cases over a TableStore, a LinkSigner and a clock."""

    def __init__(
        self,
        store: TableStore,
        signer: LinkSigner,
        *,
        auto_close_after: timedelta = timedelta(minutes=15),
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.signer = signer
        self.auto_close_after = auto_close_after
        self.clock = clock

    # --- widget settings ----------------------------------------------------------------

    def get_widget(self, widget_id: str) -> Versioned[WidgetSettings]:
        found = self.store.get_widget(widget_id)
        if found is None:
            raise NotFound(f"No widget '{widget_id}'.")
        return found

    def list_widgets(
        self, page_size: int, continuation: Any | None
    ) -> tuple[list[WidgetSettings], Any | None]:
        return self.store.list_widgets(page_size, continuation)

    def put_widget(
        self, widget: WidgetSettings, *, if_match: str | None, if_none_match: str | None
    ) -> tuple[Versioned[WidgetSettings], bool]:
        """Create or replace settings honouring preconditions; returns (saved, created).

        Without a precondition a lost race is not the caller's business (412 is for an
        If-Match that does not hold): it reads again and replaces what won.
        """
        widget = _stamped(widget, self.clock())
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.store.get_widget(widget.widget_id)
            if if_none_match is not None and current is not None:
                raise PreconditionFailed(f"Widget '{widget.widget_id}' already exists.")
            if current is None:
                if if_match is not None:  # If-Match never matches a missing resource, not even *
                    raise PreconditionFailed(f"Widget '{widget.widget_id}' does not exist.")
                try:
                    return Versioned(widget, self.store.insert_widget(widget)), True
                except ConcurrencyConflict:
                    if if_none_match is not None:
                        raise PreconditionFailed(
                            f"Widget '{widget.widget_id}' was created concurrently."
                        ) from None
                    continue
            _check_if_match(if_match, current.etag)
            etag = self._replace_widget(widget, current.etag, if_match)
            if etag is not None:
                return Versioned(widget, etag), False
        raise ConcurrencyExhausted("The settings are changing too fast; retry shortly.")

    def update_widget(
        self,
        widget_id: str,
        change: Callable[[WidgetSettings], WidgetSettings],
        *,
        if_match: str | None,
    ) -> Versioned[WidgetSettings]:
        """Apply `change` to the current settings (e.g. a merge patch) and save conditionally."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.get_widget(widget_id)
            _check_if_match(if_match, current.etag)
            updated = _stamped(change(current.value), self.clock())
            etag = self._replace_widget(updated, current.etag, if_match)
            if etag is not None:
                return Versioned(updated, etag)
        raise ConcurrencyExhausted("The settings are changing too fast; retry shortly.")

    def delete_widget(self, widget_id: str, *, if_match: str | None) -> None:
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = self.get_widget(widget_id)
            _check_if_match(if_match, current.etag)
            try:
                self.store.delete_widget(widget_id, current.etag)
            except ConcurrencyConflict:
                if _names_etag(if_match):
                    raise PreconditionFailed(f"Widget '{widget_id}' changed meanwhile.") from None
                continue
            return
        raise ConcurrencyExhausted("The settings are changing too fast; retry shortly.")

    def _replace_widget(
        self, widget: WidgetSettings, etag: str, if_match: str | None
    ) -> str | None:
        """The new ETag; None when another write won and the caller named no ETag (re-read)."""
        try:
            return self.store.replace_widget(widget, etag)
        except ConcurrencyConflict:
            if _names_etag(if_match):
                raise PreconditionFailed(
                    f"Widget '{widget.widget_id}' changed meanwhile; read it and retry."
                ) from None
            return None

    def _widget_or_default(self, widget_id: str) -> WidgetSettings:
        # A deleted widget leaves its conversations behaving as with reconnection off.
        found = self.store.get_widget(widget_id)
        return found.value if found else WidgetSettings(widget_id=widget_id)

    # --- conversations (platform) -------------------------------------------------------

    def register(
        self,
        conversation_id: str,
        widget_id: str,
        agent_id: str | None,
        customer_id: str | None,
    ) -> tuple[ConversationResult, bool]:
        """Register a conversation (created=True) or confirm an identical earlier registration."""
        widget = self.get_widget(widget_id).value
        if widget.is_authenticated and customer_id is None:
            raise ValidationFailed(
                (FieldError("customerId", "is required on an authenticated widget"),)
            )
        for _ in range(2):
            existing = self.store.get_conversation(conversation_id)
            if existing is not None:
                self._check_same_registration(existing.value, widget_id, agent_id, customer_id)
                return self._result(existing.value, widget), False
            customer_key = self.signer.customer_key(widget_id, customer_id) if customer_id else None
            created = domain.new_conversation(
                conversation_id, widget_id, agent_id, customer_key, self.clock()
            )
            self._note_capacity_change(None, created)
            self._prepare_indexes(None, created)
            try:
                self.store.insert_conversation(created)
            except ConcurrencyConflict:
                continue  # registered concurrently: compare with that one
            return self._result(created, widget), True
        raise ConcurrencyExhausted("The conversation is being registered concurrently.")

    def _check_same_registration(
        self,
        existing: Conversation,
        widget_id: str,
        agent_id: str | None,
        customer_id: str | None,
    ) -> None:
        state = existing.state.value
        if existing.widget_id != widget_id:
            raise Conflict(
                f"Conversation '{existing.conversation_id}' belongs to another widget.", state
            )
        if agent_id is not None and existing.agent_id != agent_id:
            raise Conflict(
                f"Conversation '{existing.conversation_id}' is registered with another agent.",
                state,
            )
        if customer_id is not None and existing.customer_key not in self.signer.customer_keys(
            widget_id, customer_id
        ):
            raise Conflict(
                f"Conversation '{existing.conversation_id}' is registered with another customer.",
                state,
            )

    def get_conversation(self, conversation_id: str) -> ConversationResult:
        conversation = self._read(conversation_id).value
        return self._result(conversation, self._widget_or_default(conversation.widget_id))

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
                widget = self._widget_or_default(conversation.widget_id)
            changed = domain.apply_event(conversation, event, widget, self.clock())
            return domain.remember_event(changed, event_id)

        conversation = self._mutate(conversation_id, decide)
        return self._result(conversation, widget or self._widget_or_default(conversation.widget_id))

    def quick_reply(self, conversation_id: str, text: str) -> str:
        """The agent's text with the reconnect slug rendered to the conversation's link."""
        result = self.get_conversation(conversation_id)
        if result.reconnect_url is None:
            if QUICK_REPLY_SLUG not in text:
                return text
            raise Conflict(
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

        conversation = self._mutate(conversation_id, bump)
        return self._result(conversation, self._widget_or_default(conversation.widget_id))

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

    # --- widget (customer) --------------------------------------------------------------

    def customer_session(self, widget_id: str, authorization: str | None) -> CustomerSession:
        """The widget and, on authenticated widgets, the customer proven by the bearer token."""
        widget = self.get_widget(widget_id).value
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
        """Reconnect the customer: one read and one conditional write of the conversation."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            found = self._resolve_link(session, reconnect_id)
            if found is None:
                raise ReconnectUnavailable(session.widget.redirect_url)
            now = self.clock()
            continued = domain.continue_conversation(found.value, now)
            if continued is not found.value:
                try:
                    self.store.replace_conversation(continued, found.etag)
                except ConcurrencyConflict:
                    continue
            same_agent = domain.returns_to_same_agent(found.value)
            return ContinueResult(continued, same_agent, now)
        raise ConcurrencyExhausted("The conversation is changing too fast; retry shortly.")

    def decline(self, session: CustomerSession, reconnect_id: str) -> None:
        """End the previous conversation so the customer can start fresh; unusable links: no-op."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            found = self._resolve_link(session, reconnect_id)
            if found is None:
                return
            ended = domain.decline(found.value, self.clock())
            if self._write(found, ended):
                return
        raise ConcurrencyExhausted("The conversation is changing too fast; retry shortly.")

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
            raise NotFound(f"Widget '{widget.widget_id}' is not an authenticated widget.")
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

    # --- timer --------------------------------------------------------------------------

    def enforce_time_limits(self, *, past_due: bool = False) -> EnforcementReport:
        """Wrap up expired sessions and auto-close old wrap-ups (see TimeLimitEnforcer)."""
        enforcer = TimeLimitEnforcer(
            self.store, auto_close_after=self.auto_close_after, clock=self.clock
        )
        return enforcer.run(past_due=past_due)

    # --- shared mechanics ---------------------------------------------------------------

    def _read(self, conversation_id: str) -> Versioned[Conversation]:
        found = self.store.get_conversation(conversation_id)
        if found is None:
            raise NotFound(f"No conversation '{conversation_id}'.")
        return found

    def _mutate(
        self, conversation_id: str, decide: Callable[[Conversation], Conversation]
    ) -> Conversation:
        """Read, decide, write conditionally; on a lost race decide again on the winner's state."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            found = self._read(conversation_id)
            changed = decide(found.value)
            if changed is found.value or self._write(found, changed):
                return changed
        raise ConcurrencyExhausted("The conversation is changing too fast; retry shortly.")

    def _write(self, found: Versioned[Conversation], changed: Conversation) -> bool:
        """Write `changed` over `found` if nobody else wrote first, keeping indexes in step."""
        before = found.value
        self._note_capacity_change(before, changed)
        self._prepare_indexes(before, changed)
        try:
            etag = self.store.replace_conversation(changed, found.etag)
        except ConcurrencyConflict:
            # The winner may not hold this agent: drop the capacity row written for us,
            # unless the winner holds it too (a retried agent_assigned racing itself).
            if _newly_holds(before, changed) and changed.agent_id:
                winner = self.store.get_conversation(changed.conversation_id)
                if not (
                    winner is not None
                    and winner.value.holds_capacity
                    and winner.value.agent_id == changed.agent_id
                ):
                    self.store.delete_capacity(changed.agent_id, [changed.conversation_id])
            return False
        self._snapshot_due(before, changed, etag)
        self._settle_indexes(before, changed)
        return True

    def _snapshot_due(self, before: Conversation, after: Conversation, etag: str) -> None:
        """After a write that set a new due time, put the conversation into its due row.

        The plain row was written before the conversation (`_prepare_indexes`), so a crash
        here leaves a row the timer handles by reading. With the snapshot and the write's
        ETag, the timer can enforce the deadline with one conditional write instead of a
        read and a write. Best effort: the conversation is written, so a failure here must
        not fail the request.
        """
        due = domain.due_at(after, self.auto_close_after)
        if due is None or domain.due_at(before, self.auto_close_after) == due:
            return
        try:
            self.store.put_due_snapshot(due, after, etag)
        except Exception:
            logger.warning("Could not put a snapshot into a due row", exc_info=True)

    def _note_capacity_change(self, before: Conversation | None, after: Conversation) -> None:
        """Before a write that moves an agent's capacity, ask the timer to check the row later.

        The conversation and its capacity row are separate writes: storage failing or the
        process dying between them (the row written for a conversation never stored, or
        left behind by one that let the agent go) would leave the index wrong until the
        auto-close, or for good after agent_closed clears the agent. The note is written
        first, so whatever happens next, the timer brings the row in line.
        """
        held_before = before.agent_id if before is not None and before.holds_capacity else None
        held_after = after.agent_id if after.holds_capacity else None
        if held_before == held_after:
            return
        due = self.clock() + CAPACITY_CHECK_DELAY
        for agent_id in (held_before, held_after):
            if agent_id is not None:
                self.store.put_capacity_check(due, after.conversation_id, agent_id)

    def _prepare_indexes(self, before: Conversation | None, after: Conversation) -> None:
        """Index rows `after` needs, written before it so a crash never hides it from the timer."""
        due = domain.due_at(after, self.auto_close_after)
        if due is not None and (
            before is None or domain.due_at(before, self.auto_close_after) != due
        ):
            self.store.put_due(due, after.conversation_id)
        if _newly_holds(before, after) and after.agent_id:
            self.store.put_capacity(after.agent_id, after.conversation_id)
        if before is None and after.customer_key is not None:
            self.store.put_customer(after)

    def _settle_indexes(self, before: Conversation, after: Conversation) -> None:
        """Index rows `before` had that `after` no longer needs, removed after the write."""
        if (
            before.holds_capacity
            and before.agent_id
            and not (after.holds_capacity and after.agent_id == before.agent_id)
        ):
            self.store.delete_capacity(before.agent_id, [before.conversation_id])
        if after.state is State.CLOSED and before.state is not State.CLOSED:
            self.store.delete_customer(after)


def _replace(conversation: Conversation, **changes: Any) -> Conversation:
    return dataclasses.replace(conversation, **changes)


def _stamped(widget: WidgetSettings, now: datetime) -> WidgetSettings:
    return dataclasses.replace(widget, updated_at=now)


def _newly_holds(before: Conversation | None, after: Conversation) -> bool:
    """True when `after` holds an agent's capacity that `before` did not."""
    return after.holds_capacity and not (
        before is not None and before.holds_capacity and before.agent_id == after.agent_id
    )


def _names_etag(if_match: str | None) -> bool:
    """True when If-Match names ETags (not absent, not `*`): a lost race then fails it."""
    return if_match is not None and if_match.strip() != "*"


def _check_if_match(if_match: str | None, etag: str) -> None:
    if if_match is None or not _names_etag(if_match):
        return
    candidates = [candidate.strip() for candidate in if_match.split(",")]
    if etag not in candidates:
        raise PreconditionFailed("If-Match does not match the current ETag; read it again.")


def _last_connected(conversation: Conversation, now: datetime) -> datetime:
    if conversation.customer_connected or conversation.disconnected_at is None:
        return now
    return conversation.disconnected_at
