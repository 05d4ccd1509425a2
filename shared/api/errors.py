"""Errors of the HTTP layer, raised before any use case runs: reading the request, the
admin sign-in, the app settings; mapped in `problems.py`."""

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


class AdminSignInRequired(ChatReconnectError):
    """An admin route was called without a valid Microsoft Entra ID sign-in (401)."""


class Forbidden(ChatReconnectError):
    """The caller signed in but lacks the role the route needs (403)."""


class Misconfigured(ChatReconnectError):
    """An app setting is wrong, so the app refuses to serve (503, with Retry-After)."""


class AdminSignInMisconfigured(Misconfigured):
    """Admins must sign in, but App Service authentication is off: nothing is trusted (503)."""
