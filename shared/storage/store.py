"""Table storage adapter: all storage the app uses, on one Table service account.

The conversation entity is the source of truth. The `due`, `capacity` and `customers`
tables are indexes: written *before* the conversation change that needs them, removed
*after* it, verified by every reader, and repaired by the timer.
"""

from __future__ import annotations

from shared.storage.conversations import ConversationTable
from shared.storage.indexes import IndexTables
from shared.storage.outbox import OutboxNoteTable
from shared.storage.widgets import WidgetTable


class TableStore(WidgetTable, ConversationTable, IndexTables, OutboxNoteTable):
    """All storage the app uses: widgets, conversations, their index rows and outbox notes."""
