"""The rules of contract §2.2.1 and §2.3 about registering a conversation and its link, through
the App's use cases over a real Azurite: register (P9), no link while reconnection is off
(P11), any reconnect id is simply unavailable (P12) and revoking (§2.3).

Their HTTP answers (201/200, 409 with `state`, 404, 422, `reconnectUrl: null`) are pinned in
tests/e2e/test_platform_links_http.py and tests/integration/test_security_http.py.
"""

from __future__ import annotations

import pytest

from shared.domain.conversation import State
from shared.domain.errors import CustomerRequired, RegistrationConflict, UnknownWidget
from shared.domain.links import MAC_LENGTH
from shared.domain.settings import Authentication
from shared.services.app import App
from tests.conftest import START, FakeClock
from tests.integration.use_cases import (
    AGENT,
    REDIRECT,
    WIDGET,
    context,
    decline,
    disconnected,
    gone,
    held,
    link_of,
    put_widget,
    register,
    resume,
    stored,
    unavailable,
)

# --- P9: register ------------------------------------------------------------------------------


def test_p9_register_creates_once_and_an_identical_repeat_changes_nothing(
    service: App, clock: FakeClock
) -> None:
    put_widget(service)
    created, was_created = service.conversations.register("c1", WIDGET, AGENT, "cust-1")
    assert was_created is True
    assert created.conversation.state is State.ACTIVE
    assert created.conversation.created_at == START
    before = stored(service, "c1")
    clock.advance(minutes=1)

    repeated, again = service.conversations.register("c1", WIDGET, AGENT, "cust-1")

    assert again is False
    assert repeated == created
    assert stored(service, "c1") == before
    assert held(service) == ["c1"]


@pytest.mark.parametrize(
    ("widget", "agent", "customer"),
    [("w2", AGENT, "cust-1"), (WIDGET, "agent-2", "cust-1"), (WIDGET, AGENT, "cust-2")],
    ids=["other-widget", "other-agent", "other-customer"],
)
def test_p9_registering_again_with_another_widget_agent_or_customer_conflicts(
    service: App, widget: str, agent: str, customer: str
) -> None:
    put_widget(service)
    put_widget(service, "w2")
    register(service, "c1", customer="cust-1")
    before = stored(service, "c1")

    with pytest.raises(RegistrationConflict) as conflict:
        service.conversations.register("c1", widget, agent, customer)

    assert conflict.value.state == "active"
    assert stored(service, "c1") == before
    assert held(service, "agent-2") == []


def test_p9_register_on_an_unknown_widget_stores_nothing(service: App) -> None:
    with pytest.raises(UnknownWidget):
        register(service, "c1", widget="ghost")

    assert service.store.get_conversation("c1") is None


def test_p9_register_on_an_authenticated_widget_needs_a_customer(service: App) -> None:
    issuer = Authentication(issuer="https://login.contoso.example/", audience=None, public_keys=())
    put_widget(service, authentication=issuer)

    with pytest.raises(CustomerRequired):
        register(service, "c1")
    assert service.store.get_conversation("c1") is None

    assert register(service, "c1", customer="cust-1").state is State.ACTIVE


# --- P11: no link while reconnection is off -----------------------------------------------------


def test_p11_no_reconnect_url_while_reconnection_is_off(service: App) -> None:
    put_widget(service)
    register(service, "c1")
    assert service.conversations.get_conversation("c1").reconnect_url is not None

    put_widget(service, reconnect_enabled=False)

    assert service.conversations.get_conversation("c1").reconnect_url is None


# --- P12: any reconnect id is input; an unusable one is unavailable -----------------------------


@pytest.mark.parametrize(
    "reconnect_id",
    [
        "",
        "x" * 4000,
        "c1.0.%00" + "A" * 37,
        "c1.99999999999." + "A" * 38,
        "c1.-1." + "A" * 38,
        "c1.0." + "\u00c4" * 38,
        "c1.0." + "A" * (6 + MAC_LENGTH),
    ],
    ids=["empty", "long", "nul", "huge-epoch", "negative-epoch", "non-ascii", "forged"],
)
def test_p12_a_hostile_reconnect_id_is_simply_unavailable(service: App, reconnect_id: str) -> None:
    put_widget(service, redirect_url=REDIRECT)
    disconnected(service, "c1")
    before = stored(service, "c1")

    assert context(service, reconnect_id) == unavailable(REDIRECT)
    assert gone(service, reconnect_id) == REDIRECT
    decline(service, reconnect_id)

    assert stored(service, "c1") == before


# --- §2.3: revoking issues a new link; the old one stops at once --------------------------------


def test_revoking_issues_a_new_link_and_the_old_one_stops_at_once(service: App) -> None:
    put_widget(service, redirect_url=REDIRECT)
    disconnected(service, "c1")
    old = link_of(service, "c1")
    old_url = service.conversations.get_conversation("c1").reconnect_url
    assert context(service, old).available is True

    revoked = service.conversations.revoke_link("c1")

    new = link_of(service, "c1")
    assert new != old
    assert revoked.reconnect_url is not None
    assert revoked.reconnect_url != old_url
    assert revoked.reconnect_url.endswith("oc.reconnectid=" + new)
    assert stored(service, "c1").value.link_epoch == 1
    assert context(service, old) == unavailable(REDIRECT)
    assert gone(service, old) == REDIRECT
    assert resume(service, new).same_agent is True
