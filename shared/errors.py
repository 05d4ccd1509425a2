"""The few errors the application raises; `shared.api.problems` maps each to one HTTP answer."""

from __future__ import annotations

from dataclasses import dataclass


class ChatReconnectError(Exception):
    """Base of every error the application raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class FieldError:
    """One validation failure, named by the JSON field it concerns."""

    field: str
    message: str


class BadRequest(ChatReconnectError):
    """The request cannot be read: malformed JSON, a bad path id or query parameter (400)."""

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.errors = errors


class ValidationFailed(ChatReconnectError):
    """The request was read but breaks the schema or a rule of the contract (422)."""

    def __init__(self, errors: tuple[FieldError, ...], detail: str | None = None) -> None:
        fields = ", ".join(dict.fromkeys(error.field for error in errors))
        super().__init__(detail or f"Invalid value for: {fields}")
        self.errors = errors


class Unauthorized(ChatReconnectError):
    """The customer token is missing or invalid (401)."""


class AdminSignInRequired(ChatReconnectError):
    """An admin route was called without a valid Microsoft Entra ID sign-in (401)."""


class Forbidden(ChatReconnectError):
    """The caller signed in but lacks the role the route needs (403)."""


class NotFound(ChatReconnectError):
    """An unknown widget or conversation (404)."""


class Conflict(ChatReconnectError):
    """The request clashes with what exists (409), e.g. a conflicting registration."""

    def __init__(self, detail: str, state: str | None = None) -> None:
        super().__init__(detail)
        # Every 409 about a conversation tells its current state (SPEC 2.2.1).
        self.state = state


class InvalidTransition(ChatReconnectError):
    """The event does not apply in the conversation's current state (409); nothing changed."""

    def __init__(self, state: str) -> None:
        super().__init__(f"The event does not apply to a conversation in state '{state}'.")
        self.state = state


class ReconnectUnavailable(ChatReconnectError):
    """The reconnect link is unusable, for whatever reason (410); the reason is never told."""

    def __init__(self, redirect_url: str | None) -> None:
        super().__init__("This conversation can no longer be continued.")
        self.redirect_url = redirect_url


class PreconditionFailed(ChatReconnectError):
    """An If-Match / If-None-Match precondition does not hold (412)."""


class PayloadTooLarge(ChatReconnectError):
    """The body exceeds the size limit (413)."""


class TooLargeToStore(ChatReconnectError):
    """A value is larger than Table storage accepts (413); `errors` names it when known."""

    def __init__(self, detail: str, errors: tuple[FieldError, ...] = ()) -> None:
        super().__init__(detail)
        self.errors = errors


class StorageRefused(ChatReconnectError):
    """Table storage refused to store a value for a reason other than its size (422)."""


class UnsupportedMediaType(ChatReconnectError):
    """The body's content type is not one the route accepts (415)."""


class StorageUnavailable(ChatReconnectError):
    """Table storage cannot be reached right now (503, with Retry-After)."""


class ConcurrencyExhausted(StorageUnavailable):
    """A conditional write kept losing races; the caller may retry shortly (503)."""


class Misconfigured(ChatReconnectError):
    """An app setting is wrong, so the app refuses to serve (503, with Retry-After)."""


class AdminSignInMisconfigured(Misconfigured):
    """Admins must sign in, but App Service authentication is off: nothing is trusted (503)."""
