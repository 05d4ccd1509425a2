"""The timer's use case: wrap up expired sessions and auto-close old wrap-ups (contract §3 "Timer").

Works from the `due` index only: the buckets from the checkpoint to the current minute,
so its cost grows with what is due, not with what is stored. Every outcome is a
conditional write decided by the pure domain; a reconnect that wins the race is left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from shared.domain import conversation as domain
from shared.domain.conversation import Conversation, State
from shared.services.relay import EventRelay
from shared.services.retry import AGAIN, Retry, retry_lost_races
from shared.services.writes import ConversationWriter, Expiry
from shared.storage.entities import DueRow, Versioned, bucket_before, due_bucket
from shared.storage.store import TableStore
from shared.storage.table_wire import MAX_OPERATIONS

logger = logging.getLogger(__name__)

# Writers always put due rows at least a minute ahead of their clock; this margin
# covers clock skew between instances before the checkpoint passes a bucket.
CHECKPOINT_MARGIN_MINUTES = 2
FIRST_BUCKET = "000000000000"
# Concurrent requests of one run: against Table storage a request is mostly waiting.
TIMER_WORKERS = 8


class RowOutcome(Enum):
    EXPIRED = "expired"
    CLOSED = "closed"
    STALE = "stale"
    PENDING = "pending"


@dataclass(frozen=True)
class RowResult:
    """What the timer did with one due row; `outcome` None when the row could not be
    handled (it stays for the next run)."""

    outcome: RowOutcome | None
    # The agent whose capacity row to drop, if any.
    release: str | None = None
    lateness: float = 0.0


# A row that could not be handled: it stays indexed for the next run.
FAILED = RowResult(None)


@dataclass
class EnforcementReport:
    """What one timer run did; logged as one structured line."""

    expired: int = 0
    closed: int = 0
    stale: int = 0
    pending: int = 0
    max_lateness_seconds: float = 0.0
    duration_seconds: float = 0.0
    first_bucket: str = ""
    last_bucket: str = ""
    past_due: bool = False
    capacity_released: int = 0
    errors: int = 0
    # Rows whose outcome was written but whose index rows could not be cleaned up (the next
    # run finishes it).
    cleanup_errors: int = 0
    # Done rows a writer put again between this run's read and its delete: kept, and judged
    # again by the next run (the checkpoint waits for them).
    renewed: int = 0
    # Capacity checks done (index row made to agree with the conversation), and failed.
    capacity_checked: int = 0
    capacity_check_errors: int = 0
    # Outbox notes (events staged while the outbox queue was down) sent, dropped (their
    # change was never stored), still waiting, left for the next run (public queue down).
    events_sent: int = 0
    events_dropped: int = 0
    events_waiting: int = 0
    events_deferred: int = 0
    event_errors: int = 0

    def count(self, outcome: RowOutcome) -> None:
        """Count one row handled with `outcome`."""
        if outcome is RowOutcome.EXPIRED:
            self.expired += 1
        elif outcome is RowOutcome.CLOSED:
            self.closed += 1
        elif outcome is RowOutcome.STALE:
            self.stale += 1
        else:
            self.pending += 1


class TimeLimitEnforcer:
    """One timer run's work: it reads through a TableStore and writes through the
    ConversationWriter, with the auto-close delay and a clock."""

    def __init__(
        self,
        store: TableStore,
        writer: ConversationWriter,
        *,
        auto_close_after: timedelta,
        clock: Callable[[], datetime],
        relay: EventRelay | None = None,
    ) -> None:
        self.store = store
        self.writer = writer
        self.auto_close_after = auto_close_after
        self.clock = clock
        self.relay = relay

    def run(self, *, past_due: bool = False) -> EnforcementReport:
        """Wrap up expired sessions and auto-close old wrap-ups, from the checkpoint to now.

        Cost grows with the number of due rows, not with the number of conversations:
        only the due-index buckets up to the current minute are read. An expired
        conversation whose due row carries a current snapshot costs one conditional write;
        any other costs one read and one conditional write (see `_judge_row`). The index
        rows around them are written and deleted in batches, chunk by chunk (`_settle`).
        """
        started = time.perf_counter()
        now = self.clock()
        report = EnforcementReport(past_due=past_due)
        report.first_bucket = self.store.get_checkpoint() or FIRST_BUCKET
        report.last_bucket = due_bucket(now)
        rows = self.store.due_rows(report.first_bucket, report.last_bucket)
        with ThreadPoolExecutor(max_workers=TIMER_WORKERS) as pool:
            # A snapshot that says "expired" is decided here, without I/O; only the other
            # rows are read, concurrently.
            snapshots = [self._judge_snapshot(row, now) for row in rows]
            unread = [row for row, verdict in zip(rows, snapshots, strict=True) if not verdict]
            read = iter(pool.map(lambda row: self._judge_row(row, now), unread))
            decided = [
                (row, verdict or next(read)) for row, verdict in zip(rows, snapshots, strict=True)
            ]
            settled = list(
                pool.map(lambda chunk: self._settle(chunk, now), self._chunks(decided, len(rows)))
            )
        lowest_pending = report.last_bucket
        for outcomes, cleaned, renewed in settled:
            for row in renewed:
                report.renewed += 1
                lowest_pending = min(lowest_pending, row.bucket)
            for row, result in outcomes:
                outcome, release, lateness = result.outcome, result.release, result.lateness
                if not cleaned:
                    # Its index rows stay: the next run must read this bucket again.
                    report.cleanup_errors += 1
                    lowest_pending = min(lowest_pending, row.bucket)
                if outcome is None:
                    report.errors += 1
                    lowest_pending = min(lowest_pending, row.bucket)
                    continue
                report.count(outcome)
                if outcome is RowOutcome.PENDING:
                    lowest_pending = min(lowest_pending, row.bucket)
                if release is not None and cleaned:
                    report.capacity_released += 1
                report.max_lateness_seconds = max(report.max_lateness_seconds, lateness)
        self._check_capacity(report)
        self._flush_events(report)
        checkpoint = bucket_before(lowest_pending, CHECKPOINT_MARGIN_MINUTES)
        if checkpoint > report.first_bucket:
            self.store.set_checkpoint(checkpoint)
        report.duration_seconds = round(time.perf_counter() - started, 3)
        return report

    def _chunks(
        self, decided: list[tuple[DueRow, RowResult | Expiry]], total: int
    ) -> list[list[tuple[DueRow, RowResult | Expiry]]]:
        """Split the decided rows into the timer's units of work, one per pool task.

        Sorted by the bucket of the due row each outcome needs and by agent, so that a
        chunk's new due rows make one batch and an agent's capacity rows are mostly
        released together; small enough that every worker gets a share.
        """

        def order(item: tuple[DueRow, RowResult | Expiry]) -> tuple[str, str]:
            _, verdict = item
            if isinstance(verdict, Expiry):
                due = domain.due_at(verdict.outcome, self.auto_close_after)
                return (due_bucket(due) if due else "", verdict.outcome.agent_id or "")
            return ("", verdict.release or "")

        size = max(1, min(MAX_OPERATIONS, -(-total // TIMER_WORKERS)))
        ordered = sorted(decided, key=order)
        return [ordered[start : start + size] for start in range(0, len(ordered), size)]

    def _settle(
        self, chunk: list[tuple[DueRow, RowResult | Expiry]], now: datetime
    ) -> tuple[list[tuple[DueRow, RowResult]], bool, list[DueRow]]:
        """Write one chunk's outcomes and keep the indexes in step: what happened to each
        row, whether the index cleanup succeeded, and the done rows kept because a writer
        put them again since they were read.

        In order: the due rows the outcomes need (a wrap-up's auto-close), in batches and
        before any outcome is written, so that a crash never hides a wrap-up from the timer;
        the outcomes, each conditionally; then, in batches, the released agents' capacity
        rows and the due rows that are done, each only as read (a writer may have renewed
        it for a new due time in the same minute). Never raises: if the cleanup fails, the
        rows stay indexed and the next run finds them stale and finishes it.

        The capacity rows are deleted whatever their version: they are released only for
        a conversation in wrap_up or closed, which never holds an agent again (wrap-up
        only goes on to closed, closed is terminal: tests/unit/test_domain_properties.py),
        so no writer re-creates them.
        """
        try:
            recorded = iter(
                self.writer.stage_outcomes([v for _, v in chunk if isinstance(v, Expiry)])
            )
        except Exception:
            # Neither the outbox queue nor Table storage took the events: write nothing.
            logger.exception("Could not stage the events of the timer's outcomes")
            return [(row, FAILED) for row, _ in chunk], True, []
        chunk = [(row, next(recorded) if isinstance(v, Expiry) else v) for row, v in chunk]
        created = self.writer.create_due_rows(
            verdict for _, verdict in chunk if isinstance(verdict, Expiry)
        )
        outcomes = [(row, self._finish_row(row, verdict, now, created)) for row, verdict in chunk]
        releases: dict[str, list[str]] = {}
        done: list[DueRow] = []
        for row, result in outcomes:
            if result.release is not None:
                releases.setdefault(result.release, []).append(row.conversation_id)
            if result.outcome is not None and result.outcome is not RowOutcome.PENDING:
                done.append(row)
        try:
            renewed = self.writer.release(releases, done)
        except Exception:
            logger.exception("Could not clean up the timer's index rows")
            return outcomes, False, []
        return outcomes, True, renewed

    def _check_capacity(self, report: EnforcementReport) -> None:
        """Make capacity rows agree with their conversations where a write noted a change.

        Runs after this run's own outcomes are written, so it reads them. Checks are read
        from the first bucket on (done ones are deleted), so one that fails simply stays
        for the next run without holding the due checkpoint back.
        """
        checks = self.store.capacity_checks(report.last_bucket)
        if not checks:
            return
        pairs = list(dict.fromkeys((c.conversation_id, c.agent_id) for c in checks))
        with ThreadPoolExecutor(max_workers=TIMER_WORKERS) as pool:
            results = list(pool.map(self._check_capacity_row, pairs))
        failed = {pair for pair, done in zip(pairs, results, strict=True) if not done}
        self.writer.forget_capacity_checks(
            c for c in checks if (c.conversation_id, c.agent_id) not in failed
        )
        report.capacity_checked = len(pairs) - len(failed)
        report.capacity_check_errors = len(failed)

    def _flush_events(self, report: EnforcementReport) -> None:
        """Send the events staged as outbox notes while the outbox queue was down (after this
        run's own outcomes, so their notes are judged against them). Never raises."""
        if self.relay is None:
            return
        try:
            flushed = self.relay.flush_notes()
        except Exception:
            logger.exception("Could not flush the outbox notes")
            report.event_errors += 1
            return
        report.events_sent = flushed.sent
        report.events_dropped = flushed.dropped + flushed.forgotten
        report.events_waiting = flushed.waiting
        report.events_deferred = flushed.deferred

    def _check_capacity_row(self, pair: tuple[str, str]) -> bool:
        """The agent's row for the conversation exists iff the conversation holds the agent."""
        conversation_id, agent_id = pair
        try:
            self.writer.align_capacity_row(conversation_id, agent_id)
        except Exception:
            logger.exception("Could not check the capacity row of one conversation")
            return False
        return True

    def _judge_snapshot(self, row: DueRow, now: datetime) -> Expiry | None:
        """The expiry a due row's snapshot calls for, or None when the row must be read.

        An expiry decided on the snapshot is written conditionally on the snapshot's ETag, so
        it is only ever written over exactly the conversation it was decided on; if the
        conversation changed since, the write fails and `_finish_row` reads and decides again.
        Any other verdict on a snapshot (not yet due, stale) would drop or keep the row without
        a write to prove the snapshot current, so it is confirmed by a read.
        """
        if row.snapshot is None:
            return None
        verdict = self._judge(row, row.snapshot, now)
        return verdict if isinstance(verdict, Expiry) else None

    def _judge_row(self, row: DueRow, now: datetime) -> RowResult | Expiry:
        """Decide one due row on a fresh read of its conversation. Never raises."""
        try:
            return self._judge(row, self.store.get_conversation(row.conversation_id), now)
        except Exception:
            logger.exception("Could not enforce the time limit of one conversation")
            return FAILED

    def _judge(
        self, row: DueRow, found: Versioned[Conversation] | None, now: datetime
    ) -> RowResult | Expiry:
        """What the timer does with one due row, given its conversation (read or snapshot)."""
        if found is None:
            return RowResult(RowOutcome.STALE)
        conversation = found.value
        # Repairs capacity rows that a crash between write and cleanup left behind.
        release = (
            conversation.agent_id
            if conversation.agent_id and not conversation.holds_capacity
            else None
        )
        due = domain.due_at(conversation, self.auto_close_after)
        if due is None or due_bucket(due) != row.bucket:
            return RowResult(RowOutcome.STALE, release)
        outcome = domain.enforce(conversation, now, self.auto_close_after)
        if outcome is None:
            return RowResult(RowOutcome.PENDING)
        return Expiry(found, outcome, (now - due).total_seconds())

    def _finish_row(
        self,
        row: DueRow,
        verdict: RowResult | Expiry,
        now: datetime,
        created: dict[tuple[str, str], str],
    ) -> RowResult:
        """Write one row's decided outcome; `created`: the due rows the batch created.

        Never raises: one bad row must not stop the sweep; it stays indexed for the next run.
        """
        if not isinstance(verdict, Expiry):
            return verdict
        try:
            key = self.writer.due_key(verdict)
            if key is None or key in created:
                written = self._write_expiry(verdict)
                if written is not None:
                    return written
            # A reconnect or event won the race (or the batch failed): decide again.
            result = self._enforce_conversation(row, now)
            if key in created:
                # The row created for the outcome not written: drop it unless someone has
                # upserted it since (the careful path just now, or a writer that needs it).
                self.writer.drop_unused_due_row(key, created[key])
            return result
        except Exception:
            logger.exception("Could not enforce the time limit of one conversation")
            return FAILED

    def _write_expiry(self, expiry: Expiry, *, alone: bool = False) -> RowResult | None:
        """Write a decided outcome if the conversation is unchanged since read, else None;
        `alone`: with the due row it needs (no batch created it)."""
        write = self.writer.write_outcome_alone if alone else self.writer.write_outcome
        if not write(expiry):
            return None
        outcome = expiry.outcome
        kind = RowOutcome.CLOSED if outcome.state is State.CLOSED else RowOutcome.EXPIRED
        return RowResult(kind, outcome.agent_id, expiry.lateness)

    def _enforce_conversation(self, row: DueRow, now: datetime) -> RowResult:
        """One row the careful way: read, decide, write its index rows, write; repeat on a race."""

        def attempt() -> RowResult | Retry:
            verdict = self._judge(row, self.store.get_conversation(row.conversation_id), now)
            if not isinstance(verdict, Expiry):
                return verdict
            written = self._write_expiry(verdict, alone=True)
            return AGAIN if written is None else written

        return retry_lost_races(attempt, "conversation kept changing during enforcement")
