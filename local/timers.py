"""Run timer functions on their six-field NCRONTAB schedules, as the Functions host does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from local.invoke import invoke
from local.loader import TimerFunction

# The Functions host flags a timer run as past due when it starts late; a second of
# slack keeps ordinary scheduling jitter from looking like a missed occurrence.
PAST_DUE_AFTER = timedelta(seconds=1)
# How long shutdown waits for a running timer handler before cancelling it.
TIMER_STOP_TIMEOUT = 30.0

logger = logging.getLogger(__name__)


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` matching a six-field NCRONTAB (seconds first)."""
    moment: datetime = croniter(schedule, after, second_at_beginning=True).get_next(datetime)
    return moment


def is_past_due(scheduled: datetime, started: datetime) -> bool:
    """Whether a run that starts at ``started`` for ``scheduled`` counts as past due."""
    return started - scheduled > PAST_DUE_AFTER


def utc_now() -> datetime:
    """The current time in UTC, the time zone timers run in (Azure's, without WEBSITE_TIME_ZONE)."""
    return datetime.now(UTC)


class TimerScheduler:
    """Runs each timer function on its schedule, one run at a time per timer."""

    def __init__(
        self, timers: Sequence[TimerFunction], clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.timers = tuple(timers)
        self.clock = clock
        self._stopping: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one background task per timer on the running event loop."""
        # Created here, not in __init__, so that it belongs to the loop that runs the timers.
        self._stopping = asyncio.Event()
        self._tasks = [
            asyncio.create_task(
                self._run_forever(timer, self._stopping), name=f"timer:{timer.name}"
            )
            for timer in self.timers
        ]

    async def stop(self, timeout: float = TIMER_STOP_TIMEOUT) -> None:
        """Stop scheduling, let running handlers finish (up to ``timeout``), then cancel."""
        if self._stopping is not None:
            self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            logger.warning("timer %s still running at shutdown: cancelled", task.get_name())
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _sleep_until(self, moment: datetime, stopping: asyncio.Event) -> bool:
        """Wait until ``moment``; False if the host is stopping meanwhile."""
        # Loop because an event loop may wake a little early; an early start would
        # schedule the same occurrence twice.
        while (delay := (moment - self.clock()).total_seconds()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            if stopping.is_set():
                return False
        return not stopping.is_set()

    async def _run_forever(self, timer: TimerFunction, stopping: asyncio.Event) -> None:
        """The timer's loop: (startup run,) then wait for each occurrence and run it."""
        last: datetime | None = None
        if timer.run_on_startup:
            started = self.clock()
            await self._run_once(timer, started, started, last)
            last = started
        scheduled = next_occurrence(timer.schedule, self.clock())
        while await self._sleep_until(scheduled, stopping):
            started = self.clock()
            await self._run_once(timer, scheduled, started, last)
            last = scheduled
            # Counting from the start collapses occurrences missed during a long run
            # into one immediate, past-due run, as the Functions host does.
            scheduled = next_occurrence(timer.schedule, max(started, scheduled))

    async def _run_once(
        self, timer: TimerFunction, scheduled: datetime, started: datetime, last: datetime | None
    ) -> None:
        """Call the handler once; an exception is logged, never fatal to the host."""
        request = TimerRequest(
            past_due=is_past_due(scheduled, started),
            schedule_status={
                "Last": (last or scheduled).isoformat(),
                "Next": next_occurrence(timer.schedule, scheduled).isoformat(),
                "LastUpdated": started.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        try:
            await invoke(timer.handler, **{timer.arg_name: request})
        except Exception:
            logger.exception("timer %r failed", timer.name)
        else:
            logger.info("timer %r ran (past_due=%s)", timer.name, request.past_due)
