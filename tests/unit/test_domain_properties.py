"""Property tests: random lifecycles replayed through the domain keep the contract's invariants.

Each example is a registration followed by random steps: a platform event, a widget
continue or decline (attempted only when `can_continue` says it would succeed), or a run
of the timer, each after a random time step and under random widget settings (the admin
may flip reconnection or change the limit at any moment). Every step is also checked
against a small model written straight from the contract §2.2 table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.conversation import (
    EVENT_ID_MEMORY,
    Conversation,
    EndReason,
    Event,
    EventType,
    State,
    apply_event,
    can_continue,
    continue_conversation,
    decline,
    due_at,
    enforce,
    new_conversation,
    remember_event,
)
from shared.domain.errors import InvalidTransition
from shared.domain.events import Via, what_happened
from shared.domain.settings import WidgetSettings

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
WIDGET = "widget-1"
LIVE = (State.OPEN, State.ACTIVE)
ENDED_STATES = (State.WRAP_UP, State.CLOSED)


@dataclass(frozen=True)
class Step:
    """One thing that happens: `action` after moving the clock, under `widget` settings."""

    action: str  # an EventType value, "continue", "decline" or "enforce"
    agent_id: str | None
    event_id: str | None
    time_step: tuple[str, int]  # ("seconds", n) or ("deadline", offset) or ("auto_close", offset)
    reconnect_enabled: bool
    time_limit_minutes: int
    other_widget: bool


short_steps = st.tuples(st.just("seconds"), st.integers(0, 90))
time_steps = st.one_of(
    # Mostly short steps, so that windows stay open for a while.
    short_steps,
    short_steps,
    short_steps,
    st.tuples(st.just("seconds"), st.integers(0, 4 * 3600)),
    # Land on the exact boundaries, where off-by-one mistakes live.
    st.tuples(st.just("deadline"), st.integers(-1, 1)),
    st.tuples(st.just("auto_close"), st.integers(-1, 1)),
)

# Weighted so that stories linger in the interesting states (disconnected, re-queued)
# instead of ending within a step or two: each ending action appears once.
ACTIONS = [
    *["customer_disconnected"] * 4,
    *["customer_reconnected"] * 2,
    *["agent_closed"] * 3,
    *["agent_assigned"] * 3,
    *["continue"] * 2,
    *["enforce"] * 3,
    "agent_ended",
    "customer_ended",
    "decline",
]

steps = st.builds(
    Step,
    action=st.sampled_from(ACTIONS),
    agent_id=st.sampled_from([None, "agent-1", "agent-2"]),
    event_id=st.one_of(st.none(), st.integers(0, 20).map(lambda n: f"evt-{n}")),
    time_step=time_steps,
    reconnect_enabled=st.integers(0, 4).map(bool),  # mostly enabled
    time_limit_minutes=st.sampled_from([1, 2, 10, 1440]),
    other_widget=st.integers(0, 9).map(lambda n: n == 0),
)


def advance(now: datetime, step: Step, model: Model, auto_close: timedelta) -> datetime:
    kind, amount = step.time_step
    target: datetime | None = None
    if kind == "deadline" and model.conversation.reconnect_deadline is not None:
        target = model.conversation.reconnect_deadline + timedelta(seconds=amount)
    elif kind == "auto_close" and model.wrap_up_since is not None:
        target = model.wrap_up_since + auto_close + timedelta(seconds=amount)
    elif kind == "seconds":
        target = now + timedelta(seconds=amount)
    # Time never runs backwards.
    return max(now, target) if target is not None else now


@dataclass
class Model:
    """What the test tracks beside the conversation, independently of the domain."""

    conversation: Conversation
    wrap_up_since: datetime | None = None
    limit_at_disconnect: timedelta | None = None


# --- the contract §2.2 table as a model ----------------------------------------------------


@dataclass(frozen=True)
class Expected:
    state: State
    end_reason: EndReason | None
    agent_id: str | None
    customer_connected: bool
    reconnect_deadline: datetime | None


REFUSED = "refused"
UNCHANGED = "unchanged"


def observe(conversation: Conversation) -> Expected:
    return Expected(
        state=conversation.state,
        end_reason=conversation.end_reason,
        agent_id=conversation.agent_id,
        customer_connected=conversation.customer_connected,
        reconnect_deadline=conversation.reconnect_deadline,
    )


def ended(before: Conversation, state: State, reason: EndReason) -> Expected:
    return Expected(state, reason, before.agent_id, False, None)


def expected_event(
    before: Conversation, event: Event, widget: WidgetSettings, now: datetime
) -> Expected | str:
    """The outcome the contract §2.2 table prescribes (plus customer_reconnected on open)."""
    state, connected = before.state, before.customer_connected
    same = observe(before)
    match event.type:
        case EventType.AGENT_ASSIGNED:
            if state is State.OPEN and event.agent_id:
                return dataclasses.replace(same, state=State.ACTIVE, agent_id=event.agent_id)
            return REFUSED
        case EventType.CUSTOMER_DISCONNECTED:
            if state not in LIVE:
                return REFUSED
            if not connected:
                return UNCHANGED
            if state is State.OPEN:
                return ended(before, State.CLOSED, EndReason.CUSTOMER_DISCONNECTED)
            if not widget.reconnect_enabled:
                return ended(before, State.WRAP_UP, EndReason.CUSTOMER_DISCONNECTED)
            return dataclasses.replace(
                same,
                customer_connected=False,
                reconnect_deadline=now + timedelta(minutes=widget.time_limit_minutes),
            )
        case EventType.CUSTOMER_RECONNECTED:
            if state not in LIVE:
                return REFUSED
            if connected:
                return UNCHANGED
            deadline = before.reconnect_deadline
            if deadline is not None and now < deadline:
                return dataclasses.replace(same, customer_connected=True, reconnect_deadline=None)
            return REFUSED
        case EventType.AGENT_ENDED:
            if state is State.ACTIVE:
                return ended(before, State.WRAP_UP, EndReason.AGENT_ENDED)
            return REFUSED
        case EventType.CUSTOMER_ENDED:
            if state is State.OPEN:
                return ended(before, State.CLOSED, EndReason.CUSTOMER_ENDED)
            if state is State.ACTIVE:
                return ended(before, State.WRAP_UP, EndReason.CUSTOMER_ENDED)
            return REFUSED
        case EventType.AGENT_CLOSED:
            if state is State.ACTIVE:
                return dataclasses.replace(same, state=State.OPEN, agent_id=None)
            if state is State.WRAP_UP:
                return ended(before, State.CLOSED, EndReason.AGENT_CLOSED)
            return REFUSED
    raise AssertionError(event)


def expected_timer(
    before: Conversation, now: datetime, auto_close: timedelta, wrap_up_since: datetime | None
) -> Expected | None:
    """The timer rows of contract §2.2: deadline passed, or a wrap-up older than auto-close."""
    deadline = before.reconnect_deadline
    if before.state in LIVE and not before.customer_connected:
        assert deadline is not None
        if now >= deadline:
            target = State.WRAP_UP if before.state is State.ACTIVE else State.CLOSED
            return ended(before, target, EndReason.RECONNECT_TIMEOUT)
    if before.state is State.WRAP_UP:
        assert wrap_up_since is not None
        if now >= wrap_up_since + auto_close:
            return ended(before, State.CLOSED, EndReason.AUTO_CLOSED)
    return None


def expected_can_continue(before: Conversation, widget: WidgetSettings, now: datetime) -> bool:
    """contract §2.2 "A reconnect succeeds only if all hold" (link and auth checks aside)."""
    if not widget.reconnect_enabled or widget.widget_id != before.widget_id:
        return False
    if before.state not in LIVE:
        return False
    if before.customer_connected:
        return True
    return before.reconnect_deadline is not None and now < before.reconnect_deadline


# --- invariants ----------------------------------------------------------------------------


def check_invariants(model: Model) -> None:
    c = model.conversation
    # Capacity: held iff active with an agent; and, the product rule, only ever in active.
    assert c.holds_capacity == (c.state is State.ACTIVE and c.agent_id is not None)
    assert c.holds_capacity == (c.state is State.ACTIVE)
    if c.state is State.OPEN:
        assert c.agent_id is None
    # A deadline exists iff the customer is disconnected within the window.
    assert (c.reconnect_deadline is not None) == (c.state in LIVE and not c.customer_connected)
    # endReason is null exactly while open or active.
    assert (c.end_reason is None) == (c.state in LIVE)
    if c.customer_connected:
        assert c.disconnected_at is None
        assert c.state in LIVE
    if c.reconnect_deadline is not None:
        assert c.disconnected_at is not None
        assert model.limit_at_disconnect is not None
        assert c.reconnect_deadline == c.disconnected_at + model.limit_at_disconnect
    assert c.state is not State.WAITING
    assert c.created_at <= c.updated_at
    assert len(c.event_ids) == len(set(c.event_ids)) <= EVENT_ID_MEMORY
    assert c.link_epoch == 0


def check_step(before: Model, after: Model, now: datetime) -> None:
    b, a = before.conversation, after.conversation
    assert a.updated_at >= b.updated_at
    assert a.updated_at <= now
    # Closed is terminal: nothing moves a closed conversation, not even its timestamps.
    if b.state is State.CLOSED:
        assert a == b
    # Wrap-up only ever goes on to closed.
    if b.state is State.WRAP_UP:
        assert a.state in ENDED_STATES
    # The reconnect window is never extended (nor shortened) while it is open.
    if b.reconnect_deadline is not None and a.reconnect_deadline is not None:
        assert a.reconnect_deadline == b.reconnect_deadline
        assert a.disconnected_at == b.disconnected_at
    # Every change the platform can see names its integration event (contract §5); the
    # rest (an eventId merely remembered) names none. what_happened raises on a change
    # the contract has no event for.
    happened = what_happened(b, a, Via.PLATFORM)
    assert (happened is None) == (dataclasses.replace(a, event_ids=b.event_ids) == b)
    # Identity never changes.
    assert (a.conversation_id, a.widget_id, a.customer_key, a.created_at) == (
        b.conversation_id,
        b.widget_id,
        b.customer_key,
        b.created_at,
    )


# --- the replay ----------------------------------------------------------------------------


def run_step(model: Model, step: Step, now: datetime, auto_close: timedelta) -> Model:
    """Apply one step to the model's conversation, checking it against the contract (§2.2)."""
    before = model.conversation
    snapshot = dataclasses.replace(before)
    widget = WidgetSettings(
        widget_id="widget-2" if step.other_widget else WIDGET,
        reconnect_enabled=step.reconnect_enabled,
        time_limit_minutes=step.time_limit_minutes,
        portal_url="https://contoso.example/support",
    )
    home_widget = dataclasses.replace(widget, widget_id=WIDGET)
    continuable = can_continue(before, widget, now)
    assert continuable == expected_can_continue(before, widget, now)

    after = before
    limit = model.limit_at_disconnect
    if step.action == "enforce":
        expected = expected_timer(before, now, auto_close, model.wrap_up_since)
        outcome = enforce(before, now, auto_close)
        if expected is None:
            assert outcome is None
        else:
            assert outcome is not None
            assert observe(outcome) == expected
            assert outcome.updated_at == now
            after = outcome
    elif step.action == "continue":
        if continuable:
            after = continue_conversation(before, now)
            assert after.customer_connected
            assert after.reconnect_deadline is None
            assert (after.state, after.agent_id) == (before.state, before.agent_id)
            assert after.holds_capacity == before.holds_capacity
            # What lets ConversationWriter.continue_in_place skip every index step: the
            # capacity and customer rows depend on nothing a continue changes, and a
            # connected customer has no due time (so no due row to write or snapshot).
            assert after.customer_key == before.customer_key
            assert due_at(after, auto_close) is None
    elif step.action == "decline":
        if continuable:
            after = decline(before, now)
            target = State.WRAP_UP if before.state is State.ACTIVE else State.CLOSED
            assert observe(after) == ended(before, target, EndReason.CUSTOMER_DECLINED)
    else:
        event = Event(type=EventType(step.action), agent_id=step.agent_id)
        expected_outcome = expected_event(before, event, home_widget, now)
        if expected_outcome == REFUSED:
            with pytest.raises(InvalidTransition) as refused:
                apply_event(before, event, home_widget, now)
            assert refused.value.state == before.state.value
            # A refused event changes nothing and records nothing.
            assert before == snapshot
        else:
            after = apply_event(before, event, home_widget, now)
            if expected_outcome == UNCHANGED:
                assert after is before
            else:
                assert isinstance(expected_outcome, Expected)
                assert observe(after) == expected_outcome
                assert after.updated_at == now
            if (
                event.type is EventType.CUSTOMER_DISCONNECTED
                and after.reconnect_deadline is not None
                and before.reconnect_deadline is None
            ):
                limit = home_widget.time_limit
            after = remember_event(after, step.event_id)
            if step.event_id is not None:
                assert step.event_id in after.event_ids

    wrap_up_since = model.wrap_up_since
    if after.state is State.WRAP_UP and before.state is not State.WRAP_UP:
        wrap_up_since = now
    return Model(conversation=after, wrap_up_since=wrap_up_since, limit_at_disconnect=limit)


