"""Reconnect IDs never reach a log line: one rule, applied to every log record of the process.

A reconnect ID is a credential (contract §2.3). Three shapes of it are replaced by ``REDACTED``:
the ``{reconnectId}`` path segment of a link route, the value of an ``oc.reconnectid``
query parameter, and anything shaped like an issued ID (``<conversationId>.<epoch>.<kid><mac>``)
wherever it appears, e.g. in an exception's message.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from shared.domain.links import KID_LENGTH, MAC_LENGTH

REDACTED = "[reconnect-id]"

_RULE = re.compile(
    # The segment after /reconnect/ of a link route, up to "/decline" or the path's end.
    r"(?P<path>/reconnect/)[^/?#\s\"'<>]+"
    # The value of oc.reconnectid in a query string (its name percent-encoded or not).
    r"|(?P<query>oc(?:\.|%2e)reconnectid=)[^&#\s\"'<>]*"
    # An issued ID, wherever it is: conversation id, epoch, key id and MAC.
    rf"|(?<![A-Za-z0-9_.-])[A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}\.[0-9]{{1,10}}\."
    rf"[A-Za-z0-9_-]{{{KID_LENGTH + MAC_LENGTH}}}(?![A-Za-z0-9_-])",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every reconnect ID (as a link path segment, query value or issued ID)
    replaced by ``REDACTED``."""
    return _RULE.sub(lambda found: (found["path"] or found["query"] or "") + REDACTED, text)


def _redacted_arg(value: object) -> object:
    """A log argument with reconnect IDs removed; numbers and untouched values kept as they are."""
    if value is None or isinstance(value, int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _redact_message(record: logging.LogRecord) -> None:
    """Redact the record's message, keeping ``msg`` and ``args`` apart where that suffices."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        return  # a malformed record: logging itself reports it, with nothing formatted
    if redact(message) == message:
        return
    if isinstance(record.args, tuple) and record.args:
        # Argument by argument first: formatters such as uvicorn's access log unpack the tuple.
        args = tuple(_redacted_arg(arg) for arg in record.args)
        try:
            structured = str(record.msg) % args
        except (TypeError, ValueError):
            structured = None
        if structured is not None and redact(structured) == structured:
            record.args = args
            return
    record.msg, record.args = redact(message), None


def _redact_record(record: logging.LogRecord) -> None:
    """Redact a record's message, traceback and stack in place."""
    _redact_message(record)
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        # Formatters reuse exc_text once it is set, so the traceback is formatted only here.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_installed = threading.Lock()
_factory_is_ours = False


def install_log_redaction() -> None:
    """Make every log record created in this process from now on go through ``redact``.

    A log record factory rather than a handler filter: it runs before any handler (the
    Functions worker's, uvicorn's, a test's capture) sees the record. Installing twice is a
    no-op.
    """
    global _factory_is_ours
    with _installed:
        if _factory_is_ours:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_is_ours = True
