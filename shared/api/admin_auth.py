"""Who may call the admin routes in Azure: the Microsoft Entra ID principal that App Service
authentication forwards, carrying the admin app role (docs/security.md, "Callers").

App Service validates an admin's bearer token and passes its claims on as the
`X-MS-CLIENT-PRINCIPAL` header (base64 of JSON: `auth_typ`, `claims: [{typ, val}]`,
`name_typ`, `role_typ`), removing any such header a client sent. That header is therefore
trustworthy only while App Service authentication is on (`WEBSITE_AUTH_ENABLED=True`), so
this check fails closed: when a role is required and authentication is off, or the principal
is missing, malformed or without the role, the admin route refuses.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.api.errors import AdminSignInMisconfigured, AdminSignInRequired, Forbidden

logger = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal"
# Claim types App Service uses for app roles: the principal's own `role_typ`, Entra ID's
# `roles` claim as issued, and the URI that claim is mapped to by default.
ROLE_CLAIM_TYPES = frozenset(
    {"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}
)
# Far above what a real principal takes (a few KiB), far below what could cost memory.
MAX_PRINCIPAL_CHARS = 32 * 1024


@dataclass(frozen=True)
class ClientPrincipal:
    """The parts of a forwarded App Service principal the admin check uses."""

    identity_provider: str
    roles: frozenset[str]


def parse_client_principal(header: str) -> ClientPrincipal:
    """Decode an `X-MS-CLIENT-PRINCIPAL` value; raise ValueError saying why it is malformed."""
    if len(header) > MAX_PRINCIPAL_CHARS:
        raise ValueError("the principal is too large")
    text = header.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        document: Any = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("the principal is not base64-encoded JSON") from None
    if not isinstance(document, dict):
        raise ValueError("the principal is not a JSON object")
    provider = document.get("auth_typ")
    claims = document.get("claims")
    role_type = document.get("role_typ")
    if not isinstance(provider, str) or not provider:
        raise ValueError("the principal names no identity provider (auth_typ)")
    if not isinstance(claims, list):
        raise ValueError("the principal has no claims list")
    if role_type is not None and not isinstance(role_type, str):
        raise ValueError("the principal's role_typ is not a string")
    role_types = ROLE_CLAIM_TYPES | ({role_type} if role_type else set())
    roles: set[str] = set()
    for claim in claims:
        if not (
            isinstance(claim, dict)
            and isinstance(claim.get("typ"), str)
            and isinstance(claim.get("val"), str)
        ):
            raise ValueError("a claim of the principal is not {typ: string, val: string}")
        if claim["typ"] in role_types:
            roles.add(claim["val"])
    return ClientPrincipal(identity_provider=provider, roles=frozenset(roles))


def require_admin(
    headers: Mapping[str, str], required_role: str | None, platform_auth_enabled: bool
) -> None:
    """Return if the request may reach an admin route; raise the problem to answer otherwise.

    Without `required_role` (local development, or no admin app registration deployed)
    the function key the host checks is the only credential, as before.
    """
    if required_role is None:
        return
    if not platform_auth_enabled:
        # Without App Service authentication anyone can send the header: refuse everything.
        logger.error(
            "ADMIN_REQUIRED_ROLE is set but App Service authentication is off "
            "(WEBSITE_AUTH_ENABLED is not True): the admin routes refuse every request "
            "until authentication is on (deploy with adminClientId) or the setting is removed"
        )
        raise AdminSignInMisconfigured(
            "The admin routes are unavailable: this deployment's sign-in is not configured."
        )
    header = headers.get(PRINCIPAL_HEADER)
    if not header:
        raise AdminSignInRequired(
            "Sign in with Microsoft Entra ID: send an access token for the admin API "
            "as 'Authorization: Bearer <token>'."
        )
    try:
        principal = parse_client_principal(header)
    except ValueError:
        raise AdminSignInRequired("The sign-in could not be read; sign in again.") from None
    if required_role not in principal.roles:
        raise Forbidden(f"The admin routes need the app role '{required_role}'.")
