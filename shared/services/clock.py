"""The clock every use case is given (tests and the benchmark pass a movable one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current UTC time to the second: the contract's deadlines are whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)
