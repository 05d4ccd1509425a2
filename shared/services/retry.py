"""The one bounded retry of a use case whose conditional write lost a race."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Literal, TypeVar

from shared.domain.errors import WriteContention

T = TypeVar("T")

# How many times a use case decides again after its conditional write lost a race; past
# this many the caller gets 503 (WriteContention) and may retry shortly.
MAX_WRITE_ATTEMPTS = 8


class Retry(Enum):
    """What an attempt returns when another writer won: read again and decide again."""

    AGAIN = "again"


AGAIN: Literal[Retry.AGAIN] = Retry.AGAIN


def retry_lost_races(
    attempt: Callable[[], T | Retry],
    exhausted: str,
    *,
    attempts: int = MAX_WRITE_ATTEMPTS,
) -> T:
    """The first answer of `attempt` that is not AGAIN, trying at most `attempts` times;
    past that, WriteContention with the detail `exhausted`."""
    for _ in range(attempts):
        result = attempt()
        if not isinstance(result, Retry):
            return result
    raise WriteContention(exhausted)
