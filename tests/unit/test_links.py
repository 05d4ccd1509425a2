"""Reconnect IDs, links and quick replies (contract §2.1 portalUrl, 2.3)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from shared.domain.conversation import Conversation, new_conversation
from shared.domain.links import (
    KID_LENGTH,
    MAC_LENGTH,
    MAX_RECONNECT_ID_LENGTH,
    QUICK_REPLY_SLUG,
    RECONNECT_PARAM,
    LinkSigner,
    ParsedReconnectId,
    key_id,
    parse_reconnect_id,
    reconnect_url,
    render_quick_reply,
)
from shared.domain.settings import WidgetSettings

KEY = b"unit-test-signing-key-0123456789abcdef"
OTHER_KEY = b"another-signing-key-fedcba9876543210"
NOW = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
URL_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
TAIL_LENGTH = KID_LENGTH + MAC_LENGTH


def conversation(conversation_id: str = "conv-1", widget_id: str = "widget-1") -> Conversation:
    return new_conversation(conversation_id, widget_id, "agent-1", None, NOW)


def revoked(c: Conversation, times: int = 1) -> Conversation:
    return dataclasses.replace(c, link_epoch=c.link_epoch + times)


def widget(**changes: object) -> WidgetSettings:
    base = WidgetSettings(
        widget_id="widget-1",
        reconnect_enabled=True,
        time_limit_minutes=10,
        portal_url="https://contoso.example/support",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def parsed(reconnect_id: str) -> ParsedReconnectId:
    result = parse_reconnect_id(reconnect_id)
    assert result is not None, reconnect_id
    return result


def with_tail(reconnect_id: str, tail: str) -> str:
    return reconnect_id[: -len(tail)] + tail


# ------------------------------------------------------------------------------------------
# Reconnect IDs
# ------------------------------------------------------------------------------------------


def test_a_reconnect_id_parses_and_verifies() -> None:
    signer = LinkSigner(KEY)
    c = conversation()
    reconnect_id = signer.reconnect_id(c)
    parts = parsed(reconnect_id)
    assert parts.conversation_id == "conv-1"
    assert parts.epoch == 0
    assert parts.kid == key_id(KEY)
    assert len(parts.mac) == MAC_LENGTH
    assert signer.verify(parts, c) is True


def test_a_reconnect_id_is_stable_until_revoked() -> None:
    signer = LinkSigner(KEY)
    c = conversation()
    first = signer.reconnect_id(c)
    # Same conversation, same epoch, even after the conversation changed otherwise
    # or another signer instance (a restarted host) computes it.
    later = dataclasses.replace(c, customer_connected=False, updated_at=NOW.replace(hour=10))
    assert signer.reconnect_id(later) == first
    assert LinkSigner(KEY).reconnect_id(c) == first


def test_revoking_issues_a_new_id_and_the_old_one_stops_working() -> None:
    signer = LinkSigner(KEY)
    c = conversation()
    old = signer.reconnect_id(c)
    bumped = revoked(c)
    new = signer.reconnect_id(bumped)
    assert new != old
    assert signer.verify(parsed(new), bumped) is True
    assert signer.verify(parsed(old), bumped) is False


def test_an_id_from_the_future_epoch_does_not_verify_either() -> None:
    signer = LinkSigner(KEY)
    c = conversation()
    future = signer.reconnect_id(revoked(c, 2))
    assert signer.verify(parsed(future), c) is False
    assert signer.verify(parsed(future), revoked(c)) is False


@pytest.mark.parametrize("position", [0, 7, MAC_LENGTH - 1])
def test_a_tampered_mac_does_not_verify(position: int) -> None:
    signer = LinkSigner(KEY)
    c = conversation()
    parts = parsed(signer.reconnect_id(c))
    flipped = "A" if parts.mac[position] != "A" else "B"
    mac = parts.mac[:position] + flipped + parts.mac[position + 1 :]
    assert signer.verify(dataclasses.replace(parts, mac=mac), c) is False


def test_a_changed_epoch_with_the_old_mac_does_not_verify() -> None:
    signer = LinkSigner(KEY)
    c = revoked(conversation())
    old = parsed(signer.reconnect_id(conversation()))
    # Claiming the current epoch does not help: the MAC covers the epoch.
    assert signer.verify(dataclasses.replace(old, epoch=1), c) is False


def test_an_id_for_another_widget_does_not_verify() -> None:
    signer = LinkSigner(KEY)
    reconnect_id = signer.reconnect_id(conversation(widget_id="widget-1"))
    assert signer.verify(parsed(reconnect_id), conversation(widget_id="widget-2")) is False


def test_an_id_for_another_conversation_does_not_verify() -> None:
    signer = LinkSigner(KEY)
    one, two = conversation("conv-1"), conversation("conv-2")
    reconnect_id = signer.reconnect_id(one)
    assert signer.verify(parsed(reconnect_id), two) is False
    # Nor does rewriting the conversation part of a genuine id.
    forged = "conv-2" + reconnect_id.removeprefix("conv-1")
    assert signer.verify(parsed(forged), two) is False


def test_an_id_made_with_another_key_does_not_verify() -> None:
    c = conversation()
    foreign = LinkSigner(OTHER_KEY).reconnect_id(c)
    assert LinkSigner(KEY).verify(parsed(foreign), c) is False
    # Even when it claims our key id.
    ours = parsed(LinkSigner(KEY).reconnect_id(c))
    forged = dataclasses.replace(parsed(foreign), kid=ours.kid)
    assert LinkSigner(KEY).verify(forged, c) is False


def test_after_rotation_old_links_still_verify_and_new_links_use_the_new_key() -> None:
    c = conversation()
    before = LinkSigner(KEY).reconnect_id(c)
    rotated = LinkSigner(OTHER_KEY, previous_key=KEY)
    assert rotated.verify(parsed(before), c) is True
    after = rotated.reconnect_id(c)
    assert after != before
    assert parsed(after).kid == key_id(OTHER_KEY)
    assert rotated.verify(parsed(after), c) is True
    # Once the previous key is dropped, its links stop working.
    assert LinkSigner(OTHER_KEY).verify(parsed(before), c) is False
    # Revoking still works for links of the previous key.
    assert rotated.verify(parsed(before), revoked(c)) is False


def test_key_ids_differ_per_key_and_do_not_reveal_it() -> None:
    assert key_id(KEY) != key_id(OTHER_KEY)
    assert len(key_id(KEY)) == KID_LENGTH
    assert key_id(KEY) not in KEY.decode()


@pytest.mark.parametrize(
    "conversation_id",
    ["c", "conv-1", "a.b.c", "x_y-z.0.1", "0" * 128, "A1.2.3.4"],
)
def test_reconnect_ids_are_url_safe_and_round_trip(conversation_id: str) -> None:
    signer = LinkSigner(KEY)
    c = conversation(conversation_id)
    for epoch in (0, 1, 9_999_999_999):
        current = dataclasses.replace(c, link_epoch=epoch)
        reconnect_id = signer.reconnect_id(current)
        assert URL_SAFE.match(reconnect_id), reconnect_id
        assert len(reconnect_id) <= MAX_RECONNECT_ID_LENGTH
        parts = parsed(reconnect_id)
        assert (parts.conversation_id, parts.epoch) == (conversation_id, epoch)
        assert signer.verify(parts, current) is True


def test_reconnect_ids_carry_at_least_128_bits_of_mac() -> None:
    signer = LinkSigner(KEY)
    parts = parsed(signer.reconnect_id(conversation()))
    # base64url: 6 bits a character.
    assert len(parts.mac) * 6 >= 128
    assert re.fullmatch(r"[A-Za-z0-9_-]+", parts.mac)


def test_macs_look_random_across_conversations() -> None:
    signer = LinkSigner(KEY)
    macs = {parsed(signer.reconnect_id(conversation(f"conv-{n}"))).mac for n in range(200)}
    assert len(macs) == 200
    # Every base64url character shows up somewhere: no fixed or low-entropy positions.
    assert len(set("".join(macs))) == 64
    for position in range(MAC_LENGTH):
        assert len({mac[position] for mac in macs}) > 20


def test_the_id_does_not_contain_the_signing_key() -> None:
    reconnect_id = LinkSigner(KEY).reconnect_id(conversation())
    assert KEY.decode() not in reconnect_id


# ------------------------------------------------------------------------------------------
# Malformed IDs
# ------------------------------------------------------------------------------------------

GOOD = LinkSigner(KEY).reconnect_id(conversation())
GOOD_TAIL = GOOD.rsplit(".", 1)[1]


@pytest.mark.parametrize(
    "reconnect_id",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="no-dots"),
        pytest.param(GOOD_TAIL, id="tail-only"),
        pytest.param(f"conv-1.{GOOD_TAIL}", id="one-dot"),
        pytest.param(f".0.{GOOD_TAIL}", id="empty-conversation"),
        pytest.param(f"conv-1..{GOOD_TAIL}", id="empty-epoch"),
        pytest.param(f"conv-1.x.{GOOD_TAIL}", id="letter-epoch"),
        pytest.param(f"conv-1.-1.{GOOD_TAIL}", id="negative-epoch"),
        pytest.param(f"conv-1.+1.{GOOD_TAIL}", id="signed-epoch"),
        pytest.param(f"conv-1. 1.{GOOD_TAIL}", id="space-epoch"),
        pytest.param(f"conv-1.1e3.{GOOD_TAIL}", id="float-epoch"),
        pytest.param(f"conv-1.\u0661.{GOOD_TAIL}", id="arabic-indic-digit-epoch"),
        pytest.param(f"conv-1.\u00b2.{GOOD_TAIL}", id="superscript-digit-epoch"),
        pytest.param(f"conv-1.12345678901.{GOOD_TAIL}", id="epoch-over-10-digits"),
        pytest.param(f"conv-1.00.{GOOD_TAIL}", id="epoch-leading-zero"),
        pytest.param(f"conv-1.0.{GOOD_TAIL[:-1]}", id="tail-too-short"),
        pytest.param(f"conv-1.0.{GOOD_TAIL}A", id="tail-too-long"),
        pytest.param(f"conv-1.0.{GOOD_TAIL[:-1]}=", id="tail-padding"),
        pytest.param(f"conv-1.0.{GOOD_TAIL[:-1]}+", id="tail-plus"),
        pytest.param(f"conv-1.0.{GOOD_TAIL[:-1]}/", id="tail-slash"),
        pytest.param(f"conv-1.0.{GOOD_TAIL[:-1]}\u00e9", id="tail-non-ascii"),
        pytest.param(f"conv-1.0.{GOOD_TAIL}\n", id="tail-trailing-newline"),
        pytest.param(f"conv-1\n.0.{GOOD_TAIL}", id="conversation-trailing-newline"),
        pytest.param(f"-conv.0.{GOOD_TAIL}", id="conversation-leading-dash"),
        pytest.param(f".conv.0.{GOOD_TAIL}", id="conversation-leading-dot"),
        pytest.param(f"conv/1.0.{GOOD_TAIL}", id="conversation-slash"),
        pytest.param(f"conv 1.0.{GOOD_TAIL}", id="conversation-space"),
        pytest.param(f"conv%2F1.0.{GOOD_TAIL}", id="conversation-percent"),
        pytest.param(f"c\u00f6nv.0.{GOOD_TAIL}", id="conversation-non-ascii"),
        pytest.param(f"{'c' * 129}.0.{GOOD_TAIL}", id="conversation-129-chars"),
        pytest.param("x" * (MAX_RECONNECT_ID_LENGTH + 1), id="too-long"),
        pytest.param(f"{'c' * 128}.0.{GOOD_TAIL}" + "x" * 10_000, id="huge"),
    ],
)
def test_malformed_ids_do_not_parse(reconnect_id: str) -> None:
    assert parse_reconnect_id(reconnect_id) is None


def test_the_longest_well_formed_id_parses() -> None:
    c = dataclasses.replace(conversation("c" * 128), link_epoch=9_999_999_999)
    reconnect_id = LinkSigner(KEY).reconnect_id(c)
    assert len(reconnect_id) == MAX_RECONNECT_ID_LENGTH
    assert parsed(reconnect_id).conversation_id == "c" * 128
    assert parse_reconnect_id(reconnect_id + "A") is None


def test_a_conversation_id_with_dots_parses() -> None:
    parts = parsed(f"a.b.c.7.{GOOD_TAIL}")
    assert parts.conversation_id == "a.b.c"
    assert parts.epoch == 7
    assert parts.kid + parts.mac == GOOD_TAIL


def test_a_well_formed_but_unknown_id_parses_and_is_then_refused_by_verify() -> None:
    forged = parsed(f"conv-1.0.{'A' * TAIL_LENGTH}")
    assert LinkSigner(KEY).verify(forged, conversation()) is False


# ------------------------------------------------------------------------------------------
# Customer keys (the raw customer id is never kept)
# ------------------------------------------------------------------------------------------


def test_customer_keys_differ_per_widget_and_per_customer() -> None:
    signer = LinkSigner(KEY)
    keys = {
        signer.customer_key("widget-1", "alice"),
        signer.customer_key("widget-2", "alice"),
        signer.customer_key("widget-1", "bob"),
        signer.customer_key("widget-2", "bob"),
    }
    assert len(keys) == 4


def test_customer_keys_are_stable_and_do_not_contain_the_raw_id() -> None:
    signer = LinkSigner(KEY)
    customer = "alice@contoso.example"
    key = signer.customer_key("widget-1", customer)
    assert key == LinkSigner(KEY).customer_key("widget-1", customer)
    assert customer not in key
    assert "alice" not in key
    assert len(key) * 6 >= 128
    assert URL_SAFE.match(key)


def test_customer_keys_do_not_collide_across_the_widget_customer_boundary() -> None:
    signer = LinkSigner(KEY)
    assert signer.customer_key("ab", "c") != signer.customer_key("a", "bc")


def test_customer_keys_depend_on_the_signing_key() -> None:
    assert LinkSigner(KEY).customer_key("w", "alice") != LinkSigner(OTHER_KEY).customer_key(
        "w", "alice"
    )


def test_customer_keys_list_the_current_key_first_then_the_previous() -> None:
    rotated = LinkSigner(OTHER_KEY, previous_key=KEY)
    keys = rotated.customer_keys("widget-1", "alice")
    assert keys == [
        LinkSigner(OTHER_KEY).customer_key("widget-1", "alice"),
        LinkSigner(KEY).customer_key("widget-1", "alice"),
    ]
    assert rotated.customer_key("widget-1", "alice") == keys[0]
    assert LinkSigner(KEY).customer_keys("widget-1", "alice") == [
        LinkSigner(KEY).customer_key("widget-1", "alice")
    ]


# ------------------------------------------------------------------------------------------
# reconnect_url
# ------------------------------------------------------------------------------------------


def query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def test_reconnect_url_is_none_when_reconnect_is_disabled() -> None:
    assert reconnect_url(widget(reconnect_enabled=False), GOOD) is None


@pytest.mark.parametrize("portal_url", [None, ""])
def test_reconnect_url_is_none_without_a_portal(portal_url: str | None) -> None:
    assert reconnect_url(widget(portal_url=portal_url), GOOD) is None


def test_reconnect_url_adds_the_parameter_to_the_portal() -> None:
    url = reconnect_url(widget(), GOOD)
    assert url == f"https://contoso.example/support?{RECONNECT_PARAM}={GOOD}"


def test_reconnect_url_keeps_existing_query_parameters_in_order() -> None:
    url = reconnect_url(widget(portal_url="https://contoso.example/p?lang=en&a=1&a=2"), GOOD)
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "contoso.example", "/p")
    assert query(url) == [("lang", "en"), ("a", "1"), ("a", "2"), (RECONNECT_PARAM, GOOD)]


def test_reconnect_url_replaces_an_existing_reconnect_parameter() -> None:
    portal = f"https://contoso.example/p?{RECONNECT_PARAM}=stale&x=1&{RECONNECT_PARAM}=older"
    url = reconnect_url(widget(portal_url=portal), GOOD)
    assert url is not None
    assert query(url) == [("x", "1"), (RECONNECT_PARAM, GOOD)]
    assert "stale" not in url
    assert "older" not in url


def test_reconnect_url_keeps_encoded_values_and_blank_parameters() -> None:
    portal = "https://contoso.example/p?q=a%26b%3Dc&sp=a+b&pct=50%25&empty=&u=%C3%A9"
    url = reconnect_url(widget(portal_url=portal), GOOD)
    assert url is not None
    assert query(url) == [
        ("q", "a&b=c"),
        ("sp", "a b"),
        ("pct", "50%"),
        ("empty", ""),
        ("u", "\u00e9"),
        (RECONNECT_PARAM, GOOD),
    ]
    # Properly encoded: no raw reserved or non-ASCII characters leak into the query.
    raw_query = urlsplit(url).query
    assert raw_query.isascii()
    assert " " not in raw_query
    assert raw_query.count("&") == len(query(url)) - 1


@pytest.mark.parametrize(
    "original_query",
    ["a=%20b", "sp=a+b", "flag", "empty=", "x=1&y=2&x=3", "u=%C3%A9&q=a%26b", "k=v;w"],
)
def test_reconnect_url_keeps_other_parameters_byte_for_byte(original_query: str) -> None:
    # Re-encoding could turn `%20` into `+` or `flag` into `flag=`, which a page may read
    # differently; the portal's own query must reach it unchanged.
    portal = f"https://contoso.example/p?{original_query}"
    url = reconnect_url(widget(portal_url=portal), GOOD)
    assert url == f"{portal}&{RECONNECT_PARAM}={GOOD}"


@pytest.mark.parametrize(
    "stale",
    [
        f"{RECONNECT_PARAM}=old",
        f"{RECONNECT_PARAM}",
        f"{RECONNECT_PARAM}=",
        "oc%2Ereconnectid=old",
        "oc.reconnectid=a%26b",
    ],
)
def test_reconnect_url_drops_any_spelling_of_an_existing_reconnect_parameter(stale: str) -> None:
    url = reconnect_url(widget(portal_url=f"https://contoso.example/p?a=1&{stale}&b=2"), GOOD)
    assert url == f"https://contoso.example/p?a=1&b=2&{RECONNECT_PARAM}={GOOD}"


def test_reconnect_url_keeps_parameters_that_only_resemble_the_reconnect_one() -> None:
    portal = "https://contoso.example/p?oc.reconnectid2=1&xoc.reconnectid=2&OC.RECONNECTID=3"
    url = reconnect_url(widget(portal_url=portal), GOOD)
    assert url == f"{portal}&{RECONNECT_PARAM}={GOOD}"


def test_reconnect_url_encodes_the_value_it_adds() -> None:
    # Reconnect ids are URL-safe, but the helper must not trust that blindly.
    url = reconnect_url(widget(), "a b&c=d/e?f#g")
    assert url is not None
    assert "#" not in url
    assert query(url) == [(RECONNECT_PARAM, "a b&c=d/e?f#g")]


def test_reconnect_url_keeps_port_path_and_fragment() -> None:
    url = reconnect_url(widget(portal_url="http://localhost:8080/a/b/?x=1#chat"), GOOD)
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == (
        "http",
        "localhost:8080",
        "/a/b/",
        "chat",
    )
    assert query(url) == [("x", "1"), (RECONNECT_PARAM, GOOD)]
    assert url.endswith("#chat")


def test_the_reconnect_id_appears_verbatim_in_the_link() -> None:
    # URL-safe ids need no escaping, so what the widget reads back is the id itself.
    reconnect_id = LinkSigner(KEY).reconnect_id(conversation("a.b_c-d"))
    url = reconnect_url(widget(), reconnect_id)
    assert url is not None
    assert f"{RECONNECT_PARAM}={reconnect_id}" in url
    assert dict(query(url))[RECONNECT_PARAM] == reconnect_id


# ------------------------------------------------------------------------------------------
# Quick replies
# ------------------------------------------------------------------------------------------

LINK = f"https://contoso.example/support?{RECONNECT_PARAM}={GOOD}"


def test_quick_reply_renders_the_slug() -> None:
    text = f"If we get cut off, come back here: {QUICK_REPLY_SLUG}"
    assert render_quick_reply(text, LINK) == f"If we get cut off, come back here: {LINK}"


def test_quick_reply_renders_every_occurrence() -> None:
    text = f"{QUICK_REPLY_SLUG} or {QUICK_REPLY_SLUG}{QUICK_REPLY_SLUG}"
    assert render_quick_reply(text, LINK) == f"{LINK} or {LINK}{LINK}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "No link here.",
        "{ReconnectUrl}",
        "{ReconnectID}",
        "{reconnecturl{reconnectid}}",
        "{ReconnectUrl{ReconnectId}}",
        "{ReconnectUrl {ReconnectID}}",
        "ReconnectUrl{ReconnectID}",
        "{{ReconnectUrl}{ReconnectID}}",
        "Unicode \u00e9\u4e2d\U0001f600 and $1 \\1 %s {0}",
    ],
)
def test_quick_reply_leaves_other_text_alone(text: str) -> None:
    assert render_quick_reply(text, LINK) == text


def test_quick_reply_keeps_the_surrounding_text_exactly() -> None:
    text = f"  Hi,\n\t{QUICK_REPLY_SLUG}.\n{{ReconnectUrl}} stays  "
    assert render_quick_reply(text, LINK) == f"  Hi,\n\t{LINK}.\n{{ReconnectUrl}} stays  "


def test_quick_reply_does_not_interpret_the_link() -> None:
    # A link full of characters that mean something to regex or format engines.
    odd = "https://x.example/p?a=$1&b=\\g<0>&c={0}"
    assert render_quick_reply(QUICK_REPLY_SLUG, odd) == odd
