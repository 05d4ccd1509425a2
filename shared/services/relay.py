"""The relay of integration events (contract §5): a staged event goes to the public queue
only once the stored conversation proves its change (its sequence and change id), so none is
invented; staged events wait for a write under way, and outbox notes (staged while the
outbox queue was down) are flushed by the timer, so none stored is lost.

At least once: a relay that dies after sending and before its message is deleted sends the
same events again, with the same ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.domain.conversation import Conversation
from shared.domain.events import Verdict, judge
from shared.services.clock import Clock
from shared.services.outbox import EventOutbox
from shared.storage.entities import Versioned
from shared.storage.outbox import OutboxNote
from shared.storage.queues import QueueUnavailable, StorageQueue
from shared.storage.store import TableStore
from shared.wire.events import (
    StagedEvent,
    encode_message,
    in_sequence_order,
    parse_outbox_message,
    staged_event,
)

logger = logging.getLogger(__name__)

# Seconds a waiting event stays hidden before the relay looks at it again.
WAIT_DELAY_SECONDS = 2
# The relay often takes a message the moment it is staged, before its conditional write
# (tens of milliseconds later) has landed: it looks once more after this pause before
# staging what still waits again, so such an event goes out within a fraction of a second
# instead of after WAIT_DELAY_SECONDS (benchmarks/events.py).
SECOND_LOOK_SECONDS = 0.2
# Outbox notes the timer flushes at most per run (oldest first; the rest next run).
NOTES_PER_RUN = 1000


@dataclass
class RelayReport:
    """What one relay call (or one note flush) did with the events it was given."""

    sent: int = 0
    waiting: int = 0
    dropped: int = 0
    # Dropped because their sequence fell out of the conversation's ring (logged as errors).
    forgotten: int = 0
    # Left for a later timer run (as outbox notes) because the public queue is down.
    deferred: int = 0
    verdicts: dict[str, Verdict] = field(default_factory=dict, repr=False)


class EventRelay:
    """Judges staged events against the stored conversations and sends the proven ones."""

    def __init__(
        self, store: TableStore, outbox: EventOutbox, public: StorageQueue, clock: Clock
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.public = public
        self.clock = clock
        self.wait_delay = WAIT_DELAY_SECONDS
        self.second_look = SECOND_LOOK_SECONDS

    def relay(self, body: object) -> RelayReport:
        """One outbox message's JSON (decoded): send what is stored, in sequence order, stage
        again what may still be stored. While the public queue is down, what is left to send
        becomes outbox notes (the timer sends them); StorageUnavailable only if Table storage
        is down too (the message then stays on the outbox queue and comes back)."""
        try:
            events = parse_outbox_message(body)
        except ValueError:
            # Retrying cannot mend it: logged and let go.
            logger.error("Dropped an outbox message that is not one")
            return RelayReport(dropped=1)
        report = self._judge_all(events)
        self._send_proven(events, report)
        waiting = [s for s in events if report.verdicts[s.change_id] is Verdict.WAIT]
        if waiting and self.second_look > 0:
            time.sleep(self.second_look)
            again = self._judge_all(waiting)
            self._send_proven(waiting, again)
            report.verdicts.update(again.verdicts)
            report.sent += again.sent
            report.deferred += again.deferred
            report.dropped += again.dropped
            report.forgotten += again.forgotten
            report.waiting = again.waiting
            waiting = [s for s in waiting if again.verdicts[s.change_id] is Verdict.WAIT]
        if waiting:
            # Staged again with the first staging time, so that waiting ends (DROP) once no
            # write can still be under way.
            self.outbox.stage_events(
                [s.event for s in waiting], waiting[0].staged_at, delay=self.wait_delay
            )
        return report

    def _send_proven(self, events: Sequence[StagedEvent], report: RelayReport) -> None:
        """Send the events `report` judged SEND, in sequence order; while the public queue is
        down, what is left becomes outbox notes (the timer sends them) rather than failing
        back to the host, which would give up on the message after a few attempts (poison
        queue). Corrects `report.sent` and `report.deferred` to what happened."""
        proven = [
            s for s in in_sequence_order(events) if report.verdicts[s.change_id] is Verdict.SEND
        ]
        for index, staged in enumerate(proven):
            try:
                self.public.send(encode_message(staged.event))
            except QueueUnavailable:
                self.store.put_outbox_notes(staged.staged_at, [s.event for s in proven[index:]])
                report.deferred = len(proven) - index
                report.sent = index
                return

    def flush_notes(self) -> RelayReport:
        """The timer's part: send the outbox notes whose change is stored, oldest first, and
        delete those sent or dropped (each only as read); notes still waiting stay, and so
        does everything once the public queue proves down (next run)."""
        notes = self.store.outbox_notes(NOTES_PER_RUN)
        if not notes:
            return RelayReport()
        by_id: dict[str, OutboxNote] = {}
        events: list[StagedEvent] = []
        for note in notes:
            try:
                staged = staged_event(note.event, note.staged_at)
            except (KeyError, TypeError, ValueError):
                logger.error("Dropped an outbox note that is not an event")
                self.store.delete_outbox_notes([note])
                continue
            by_id[staged.change_id] = note
            events.append(staged)
        report = self._judge_all(events)
        to_send = report.sent
        report.sent = 0
        done: list[OutboxNote] = []
        for staged in in_sequence_order(events):
            verdict = report.verdicts[staged.change_id]
            if verdict is Verdict.SEND:
                try:
                    self.public.send(encode_message(staged.event))
                except QueueUnavailable:
                    # Still down: the rest waits for the next run (order kept per conversation).
                    report.deferred = to_send - report.sent
                    break
                report.sent += 1
            if verdict is not Verdict.WAIT:
                done.append(by_id[staged.change_id])
        self.store.delete_outbox_notes(done)
        return report

    def _judge_all(self, events: Sequence[StagedEvent]) -> RelayReport:
        """Each event's verdict, reading each named conversation once."""
        now = self.clock()
        stored: dict[str, Versioned[Conversation] | None] = {}
        report = RelayReport()
        for staged in events:
            if staged.conversation_id not in stored:
                stored[staged.conversation_id] = self.store.get_conversation(staged.conversation_id)
            found = stored[staged.conversation_id]
            verdict = judge(
                staged.change_id,
                staged.sequence,
                staged.staged_at,
                None if found is None else found.value,
                now,
            )
            report.verdicts[staged.change_id] = verdict
            if verdict is Verdict.SEND:
                report.sent += 1
            elif verdict is Verdict.WAIT:
                report.waiting += 1
            elif verdict is Verdict.FORGOTTEN:
                report.forgotten += 1
                logger.error(
                    "Dropped an event whose change fell out of its conversation's memory "
                    "(sequence %d)",
                    staged.sequence,
                )
            else:
                report.dropped += 1
        return report
