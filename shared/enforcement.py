"""The timer's use case: wrap up expired sessions and auto-close old wrap-ups (SPEC 3 "Timer").

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

from shared import domain
from shared.domain import Conversation, State
from shared.errors import ConcurrencyExhausted
from shared.store import (
    MAX_WRITE_ATTEMPTS,
    ConcurrencyConflict,
    DueRow,
    TableStore,
    Versioned,
    bucket_before,
    due_bucket,
)
from shared.table_wire import MAX_OPERATIONS

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


# What the timer did with one due row: (outcome, agent whose capacity row to drop, seconds
# late); outcome None when the row could not be handled (it stays for the next run).
RowResult = tuple[RowOutcome | None, str | None, float]


@dataclass(frozen=True)
class _Expiry:
    """An outcome the timer decided on and has still to write (conditionally)."""

    found: Versioned[Conversation]
    outcome: Conversation
    lateness: float


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


class TimeLimitEnforcer:
    """One timer run's work over a TableStore, with the auto-close delay and a clock."""

    def __init__(
        self,
        store: TableStore,
        *,
        auto_close_after: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.auto_close_after = auto_close_after
        self.clock = clock

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
            for row, (outcome, release, lateness) in outcomes:
                if not cleaned:
                    # Its index rows stay: the next run must read this bucket again.
                    report.cleanup_errors += 1
                    lowest_pending = min(lowest_pending, row.bucket)
                if outcome is None:
                    report.errors += 1
                    lowest_pending = min(lowest_pending, row.bucket)
                    continue
                setattr(report, outcome.value, getattr(report, outcome.value) + 1)
                if outcome is RowOutcome.PENDING:
                    lowest_pending = min(lowest_pending, row.bucket)
                if release is not None and cleaned:
                    report.capacity_released += 1
                report.max_lateness_seconds = max(report.max_lateness_seconds, lateness)
        self._check_capacity(report)
        checkpoint = bucket_before(lowest_pending, CHECKPOINT_MARGIN_MINUTES)
        if checkpoint > report.first_bucket:
            self.store.set_checkpoint(checkpoint)
        report.duration_seconds = round(time.perf_counter() - started, 3)
        return report

    def _chunks(
        self, decided: list[tuple[DueRow, RowResult | _Expiry]], total: int
    ) -> list[list[tuple[DueRow, RowResult | _Expiry]]]:
        """Split the decided rows into the timer's units of work, one per pool task.

        Sorted by the bucket of the due row each outcome needs and by agent, so that a
        chunk's new due rows make one batch and an agent's capacity rows are mostly
        released together; small enough that every worker gets a share.
        """

        def order(item: tuple[DueRow, RowResult | _Expiry]) -> tuple[str, str]:
            _, verdict = item
            if isinstance(verdict, _Expiry):
                due = domain.due_at(verdict.outcome, self.auto_close_after)
                return (due_bucket(due) if due else "", verdict.outcome.agent_id or "")
            return ("", verdict[1] or "")

        size = max(1, min(MAX_OPERATIONS, -(-total // TIMER_WORKERS)))
        ordered = sorted(decided, key=order)
        return [ordered[start : start + size] for start in range(0, len(ordered), size)]

    def _settle(
        self, chunk: list[tuple[DueRow, RowResult | _Expiry]], now: datetime
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
        created = self._put_due_rows(
            [
                (due, verdict.outcome.conversation_id)
                for _, verdict in chunk
                if isinstance(verdict, _Expiry)
                and (due := domain.due_at(verdict.outcome, self.auto_close_after))
            ]
        )
        outcomes = [(row, self._finish_row(row, verdict, now, created)) for row, verdict in chunk]
        releases: dict[str, list[str]] = {}
        done: list[DueRow] = []
        for row, (outcome, release, _) in outcomes:
            if release is not None:
                releases.setdefault(release, []).append(row.conversation_id)
            if outcome is not None and outcome is not RowOutcome.PENDING:
                done.append(row)
        try:
            for agent_id, conversation_ids in releases.items():
                self.store.delete_capacity(agent_id, conversation_ids)
            renewed = self.store.delete_due(done)
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
        self.store.delete_capacity_checks(
            c for c in checks if (c.conversation_id, c.agent_id) not in failed
        )
        report.capacity_checked = len(pairs) - len(failed)
        report.capacity_check_errors = len(failed)

    def _check_capacity_row(self, pair: tuple[str, str]) -> bool:
        """The agent's row for the conversation exists iff the conversation holds the agent."""
        conversation_id, agent_id = pair
        try:
            found = self.store.get_conversation(conversation_id)
            if found and found.value.holds_capacity and found.value.agent_id == agent_id:
                self.store.put_capacity(agent_id, conversation_id)
            else:
                self.store.delete_capacity(agent_id, [conversation_id])
        except Exception:
            logger.exception("Could not check the capacity row of one conversation")
            return False
        return True

    def _put_due_rows(self, rows: list[tuple[datetime, str]]) -> dict[tuple[str, str], str]:
        """Create index rows in batches: the ETag of each created, by (bucket, conversationId).

        A row left out (its batch failed) is written alone before its outcome (careful path).
        """
        try:
            return self.store.put_due_rows(rows)
        except Exception:
            logger.exception("Could not write the timer's new due rows in batches")
            return {}

    def _judge_snapshot(self, row: DueRow, now: datetime) -> _Expiry | None:
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
        return verdict if isinstance(verdict, _Expiry) else None

    def _judge_row(self, row: DueRow, now: datetime) -> RowResult | _Expiry:
        """Decide one due row on a fresh read of its conversation. Never raises."""
        try:
            return self._judge(row, self.store.get_conversation(row.conversation_id), now)
        except Exception:
            logger.exception("Could not enforce the time limit of one conversation")
            return None, None, 0.0

    def _judge(
        self, row: DueRow, found: Versioned[Conversation] | None, now: datetime
    ) -> RowResult | _Expiry:
        """What the timer does with one due row, given its conversation (read or snapshot)."""
        if found is None:
            return RowOutcome.STALE, None, 0.0
        conversation = found.value
        # Repairs capacity rows that a crash between write and cleanup left behind.
        release = (
            conversation.agent_id
            if conversation.agent_id and not conversation.holds_capacity
            else None
        )
        due = domain.due_at(conversation, self.auto_close_after)
        if due is None or due_bucket(due) != row.bucket:
            return RowOutcome.STALE, release, 0.0
        outcome = domain.enforce(conversation, now, self.auto_close_after)
        if outcome is None:
            return RowOutcome.PENDING, None, 0.0
        return _Expiry(found, outcome, (now - due).total_seconds())

    def _finish_row(
        self,
        row: DueRow,
        verdict: RowResult | _Expiry,
        now: datetime,
        created: dict[tuple[str, str], str],
    ) -> RowResult:
        """Write one row's decided outcome; `created`: the due rows the batch created.

        Never raises: one bad row must not stop the sweep; it stays indexed for the next run.
        """
        if not isinstance(verdict, _Expiry):
            return verdict
        try:
            due = domain.due_at(verdict.outcome, self.auto_close_after)
            key = None if due is None else (due_bucket(due), verdict.outcome.conversation_id)
            if key is None or key in created:
                written = self._write_expiry(verdict)
                if written is not None:
                    return written
            # A reconnect or event won the race (or the batch failed): decide again.
            result = self._enforce_conversation(row, now)
            if key in created:
                # The row created for the outcome not written: drop it unless someone has
                # upserted it since (the careful path just now, or a writer that needs it).
                self.store.delete_due_if_unchanged(*key, created[key])
            return result
        except Exception:
            logger.exception("Could not enforce the time limit of one conversation")
            return None, None, 0.0

    def _write_expiry(self, expiry: _Expiry) -> RowResult | None:
        """Write a decided outcome if the conversation is unchanged since read, else None."""
        outcome = expiry.outcome
        try:
            self.store.replace_conversation(outcome, expiry.found.etag)
        except ConcurrencyConflict:
            return None
        if outcome.state is State.CLOSED:
            self.store.delete_customer(outcome)
        kind = RowOutcome.CLOSED if outcome.state is State.CLOSED else RowOutcome.EXPIRED
        return kind, outcome.agent_id, expiry.lateness

    def _enforce_conversation(self, row: DueRow, now: datetime) -> RowResult:
        """One row the careful way: read, decide, write its index rows, write; repeat on a race."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            verdict = self._judge(row, self.store.get_conversation(row.conversation_id), now)
            if not isinstance(verdict, _Expiry):
                return verdict
            # The due row the outcome needs (its auto-close), before the outcome is written.
            due = domain.due_at(verdict.outcome, self.auto_close_after)
            if due is not None and due != domain.due_at(verdict.found.value, self.auto_close_after):
                self.store.put_due(due, verdict.outcome.conversation_id)
            written = self._write_expiry(verdict)
            if written is not None:
                return written
        raise ConcurrencyExhausted("conversation kept changing during enforcement")
