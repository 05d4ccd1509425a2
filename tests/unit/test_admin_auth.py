"""shared.api.admin_auth: the forwarded App Service principal is parsed in one place, and the
admin check fails closed whenever the principal cannot be trusted."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from shared.api.admin_auth import (
    MAX_PRINCIPAL_CHARS,
    PRINCIPAL_HEADER,
    parse_client_principal,
    require_admin,
)
from shared.api.errors import AdminSignInMisconfigured, AdminSignInRequired, Forbidden

ROLE = "ChatReconnect.Admin"
ROLE_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def encode(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def principal(*roles: str, role_typ: str = ROLE_URI, **extra: Any) -> dict[str, Any]:
    """A principal shaped like the one App Service forwards for a Microsoft Entra ID token."""
    return {
        "auth_typ": "aad",
        "claims": [
            {"typ": "aud", "val": "api://00000000-0000-0000-0000-00000000000a"},
            {"typ": "name", "val": "Ada Admin"},
            *({"typ": role_typ, "val": role} for role in roles),
        ],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": role_typ,
        **extra,
    }


# --- parsing ------------------------------------------------------------------------------


def test_roles_are_read_from_the_claims_of_the_principals_role_type() -> None:
    parsed = parse_client_principal(encode(principal(ROLE, "Other.Role")))
    assert parsed.identity_provider == "aad"
    assert parsed.roles == {ROLE, "Other.Role"}


@pytest.mark.parametrize("role_typ", ["roles", ROLE_URI, "urn:custom:role"])
def test_every_role_claim_type_app_service_uses_counts(role_typ: str) -> None:
    assert parse_client_principal(encode(principal(ROLE, role_typ=role_typ))).roles == {ROLE}


def test_a_role_typed_claim_is_a_role_even_if_role_typ_names_another_type() -> None:
    document = principal(role_typ="urn:custom:role")
    document["claims"].append({"typ": "roles", "val": ROLE})
    assert parse_client_principal(encode(document)).roles == {ROLE}


def test_other_claims_are_not_roles() -> None:
    document = principal()
    document["claims"].append({"typ": "scp", "val": ROLE})
    document["claims"].append({"typ": "groups", "val": ROLE})
    assert parse_client_principal(encode(document)).roles == frozenset()


def test_unpadded_base64_is_read() -> None:
    assert parse_client_principal(encode(principal(ROLE)).rstrip("=")).roles == {ROLE}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param(base64.b64encode(b"\xff\xfe").decode(), id="not-utf8"),
        pytest.param(base64.b64encode(b"{not json").decode(), id="not-json"),
        pytest.param(encode([ROLE]), id="a-list"),
        pytest.param(encode("aad"), id="a-string"),
        pytest.param(encode({"claims": []}), id="no-auth-typ"),
        pytest.param(encode({"auth_typ": "", "claims": []}), id="empty-auth-typ"),
        pytest.param(encode({"auth_typ": "aad"}), id="no-claims"),
        pytest.param(encode({"auth_typ": "aad", "claims": {"roles": ROLE}}), id="claims-object"),
        pytest.param(encode({"auth_typ": "aad", "claims": [ROLE]}), id="claim-string"),
        pytest.param(encode({"auth_typ": "aad", "claims": [{"typ": "roles"}]}), id="claim-no-val"),
        pytest.param(
            encode({"auth_typ": "aad", "claims": [{"typ": "roles", "val": [ROLE]}]}),
            id="claim-list-val",
        ),
        pytest.param(encode({"auth_typ": "aad", "claims": [], "role_typ": 1}), id="role-typ-int"),
        # Inside the size limit, but deeper than the JSON parser's recursion limit.
        pytest.param(base64.b64encode(b"[" * 10_000 + b"]" * 10_000).decode(), id="too-deep"),
        pytest.param("A" * (MAX_PRINCIPAL_CHARS + 1), id="too-large"),
    ],
)
def test_a_malformed_principal_is_a_value_error_never_a_crash(header: str) -> None:
    with pytest.raises(ValueError, match="principal"):
        parse_client_principal(header)


# --- the check ------------------------------------------------------------------------------


def headers_with(document: Any) -> dict[str, str]:
    return {PRINCIPAL_HEADER: encode(document)}


def test_without_a_required_role_nothing_is_checked() -> None:
    # Local development and deployments without an admin app registration: as before.
    require_admin({}, None, platform_auth_enabled=False)
    require_admin({PRINCIPAL_HEADER: "garbage"}, None, platform_auth_enabled=True)


def test_a_principal_with_the_role_passes() -> None:
    require_admin(headers_with(principal(ROLE)), ROLE, platform_auth_enabled=True)


def test_no_principal_is_401() -> None:
    with pytest.raises(AdminSignInRequired):
        require_admin({}, ROLE, platform_auth_enabled=True)
    with pytest.raises(AdminSignInRequired):
        require_admin({PRINCIPAL_HEADER: ""}, ROLE, platform_auth_enabled=True)


def test_a_malformed_principal_is_401() -> None:
    with pytest.raises(AdminSignInRequired):
        require_admin({PRINCIPAL_HEADER: "not-base64!"}, ROLE, platform_auth_enabled=True)


@pytest.mark.parametrize(
    "roles", [(), ("Other.Role",), ("chatreconnect.admin",), (ROLE + " ",)], ids=repr
)
def test_a_principal_without_exactly_the_role_is_403(roles: tuple[str, ...]) -> None:
    with pytest.raises(Forbidden, match=ROLE):
        require_admin(headers_with(principal(*roles)), ROLE, platform_auth_enabled=True)


def test_with_authentication_off_even_a_perfect_principal_is_refused_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without App Service authentication anybody can send the header: never trust it.
    with (
        caplog.at_level(logging.ERROR, logger="shared.api.admin_auth"),
        pytest.raises(AdminSignInMisconfigured),
    ):
        require_admin(headers_with(principal(ROLE)), ROLE, platform_auth_enabled=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.api.admin_auth"]
    assert len(lines) == 1
    assert "ADMIN_REQUIRED_ROLE" in lines[0]
    assert "WEBSITE_AUTH_ENABLED" in lines[0]
    assert "\n" not in lines[0]
