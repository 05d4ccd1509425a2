"""What the conversation use cases share: storage to read, the writer to write, the widget
settings cache, the link signer and the clock."""

from __future__ import annotations

from shared.domain.links import LinkSigner
from shared.services.clock import Clock
from shared.services.widget_cache import WidgetSettingsCache
from shared.services.writes import ConversationWriter
from shared.storage.store import TableStore


class ConversationCases:
    """Base of the platform's and the widget's use cases: they read through the store and
    write only through the ConversationWriter; widget settings come from the cache only."""

    def __init__(
        self,
        store: TableStore,
        writer: ConversationWriter,
        signer: LinkSigner,
        clock: Clock,
        widgets: WidgetSettingsCache,
    ) -> None:
        self.store = store
        self.widgets = widgets
        self.writer = writer
        self.signer = signer
        self.clock = clock
