"""Timers: NCRONTAB schedules (seconds first), past-due runs, runs on startup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import azure.functions as func
import httpx
import pytest

from local.loader import TimerFunction
from local.timers import TimerScheduler, is_past_due, next_occurrence
from tests.local.sample_app import EVERY_SECOND, Calls


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


def test_timer_runs_on_its_schedule_with_a_timer_request(
    calls: Calls, client: httpx.Client
) -> None:
    wait_until(lambda: len(calls.ticks) >= 2)
    for timer in calls.ticks:
        assert isinstance(timer, func.TimerRequest)
        assert isinstance(timer.past_due, bool)
        assert set(timer.schedule_status) == {"Last", "Next", "LastUpdated"}


def test_run_on_startup_runs_once(calls: Calls, client: httpx.Client) -> None:
    wait_until(lambda: calls.startup_runs >= 1)
    assert calls.startup_runs == 1


def test_next_occurrence_reads_seconds_first() -> None:
    moment = datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert next_occurrence("*/30 * * * * *", moment) == moment.replace(second=30)
    assert next_occurrence("0 */5 * * * *", moment) == moment.replace(minute=5, second=0)


def test_a_run_that_overran_the_next_occurrence_catches_up_once_past_due() -> None:
    skew = timedelta(0)
    past_due: list[bool] = []

    def slow(timer: func.TimerRequest) -> None:
        nonlocal skew
        past_due.append(timer.past_due)
        if len(past_due) == 1:
            skew = timedelta(seconds=2.5)  # as if this first run had taken 2.5 s

    scheduler = TimerScheduler(
        [TimerFunction("slow", EVERY_SECOND, "timer", slow, False, False)],
        clock=lambda: datetime.now(UTC) + skew,
    )

    async def scenario() -> None:
        scheduler.start()
        deadline = time.monotonic() + 10
        while len(past_due) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await scheduler.stop()

    asyncio.run(scenario())
    # The two occurrences missed during the long run make one immediate, past-due run.
    assert past_due[:3] == [False, True, False]


def test_a_run_more_than_a_second_late_is_past_due() -> None:
    scheduled = datetime(2024, 1, 1, tzinfo=UTC)
    assert not is_past_due(scheduled, scheduled + timedelta(milliseconds=900))
    assert is_past_due(scheduled, scheduled + timedelta(milliseconds=1100))
