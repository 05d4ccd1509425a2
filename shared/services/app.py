"""The application: its use cases, one object per caller, over one store, one writer, one
link signer and one clock (built by `shared.wiring`, or by tests and benchmarks)."""

from __future__ import annotations

from datetime import timedelta

from shared.domain.links import LinkSigner
from shared.services.clock import Clock, utc_now
from shared.services.conversations import ConversationUseCases
from shared.services.enforcement import TimeLimitEnforcer
from shared.services.outbox import EventOutbox, EventQueues
from shared.services.reconnect import ReconnectUseCases
from shared.services.relay import EventRelay
from shared.services.settings import WidgetSettingsUseCases
from shared.services.widget_cache import DEFAULT_MAX_AGE, WidgetSettingsCache
from shared.services.writes import ConversationWriter
from shared.storage.store import TableStore


class App:
    """The use cases of the four callers: `settings` (admin), `conversations` (platform),
    `reconnect` (widget) and `timer`, sharing one ConversationWriter and one widget settings
    cache (`widgets`, entries at most `widget_cache_max_age` old; zero: no cache); and
    `relay`, the integration events' (None while events are off)."""

    def __init__(
        self,
        store: TableStore,
        signer: LinkSigner,
        *,
        auto_close_after: timedelta = timedelta(minutes=15),
        clock: Clock = utc_now,
        events: EventQueues | None = None,
        widget_cache_max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self.store = store
        self.signer = signer
        self.auto_close_after = auto_close_after
        self.clock = clock
        # Without queues (events off) nothing is staged or relayed.
        outbox = None if events is None else EventOutbox(events.outbox, store, events.source, clock)
        self.relay = (
            None
            if events is None or outbox is None
            else EventRelay(store, outbox, events.public, clock)
        )
        self.writer = ConversationWriter(
            store, auto_close_after=auto_close_after, clock=clock, outbox=outbox
        )
        self.widgets = WidgetSettingsCache(store, clock, widget_cache_max_age)
        self.settings = WidgetSettingsUseCases(store, clock, self.widgets)
        self.conversations = ConversationUseCases(store, self.writer, signer, clock, self.widgets)
        self.reconnect = ReconnectUseCases(store, self.writer, signer, clock, self.widgets)
        self.timer = TimeLimitEnforcer(
            store, self.writer, auto_close_after=auto_close_after, clock=clock, relay=self.relay
        )