def scripted(action: str) -> Step:
    return Step(action, None, None, ("seconds", 30), True, 10, False)


# Where stories start, so that the rarer states (re-queued while disconnected above all)
# are explored as much as the common ones. The openings are replayed and checked too.
OPENINGS: dict[str, tuple[bool, list[Step]]] = {
    "queued": (False, []),
    "active": (True, []),
    "disconnected": (True, [scripted("customer_disconnected")]),
    "requeued_disconnected": (
        True,
        [scripted("customer_disconnected"), scripted("agent_closed")],
    ),
    "requeued_connected": (True, [scripted("agent_closed")]),
}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    opening=st.sampled_from(sorted(OPENINGS)),
    auto_close_minutes=st.sampled_from([1, 15]),
    story=st.lists(steps, min_size=5, max_size=40),
)
def test_random_lifecycles_keep_the_invariants(
    opening: str, auto_close_minutes: int, story: list[Step]
) -> None:
    auto_close = timedelta(minutes=auto_close_minutes)
    assigned, prefix = OPENINGS[opening]
    now = T0
    model = Model(new_conversation("conv-1", WIDGET, "agent-1" if assigned else None, "k", now))
    check_invariants(model)
    for step in [*prefix, *story]:
        now = advance(now, step, model, auto_close)
        after = run_step(model, step, now, auto_close)
        check_step(model, after, now)
        check_invariants(after)
        model = after


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    story=st.lists(steps, min_size=1, max_size=30),
    tail=st.lists(steps, min_size=1, max_size=15),
)
def test_closed_is_terminal(story: list[Step], tail: list[Step]) -> None:
    """Whatever led to closed, no later event, continue, decline or timer run changes it."""
    auto_close = timedelta(minutes=15)
    now = T0
    model = Model(new_conversation("conv-1", WIDGET, "agent-1", "k", now))
    for step in story:
        now = advance(now, step, model, auto_close)
        model = run_step(model, step, now, auto_close)
    # Close it for sure: end (if still live), then let the timer auto-close the wrap-up.
    conversation = model.conversation
    if conversation.state in LIVE:
        conversation = apply_event(conversation, Event(EventType.CUSTOMER_ENDED), _widget(), now)
        if conversation.state is State.WRAP_UP:
            model = Model(conversation, now, model.limit_at_disconnect)
    if conversation.state is State.WRAP_UP:
        assert model.wrap_up_since is not None
        now = max(now, model.wrap_up_since + auto_close)
        closed = enforce(conversation, now, auto_close)
        assert closed is not None
        conversation = closed
    assert conversation.state is State.CLOSED
    final = conversation
    model = Model(final, model.wrap_up_since, None)
    for step in tail:
        now = advance(now, step, model, auto_close)
        model = run_step(model, step, now, auto_close)
        assert model.conversation == final
        assert not can_continue(model.conversation, _widget(), now)


def _widget() -> WidgetSettings:
    return WidgetSettings(widget_id=WIDGET, reconnect_enabled=True, time_limit_minutes=10)
