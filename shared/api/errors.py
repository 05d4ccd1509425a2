"""Errors of reading an HTTP request (before any use case runs); mapped in `problems.py`."""

from __future__ import annotations

from shared.domain.errors import ChatReconnectError, FieldProblem


class MalformedRequest(ChatReconnectError):
    """The request cannot be read: malformed JSON, a bad path id or query parameter (400)."""

    def __init__(self, detail: str, errors: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(detail)
        self.errors = errors


class BodyTooLarge(ChatReconnectError):
    """The body exceeds the size limit (413)."""


class UnsupportedContentType(ChatReconnectError):
    """The body's content type is not one the route accepts (415)."""
