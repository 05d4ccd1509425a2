"""Call a handler as the Python worker does: coroutines awaited, the others in a thread."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool


async def invoke(handler: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a handler: coroutine functions awaited, others in a worker thread."""
    if inspect.iscoroutinefunction(handler):
        return await handler(**kwargs)
    result = await run_in_threadpool(functools.partial(handler, **kwargs))
    if inspect.isawaitable(result):
        return await result
    return result
