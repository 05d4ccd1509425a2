"""The one reader of widget settings for requests and events: a per-instance cache whose
entries are at most `max_age` old (docs/contract.md §2.1, WIDGET_SETTINGS_CACHE_SECONDS).

What may be served, and why:
- An entry is served only while younger than `max_age`, its age counted from *before* the
  storage read that filled it, so a change made anywhere is seen within `max_age`. A clock
  that went backwards makes an entry look older than it may be, not younger: it is dropped.
- "No such widget" is cached too, for the same window: the widget routes are anonymous, and
  without it every request naming a made-up widget id would cost a storage read. A widget
  created on another instance is therefore visible within the window, as a change is.
- The instance that writes settings evicts the entry when the write ends (succeeded, failed
  or unknown), and a read that began before the eviction does not fill the cache with what it
  read: the writer's next read goes to storage, so its own change takes effect at once.
- At most `max_entries` widgets are held (least recently used dropped first), so made-up ids
  cannot grow the process. `max_age` zero turns the cache off: every call reads storage.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.errors import UnknownWidget
from shared.domain.settings import WidgetSettings
from shared.services.clock import Clock
from shared.storage.store import TableStore

DEFAULT_MAX_AGE = timedelta(seconds=5)
# Far more widgets than an Omnichannel org has; a full cache only costs storage reads.
DEFAULT_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class _Entry:
    widget: WidgetSettings | None  # None: no such widget
    read_at: datetime


class WidgetSettingsCache:
    """Widget settings for every widget route, platform event and Omnichannel route;
    thread-safe, bounded, at most `max_age` old."""

    def __init__(
        self,
        store: TableStore,
        clock: Clock,
        max_age: timedelta = DEFAULT_MAX_AGE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_age < timedelta(0) or max_entries < 1:
            raise ValueError("max_age must be >= 0 and max_entries >= 1")
        self.store = store
        self.clock = clock
        self.max_age = max_age
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Bumped by every eviction: a read that saw another generation must not fill.
        self._generation = 0

    def find(self, widget_id: str) -> WidgetSettings | None:
        """The widget's settings, or None when it does not exist (both at most max_age old)."""
        if not self.max_age:
            found = self.store.get_widget(widget_id)
            return found.value if found else None
        now = self.clock()
        with self._lock:
            entry = self._entries.get(widget_id)
            if entry is not None and timedelta(0) <= now - entry.read_at < self.max_age:
                self._entries.move_to_end(widget_id)
                return entry.widget
            generation = self._generation
        found = self.store.get_widget(widget_id)
        widget = found.value if found else None
        with self._lock:
            if generation == self._generation:
                self._entries[widget_id] = _Entry(widget, now)
                self._entries.move_to_end(widget_id)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return widget

    def require(self, widget_id: str) -> WidgetSettings:
        """The widget's settings; UnknownWidget if it does not exist."""
        widget = self.find(widget_id)
        if widget is None:
            raise UnknownWidget(widget_id)
        return widget

    def or_default(self, widget_id: str) -> WidgetSettings:
        """The widget's settings, or reconnection off when it was deleted."""
        # A deleted widget leaves its conversations behaving as with reconnection off.
        return self.find(widget_id) or WidgetSettings(widget_id=widget_id)

    def evict(self, widget_id: str) -> None:
        """Forget the widget, and keep reads in flight from storing what they read."""
        with self._lock:
            self._generation += 1
            self._entries.pop(widget_id, None)
