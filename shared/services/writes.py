"""THE write path of a conversation and its index rows: nothing else writes them.

The conversation entity is the source of truth; the `due`, `capacity` and `customers`
rows are indexes. Every change keeps one order, so that a crash between any two steps
leaves nothing the timer cannot find or repair:

1. a capacity-check note, when the change moves an agent's capacity (the timer later makes
   the capacity row agree with the conversation, whatever happens next);
2. the index rows the new state needs (its due row, its capacity row, its customer row),
   so a crash never hides the conversation from the timer or the prompt;
3. the change's integration event staged (shared.services.outbox), then the conditional
   write of the conversation (ETag or insert): the commit point. The write records the
   change's `sequence` and id, so the relay sends a staged event only for a stored change;
4. the due-row snapshot (best effort: it only saves the timer a read);
5. the index rows the old state had and the new one no longer needs, removed.

A lost race (step 3 fails) deletes the loser's staged event (best effort: the relay would
drop it), drops the capacity row step 2 wrote for the loser unless the winner holds it too,
and tells the caller to decide again on the winner's state; the bounded retry around it is
`shared.services.retry`.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from shared.domain import conversation as domain
from shared.domain.conversation import Conversation, State
from shared.domain.errors import UnknownConversation
from shared.domain.events import Happened, Via, record_change, what_happened
from shared.services.clock import Clock
from shared.services.outbox import NOTHING_STAGED, EventOutbox, Staged
from shared.services.retry import AGAIN, Retry, retry_lost_races
from shared.storage.entities import CapacityCheck, DueRow, Versioned, due_bucket
from shared.storage.store import TableStore
from shared.storage.tables import ConcurrencyConflict

logger = logging.getLogger(__name__)

# How long after a write that moves an agent's capacity the timer checks the agent's index
# row (see _note_capacity_change): the bucket of now + 2 min is read from the next minute
# on, by when the request that wrote it has long finished (SDK retries are bounded).
CAPACITY_CHECK_DELAY = timedelta(minutes=2)
# The detail of the 503 when a conversation kept changing under a use case.
CHANGING_TOO_FAST = "The conversation is changing too fast; retry shortly."


@dataclass(frozen=True)
class Expiry:
    """A change the timer decided on and has still to write (conditionally)."""

    found: Versioned[Conversation]
    outcome: Conversation
    lateness: float


class ConversationWriter:
    """Every write of a conversation and of its index rows, in the order that makes a
    crash safe (see the module's docstring)."""

    def __init__(
        self,
        store: TableStore,
        *,
        auto_close_after: timedelta,
        clock: Clock,
        outbox: EventOutbox | None = None,
    ) -> None:
        self.store = store
        self.auto_close_after = auto_close_after
        self.clock = clock
        # None: integration events are off (sequence and change ids are kept all the same).
        self.outbox = outbox

    # --- reading before a change --------------------------------------------------------

    def read(self, conversation_id: str) -> Versioned[Conversation]:
        """The stored conversation and its ETag; UnknownConversation if there is none."""
        found = self.store.get_conversation(conversation_id)
        if found is None:
            raise UnknownConversation(conversation_id)
        return found

    # --- one change at a time (requests) ------------------------------------------------

    def mutate(
        self,
        conversation_id: str,
        decide: Callable[[Conversation], Conversation],
        via: Via = Via.PLATFORM,
    ) -> Conversation:
        """Read, decide, write conditionally; on a lost race decide again on the winner's state."""

        def attempt() -> Conversation | Retry:
            found = self.read(conversation_id)
            changed = decide(found.value)
            if changed is found.value:
                return changed
            stored = self._write(found, changed, via)
            return AGAIN if stored is None else stored

        return retry_lost_races(attempt, CHANGING_TOO_FAST)

    def insert(self, created: Conversation) -> Conversation | None:
        """Store a new conversation with the index rows it needs: the conversation as stored
        (its first sequence recorded), or None if one with its id was stored meanwhile (the
        caller compares with that one)."""
        created, staged = self._record_and_stage(None, created, Via.PLATFORM)
        self._note_capacity_change(None, created)
        self._prepare_indexes(None, created)
        try:
            self.store.insert_conversation(created)
        except ConcurrencyConflict:
            self._withdraw(staged)
            return None
        return created

    def write(
        self, found: Versioned[Conversation], changed: Conversation, via: Via = Via.PLATFORM
    ) -> bool:
        """Write `changed` over `found` if nobody else wrote first, keeping indexes in step."""
        return self._write(found, changed, via) is not None

    def _write(
        self, found: Versioned[Conversation], changed: Conversation, via: Via
    ) -> Conversation | None:
        """`write`, answering the conversation as stored (None on a lost race)."""
        before = found.value
        changed, staged = self._record_and_stage(before, changed, via)
        self._note_capacity_change(before, changed)
        self._prepare_indexes(before, changed)
        try:
            etag = self.store.replace_conversation(changed, found.etag)
        except ConcurrencyConflict:
            self._withdraw(staged)
            self._drop_losers_capacity(before, changed)
            return None
        self._snapshot_due(before, changed, etag)
        self._settle_indexes(before, changed)
        return changed

    def continue_in_place(self, found: Versioned[Conversation], continued: Conversation) -> bool:
        """The continue shortcut: one conditional write, no index step; False on a lost race.

        Safe because a continue changes no index row's need: it keeps the state, the agent
        and the customer (so capacity and customer rows stay as they are, and no capacity
        note is due), and a connected customer has no due time, so there is no due row to
        write or snapshot. The deadline's old due row stays; the timer finds it stale and
        drops it. `tests/unit/test_domain_properties.py` pins that claim on the domain. Its
        event is staged like any other change's: one request more (contract §5).
        """
        continued, staged = self._record_and_stage(found.value, continued, Via.WIDGET)
        try:
            self.store.replace_conversation(continued, found.etag)
        except ConcurrencyConflict:
            self._withdraw(staged)
            return False
        return True

    # --- many changes at a time (the timer) ---------------------------------------------

    def create_due_rows(self, expiries: Iterable[Expiry]) -> dict[tuple[str, str], str]:
        """Step 2 for a batch of the timer's outcomes: their due rows (a wrap-up's auto-close),
        created in batches; the ETag of each created, by (bucket, conversationId).

        A row left out (its batch failed) is written alone before its outcome (careful path).
        """
        rows = [
            (due, outcome.outcome.conversation_id)
            for outcome in expiries
            if (due := domain.due_at(outcome.outcome, self.auto_close_after))
        ]
        try:
            return self.store.put_due_rows(rows)
        except Exception:
            logger.exception("Could not write the timer's new due rows in batches")
            return {}

    def stage_outcomes(self, expiries: Sequence[Expiry]) -> list[Expiry]:
        """Step 3's staging for a batch of the timer's outcomes: each recorded as its
        conversation's next change, and all their events staged together (as few outbox
        messages as their size needs), before any is written. An outcome that then loses
        its race leaves its event to the relay, which drops it."""
        recorded = [
            dataclasses.replace(
                expiry,
                outcome=record_change(expiry.found.value, expiry.outcome, new_change_id()),
            )
            for expiry in expiries
        ]
        changes = []
        for expiry in recorded:
            happened = what_happened(expiry.found.value, expiry.outcome, Via.TIMER)
            if happened is not None:
                changes.append((expiry.outcome, happened))
        self._stage(changes)
        return recorded

    def due_key(self, outcome: Expiry) -> tuple[str, str] | None:
        """(bucket, conversationId) of the due row an outcome needs, or None."""
        due = domain.due_at(outcome.outcome, self.auto_close_after)
        return None if due is None else (due_bucket(due), outcome.outcome.conversation_id)

    def write_outcome(self, outcome: Expiry) -> bool:
        """Step 3 and the customer row of step 5 for one timer outcome staged by
        `stage_outcomes`, if the conversation is unchanged since read; the capacity rows it
        releases are removed in batches later (`release`)."""
        try:
            self.store.replace_conversation(outcome.outcome, outcome.found.etag)
        except ConcurrencyConflict:
            return False
        self._settle_customer(outcome.found.value, outcome.outcome)
        return True

    def write_outcome_alone(self, outcome: Expiry) -> bool:
        """Steps 2 and 3 for one outcome not staged or prepared in a batch (the careful path)."""
        recorded, staged = self._record_and_stage(outcome.found.value, outcome.outcome, Via.TIMER)
        outcome = dataclasses.replace(outcome, outcome=recorded)
        due = domain.due_at(outcome.outcome, self.auto_close_after)
        if due is not None and due != domain.due_at(outcome.found.value, self.auto_close_after):
            self.store.put_due(due, outcome.outcome.conversation_id)
        if self.write_outcome(outcome):
            return True
        self._withdraw(staged)
        return False

    def drop_unused_due_row(self, key: tuple[str, str], etag: str) -> None:
        """Undo step 2 for an outcome not written: drop the row a batch created for it,
        unless someone has upserted it since (the careful path, or a writer that needs it)."""
        self.store.delete_due_if_unchanged(*key, etag)

    def release(self, releases: Mapping[str, list[str]], done: Iterable[DueRow]) -> list[DueRow]:
        """Step 5 for a batch: the released agents' capacity rows and the due rows done,
        each due row only as the timer read it; the rows kept because a writer renewed them.

        The capacity rows are deleted whatever their version: they are released only for a
        conversation in wrap_up or closed, which never holds an agent again, so no writer
        re-creates them.
        """
        for agent_id, conversation_ids in releases.items():
            self.store.delete_capacity(agent_id, conversation_ids)
        return self.store.delete_due(done)

    def align_capacity_row(self, conversation_id: str, agent_id: str) -> None:
        """The agent's row for the conversation exists iff the conversation holds the agent."""
        found = self.store.get_conversation(conversation_id)
        if found and found.value.holds_capacity and found.value.agent_id == agent_id:
            self.store.put_capacity(agent_id, conversation_id)
        else:
            self.store.delete_capacity(agent_id, [conversation_id])

    def forget_capacity_checks(self, checks: Iterable[CapacityCheck]) -> None:
        """Remove capacity-check notes the timer has done, each only as read (a note written
        again meanwhile stays for the next run)."""
        self.store.delete_capacity_checks(checks)

    # --- the steps ----------------------------------------------------------------------

    def _record_and_stage(
        self, before: Conversation | None, after: Conversation, via: Via
    ) -> tuple[Conversation, Staged]:
        """`after` as the next stored change of `before`, its event staged; unchanged (and
        nothing staged) when the platform would see no change (an eventId merely recorded)."""
        happened = what_happened(before, after, via)
        if happened is None:
            return after, NOTHING_STAGED
        recorded = record_change(before, after, new_change_id())
        return recorded, self._stage([(recorded, happened)])

    def _stage(self, changes: Sequence[tuple[Conversation, Happened]]) -> Staged:
        if self.outbox is None or not changes:
            return NOTHING_STAGED
        return self.outbox.stage(changes)

    def _withdraw(self, staged: Staged) -> None:
        if self.outbox is not None and staged.receipts:
            self.outbox.withdraw(staged)

    def _drop_losers_capacity(self, before: Conversation, changed: Conversation) -> None:
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
        self._settle_customer(before, after)

    def _settle_customer(self, before: Conversation, after: Conversation) -> None:
        """Closing deletes the customer row: a closed conversation is never offered again."""
        if after.state is State.CLOSED and before.state is not State.CLOSED:
            self.store.delete_customer(after)


def new_change_id() -> str:
    """A change's (and its event's) id: 16 random bytes, unpadded base64url (22 characters)."""
    return secrets.token_urlsafe(16)


def _newly_holds(before: Conversation | None, after: Conversation) -> bool:
    """True when `after` holds an agent's capacity that `before` did not."""
    return after.holds_capacity and not (
        before is not None and before.holds_capacity and before.agent_id == after.agent_id
    )
