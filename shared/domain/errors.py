"""What can go wrong, in the application's terms; `shared.api.problems` alone maps each
error to an HTTP answer."""

from __future__ import annotations

from dataclasses import dataclass


class ChatReconnectError(Exception):
    """Base of every error the application raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class FieldProblem:
    """One invalid input, named by the field it concerns."""

    field: str
    message: str


class InvalidInput(ChatReconnectError):
    """The input was read but breaks the schema or a rule of the contract; nothing changed."""

    def __init__(self, problems: tuple[FieldProblem, ...], detail: str | None = None) -> None:
        fields = ", ".join(dict.fromkeys(problem.field for problem in problems))
        super().__init__(detail or f"Invalid value for: {fields}")
        self.errors = problems


class CustomerRequired(ChatReconnectError):
    """A conversation on an authenticated widget must be registered with its customer."""

    def __init__(self) -> None:
        super().__init__("is required on an authenticated widget")


class InvalidCustomerToken(ChatReconnectError):
    """The customer's token is missing or does not prove who the customer is."""


class UnknownResource(ChatReconnectError):
    """Something the caller named does not exist."""


class UnknownWidget(UnknownResource):
    """No settings are stored for this widget."""

    def __init__(self, widget_id: str) -> None:
        super().__init__(f"No widget '{widget_id}'.")


class UnknownConversation(UnknownResource):
    """No conversation is registered under this id."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"No conversation '{conversation_id}'.")


class NotAnAuthenticatedWidget(UnknownResource):
    """The customer prompt exists only on authenticated widgets."""

    def __init__(self, widget_id: str) -> None:
        super().__init__(f"Widget '{widget_id}' is not an authenticated widget.")


class StateConflict(ChatReconnectError):
    """The request clashes with the conversation as it is; `state` tells its current state."""

    def __init__(self, detail: str, state: str | None = None) -> None:
        super().__init__(detail)
        # Every answer about a conflicting conversation tells its current state.
        self.state = state


class RegistrationConflict(StateConflict):
    """A registration names another widget, agent or customer than the conversation has."""


class NoLinkToInsert(StateConflict):
    """A quick reply asks for a reconnect link while reconnection is off."""


class InvalidTransition(ChatReconnectError):
    """The event does not apply in the conversation's current state; nothing changed."""

    def __init__(self, state: str) -> None:
        super().__init__(f"The event does not apply to a conversation in state '{state}'.")
        self.state = state


class LinkUnavailable(ChatReconnectError):
    """The reconnect link is unusable, for whatever reason; the reason is never told."""

    def __init__(self, redirect_url: str | None) -> None:
        super().__init__("This conversation can no longer be continued.")
        self.redirect_url = redirect_url


class PreconditionMismatch(ChatReconnectError):
    """The stored version is not the one the caller's precondition requires."""


class VersionNotNamed(PreconditionMismatch):
    """The current version is none of those the caller named."""

    def __init__(self) -> None:
        super().__init__("The current version is none of those the caller named.")


class TooLargeToStore(ChatReconnectError):
    """A value is larger than Table storage accepts; `errors` names its field when known."""

    def __init__(self, detail: str, errors: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(detail)
        self.errors = errors


class StorageRefused(ChatReconnectError):
    """Table storage refused to store a value for a reason other than its size."""


class StorageUnavailable(ChatReconnectError):
    """Table storage cannot be reached right now; the caller may retry shortly."""


class WriteContention(StorageUnavailable):
    """A conditional write kept losing races; the caller may retry shortly."""
