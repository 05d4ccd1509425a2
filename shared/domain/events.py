"""Integration events as pure rules (contract §5): what a stored change tells the platform,
the per-conversation sequence and ring of change ids, and the relay's judgement of a staged
event against the stored conversation. No I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain.conversation import Conversation, State

# How many change ids a conversation remembers, oldest first; the last belongs to its
# `sequence`. A staged event whose sequence fell out of this ring cannot be verified: the
# relay drops it and logs an error (64 changes of one conversation within the few seconds an
# event waits in the outbox does not happen in a live chat).
CHANGE_ID_MEMORY = 64
# The length of a change id: 16 random bytes as unpadded base64url.
CHANGE_ID_LENGTH = 22
# The sequence of a registration, and of conversations stored before events existed.
FIRST_SEQUENCE = 1
# Longer than any request can run (SDK timeouts and bounded retries): a staged event whose
# change is not stored after this long never will be.
MAX_WRITE_SECONDS = 300


class Via(StrEnum):
    """Who made a change."""

    PLATFORM = "platform"
    WIDGET = "widget"
    TIMER = "timer"


class Verdict(StrEnum):
    """What the relay does with a staged event."""

    SEND = "send"  # its change is stored: deliver it
    WAIT = "wait"  # its change may still be stored: look again shortly
    DROP = "drop"  # its change lost a race or was never stored: never deliver it
    FORGOTTEN = "forgotten"  # its sequence fell out of the ring: dropped, and worth an error


# What a change can be (the `<what>` of its event type) -> who can make it (`data.via`).
# `what_happened` names the first from the states; the callers pass the second.
WHO_CAN: Mapping[str, tuple[Via, ...]] = {
    "registered": (Via.PLATFORM,),
    "agent_assigned": (Via.PLATFORM,),
    "customer_disconnected": (Via.PLATFORM,),
    # The platform's event, or the widget's continue: the same change either way.
    "customer_reconnected": (Via.PLATFORM, Via.WIDGET),
    "agent_ended": (Via.PLATFORM,),
    "customer_ended": (Via.PLATFORM,),
    "agent_closed": (Via.PLATFORM,),
    "customer_declined": (Via.WIDGET,),
    "link_revoked": (Via.PLATFORM,),
    "reconnect_timeout": (Via.TIMER,),
    "auto_closed": (Via.TIMER,),
}


@dataclass(frozen=True)
class Happened:
    """What a stored change means to the platform: the `<what>` of the event type, who did
    it, the state before it (None for a registration) and the agent whose capacity it
    released (None if none)."""

    what: str
    via: Via
    previous_state: State | None
    capacity_released: str | None


def _visible(conversation: Conversation) -> Conversation:
    """The conversation without the bookkeeping that alone is no change to report."""
    return dataclasses.replace(conversation, event_ids=(), sequence=0, change_ids=())


def what_happened(before: Conversation | None, after: Conversation, via: Via) -> Happened | None:
    """The event a change from `before` (None: registration) to `after` emits, or None when
    nothing the platform sees changed (a no-op event whose eventId was merely recorded)."""
    if before is None:
        return Happened("registered", via, None, None)
    if _visible(before) == _visible(after):
        return None
    released = (
        before.agent_id
        if before.holds_capacity
        and not (after.holds_capacity and after.agent_id == before.agent_id)
        else None
    )
    return Happened(_what(before, after), via, before.state, released)


def _what(before: Conversation, after: Conversation) -> str:
    # Every move into wrap_up or closed records why, and the reasons are named like the
    # events (customer_declined, reconnect_timeout, auto_closed, agent_closed, ...).
    if after.state is not before.state and after.state in (State.WRAP_UP, State.CLOSED):
        assert after.end_reason is not None
        return after.end_reason.value
    if before.state is State.OPEN and after.state is State.ACTIVE:
        return "agent_assigned"
    if before.state is State.ACTIVE and after.state is State.OPEN:
        return "agent_closed"
    if before.customer_connected and not after.customer_connected:
        return "customer_disconnected"
    if not before.customer_connected and after.customer_connected:
        return "customer_reconnected"
    if after.link_epoch != before.link_epoch:
        return "link_revoked"
    raise ValueError("a change the contract names no event for")


def record_change(before: Conversation | None, after: Conversation, change_id: str) -> Conversation:
    """`after` as the next stored change of `before`: sequence + 1 (FIRST_SEQUENCE for a
    registration) and `change_id` appended to the ring."""
    if before is None:
        return dataclasses.replace(after, sequence=FIRST_SEQUENCE, change_ids=(change_id,))
    ring = (*before.change_ids, change_id)[-CHANGE_ID_MEMORY:]
    return dataclasses.replace(after, sequence=before.sequence + 1, change_ids=ring)


def judge(
    change_id: str,
    sequence: int,
    staged_at: datetime,
    stored: Conversation | None,
    now: datetime,
) -> Verdict:
    """Whether the change a staged event describes is stored (SEND), lost (DROP, or
    FORGOTTEN past the ring) or may still be stored by a write under way (WAIT)."""
    if stored is None or stored.sequence < sequence:
        waited = now - staged_at
        return Verdict.WAIT if waited < timedelta(seconds=MAX_WRITE_SECONDS) else Verdict.DROP
    back = stored.sequence - sequence
    if back >= len(stored.change_ids):
        return Verdict.FORGOTTEN
    return Verdict.SEND if stored.change_ids[-1 - back] == change_id else Verdict.DROP
