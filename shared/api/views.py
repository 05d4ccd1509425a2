"""Domain values -> wire models, and admin bodies -> domain settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.lazy import LazyModule
from shared.domain.settings import Authentication, PublicKey, WidgetSettings

if TYPE_CHECKING:
    from shared.api import schemas
else:
    # The contract models are built on first use, not with the app (docs/performance.md).
    schemas = LazyModule("shared.api.schemas")


def widget_view(widget: WidgetSettings) -> schemas.WidgetSettingsView:
    authentication = None
    if widget.authentication is not None:
        authentication = schemas.AuthenticationView(
            issuer=widget.authentication.issuer,
            audience=widget.authentication.audience,
            public_keys=[
                schemas.PublicKeyView(kid=key.kid, pem=key.pem)
                for key in widget.authentication.public_keys
            ],
        )
    return schemas.WidgetSettingsView(
        widget_id=widget.widget_id,
        reconnect_enabled=widget.reconnect_enabled,
        time_limit_minutes=widget.time_limit_minutes,
        portal_url=widget.portal_url,
        redirect_url=widget.redirect_url,
        authentication=authentication,
        updated_at=widget.updated_at,
    )


def widget_from_body(widget_id: str, body: schemas.WidgetSettingsBody) -> WidgetSettings:
    authentication = None
    if body.authentication is not None:
        authentication = Authentication(
            issuer=body.authentication.issuer,
            audience=body.authentication.audience,
            public_keys=tuple(
                PublicKey(kid=key.kid, pem=key.pem) for key in body.authentication.public_keys
            ),
        )
    return WidgetSettings(
        widget_id=widget_id,
        reconnect_enabled=body.reconnect_enabled,
        time_limit_minutes=body.time_limit_minutes,
        portal_url=body.portal_url,
        redirect_url=body.redirect_url or None,
        authentication=authentication,
    )
