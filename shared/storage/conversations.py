"""Conversations in the `conversations` table: the source of truth, written only by
`shared.services.writes`."""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.domain.conversation import Conversation
from shared.storage.entities import (
    CONVERSATION_ROW,
    Versioned,
    conversation_from_entity,
    conversation_to_entity,
    etag_of,
)
from shared.storage.tables import ConcurrencyConflict, TableBase, translate_errors


class ConversationTable(TableBase):
    """Read a conversation; insert or replace it conditionally."""

    @translate_errors
    def get_conversation(self, conversation_id: str) -> Versioned[Conversation] | None:
        try:
            entity = self._table("conversations").get_entity(conversation_id, CONVERSATION_ROW)
        except ResourceNotFoundError:
            return None
        return Versioned(conversation_from_entity(entity), etag_of(entity.metadata))

    @translate_errors
    def insert_conversation(self, conversation: Conversation) -> str:
        try:
            metadata = self._table("conversations").create_entity(
                conversation_to_entity(conversation)
            )
        except ResourceExistsError:
            raise ConcurrencyConflict(conversation.conversation_id) from None
        return etag_of(metadata)

    @translate_errors
    def replace_conversation(self, conversation: Conversation, etag: str) -> str:
        """The one way a conversation changes: a replace conditional on the ETag read."""
        try:
            metadata = self._table("conversations").update_entity(
                conversation_to_entity(conversation),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyConflict(conversation.conversation_id) from None
        return etag_of(metadata)
