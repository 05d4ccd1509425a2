"""The one redaction rule: reconnect IDs in link paths, oc.reconnectid values and ID-shaped
text become a marker, in messages, arguments, tracebacks and uvicorn's access lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from shared.domain.links import MAC_LENGTH, key_id, parse_reconnect_id
from shared.redaction import REDACTED, install_log_redaction, redact

# Shaped exactly like an issued ID (parse_reconnect_id accepts it), so the shape rule is
# checked against the links module, not a copy of it.
LINK = f"conv-1.2.{key_id(b'k' * 32)}{'Q' * MAC_LENGTH}"


def test_the_sample_is_a_well_formed_reconnect_id() -> None:
    assert parse_reconnect_id(LINK) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"GET /api/widgets/w/reconnect/{LINK} -> 200",
            f"GET /api/widgets/w/reconnect/{REDACTED} -> 200",
        ),
        (
            f"POST /api/widgets/w/reconnect/{LINK}/decline -> 204",
            f"POST /api/widgets/w/reconnect/{REDACTED}/decline -> 204",
        ),
        (
            "GET /api/widgets/w/reconnect/%3Cscript%3Ealert(1)%3C%2Fscript%3E -> 200",
            f"GET /api/widgets/w/reconnect/{REDACTED} -> 200",
        ),
        (
            "GET /portal.html?widget=w&oc.reconnectid=anything-at-all&x=1",
            f"GET /portal.html?widget=w&oc.reconnectid={REDACTED}&x=1",
        ),
        (
            "https://p.example/?OC%2EReconnectId=abc",
            f"https://p.example/?OC%2EReconnectId={REDACTED}",
        ),
        (f"could not continue {LINK}: boom", f"could not continue {REDACTED}: boom"),
        ("conversation c-1 moved to wrap_up", "conversation c-1 moved to wrap_up"),
        ("GET /api/widgets/w/reconnectable -> 204", "GET /api/widgets/w/reconnectable -> 204"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every record of the logger "redaction-test", with redaction installed."""
    install_log_redaction()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("redaction-test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


def test_arguments_are_redacted_and_stay_arguments(records: list[logging.LogRecord]) -> None:
    logging.getLogger("redaction-test").info("%s %s -> %d", "GET", f"/reconnect/{LINK}", 200)
    (record,) = records
    assert record.getMessage() == f"GET /reconnect/{REDACTED} -> 200"
    assert record.args == ("GET", f"/reconnect/{REDACTED}", 200)


def test_a_placeholder_inside_a_link_path_is_formatted_first(
    records: list[logging.LogRecord],
) -> None:
    logging.getLogger("redaction-test").warning("GET /api/widgets/w/reconnect/%s", "abc")
    assert records[0].getMessage() == f"GET /api/widgets/w/reconnect/{REDACTED}"


def test_tracebacks_are_redacted(records: list[logging.LogRecord]) -> None:
    try:
        raise RuntimeError(f"no conversation for {LINK}")
    except RuntimeError:
        logging.getLogger("redaction-test").exception("failed")
    text = logging.Formatter().format(records[0])
    assert LINK not in text
    assert f"RuntimeError: no conversation for {REDACTED}" in text


def test_uvicorn_access_lines_are_redacted_and_still_format(
    records: list[logging.LogRecord],
) -> None:
    # The call uvicorn's access log makes; its formatter unpacks the five arguments.
    path = f"/api/widgets/w/reconnect/{LINK}?oc.reconnectid={LINK}"
    logging.getLogger("redaction-test").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200
    )
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(
        records[0]
    )
    assert LINK not in line
    assert f"/reconnect/{REDACTED}?oc.reconnectid={REDACTED}" in line
