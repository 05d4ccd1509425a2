"""The one error the local host raises for an app it cannot serve as configured."""


class HostError(RuntimeError):
    """The function app cannot be hosted as configured (bad route, schedule, setting or app)."""
