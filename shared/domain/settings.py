"""A widget's reconnection settings and what makes it authenticated: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PublicKey:
    """One RSA public key that may sign customer tokens, selected by `kid`."""

    kid: str
    pem: str


@dataclass(frozen=True)
class Authentication:
    """What makes a widget authenticated: who issues its customers' tokens, and their keys."""

    issuer: str
    audience: str | None
    public_keys: tuple[PublicKey, ...]


@dataclass(frozen=True)
class WidgetSettings:
    """Reconnection settings of one chat widget."""

    widget_id: str
    reconnect_enabled: bool = False
    time_limit_minutes: int = 10
    portal_url: str | None = None
    redirect_url: str | None = None
    authentication: Authentication | None = None
    updated_at: datetime | None = None

    @property
    def time_limit(self) -> timedelta:
        return timedelta(minutes=self.time_limit_minutes)

    @property
    def is_authenticated(self) -> bool:
        return self.authentication is not None
