"""Reconnect IDs and links: derived with a keyed MAC, so nothing secret is ever stored.

A reconnect ID reads `<conversationId>.<epoch>.<kid><mac>`: the conversation it opens
(so a continue costs one point read), the link epoch (revoking bumps it, so old links
stop matching at once), the id of the signing key, and an HMAC-SHA256 over widget,
conversation and epoch. Without the key nobody can forge or guess one (192 bits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from shared.domain.conversation import Conversation
from shared.domain.errors import FieldProblem, InvalidInput
from shared.domain.settings import WidgetSettings
from shared.domain.urls import with_query_param

RECONNECT_PARAM = "oc.reconnectid"
QUICK_REPLY_SLUG = "{ReconnectUrl{ReconnectID}}"
# The most characters a quick reply may have, as sent and as rendered: each slug grows by
# the link's length (up to ~2.2 K), so a text of slugs would otherwise render to megabytes.
MAX_QUICK_REPLY_LENGTH = 32768
KID_LENGTH = 6
MAC_LENGTH = 32  # base64url characters: 192 bits of the HMAC
MAX_RECONNECT_ID_LENGTH = 128 + 1 + 10 + 1 + KID_LENGTH + MAC_LENGTH
_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TAIL = re.compile(rf"^[A-Za-z0-9_-]{{{KID_LENGTH + MAC_LENGTH}}}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(key: bytes) -> str:
    """A short public name of a signing key, so links say which key made them."""
    return _b64(hashlib.sha256(b"chat-reconnect key id\n" + key).digest())[:KID_LENGTH]


@dataclass(frozen=True)
class ParsedReconnectId:
    """The readable parts of a well-formed reconnect ID (not yet verified)."""

    conversation_id: str
    epoch: int
    kid: str
    mac: str


def parse_reconnect_id(reconnect_id: str) -> ParsedReconnectId | None:
    """The parts of a reconnect ID, or None when it is malformed."""
    if len(reconnect_id) > MAX_RECONNECT_ID_LENGTH:
        return None
    conversation_id, _, rest = reconnect_id.rpartition(".")
    conversation_id, _, epoch_text = conversation_id.rpartition(".")
    # fullmatch: `$` alone would let a trailing newline through.
    if not _CONVERSATION_ID.fullmatch(conversation_id) or not _TAIL.fullmatch(rest):
        return None
    if not epoch_text.isascii() or not epoch_text.isdigit() or len(epoch_text) > 10:
        return None
    if epoch_text != str(int(epoch_text)):
        return None  # one spelling per link: no leading zeros
    return ParsedReconnectId(
        conversation_id=conversation_id,
        epoch=int(epoch_text),
        kid=rest[:KID_LENGTH],
        mac=rest[KID_LENGTH:],
    )


class LinkSigner:
    """Makes and checks reconnect IDs and customer hashes with the app's signing keys."""

    def __init__(self, key: bytes, previous_key: bytes | None = None) -> None:
        self._current = (key_id(key), key)
        # The previous key still verifies links it made, so rotating keys breaks none.
        self._keys = {key_id(key): key}
        if previous_key:
            self._keys.setdefault(key_id(previous_key), previous_key)

    @staticmethod
    def _mac(key: bytes, widget_id: str, conversation_id: str, epoch: int) -> str:
        message = f"reconnect\n{widget_id}\n{conversation_id}\n{epoch}".encode()
        return _b64(hmac.new(key, message, hashlib.sha256).digest())[:MAC_LENGTH]

    def reconnect_id(self, conversation: Conversation) -> str:
        """The current reconnect ID of a conversation (stable until revoked)."""
        kid, key = self._current
        mac = self._mac(
            key, conversation.widget_id, conversation.conversation_id, conversation.link_epoch
        )
        return f"{conversation.conversation_id}.{conversation.link_epoch}.{kid}{mac}"

    def verify(self, parsed: ParsedReconnectId, conversation: Conversation) -> bool:
        """True when `parsed` is the conversation's current reconnect ID, made with our key."""
        key = self._keys.get(parsed.kid)
        if key is None or parsed.conversation_id != conversation.conversation_id:
            return False
        expected = self._mac(
            key, conversation.widget_id, conversation.conversation_id, parsed.epoch
        )
        return hmac.compare_digest(expected, parsed.mac) and parsed.epoch == conversation.link_epoch

    def customer_keys(self, widget_id: str, customer_id: str) -> list[str]:
        """Keyed hashes of a customer id on a widget, current key first (raw ids are never kept)."""
        return [self._customer_key(key, widget_id, customer_id) for key in self._ordered_keys()]

    def customer_key(self, widget_id: str, customer_id: str) -> str:
        """The keyed hash under which a new conversation records its customer."""
        return self._customer_key(self._current[1], widget_id, customer_id)

    def _ordered_keys(self) -> list[bytes]:
        current = self._current[1]
        return [current, *(key for key in self._keys.values() if key != current)]

    @staticmethod
    def _customer_key(key: bytes, widget_id: str, customer_id: str) -> str:
        message = f"customer\n{widget_id}\n{customer_id}".encode()
        return _b64(hmac.new(key, message, hashlib.sha256).digest())[:43]


def reconnect_url(widget: WidgetSettings, reconnect_id: str) -> str | None:
    """The link a customer follows: the portal URL with `oc.reconnectid`, or None if disabled."""
    if not widget.reconnect_enabled or not widget.portal_url:
        return None
    return with_query_param(widget.portal_url, RECONNECT_PARAM, reconnect_id)


def render_quick_reply(text: str, url: str) -> str:
    """The agent's text with every `{ReconnectUrl{ReconnectID}}` slug replaced by the link;
    InvalidInput naming `text` when that would exceed MAX_QUICK_REPLY_LENGTH."""
    length = len(text) + text.count(QUICK_REPLY_SLUG) * (len(url) - len(QUICK_REPLY_SLUG))
    if length > MAX_QUICK_REPLY_LENGTH:
        raise InvalidInput(
            (
                FieldProblem(
                    "text",
                    f"would be {length} characters with the link inserted; "
                    f"at most {MAX_QUICK_REPLY_LENGTH}",
                ),
            )
        )
    return text.replace(QUICK_REPLY_SLUG, url)
