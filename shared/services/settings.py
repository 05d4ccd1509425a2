"""The admin's use cases: read, list, create or replace, update and delete widget settings.

Settings have their own, simpler write path than conversations (one entity, no index
rows), with the same bounded retry on a lost race.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.domain.errors import PreconditionMismatch, UnknownWidget, VersionNotNamed
from shared.domain.settings import WidgetSettings
from shared.services.clock import Clock
from shared.services.retry import AGAIN, Retry, retry_lost_races
from shared.services.widget_cache import WidgetSettingsCache
from shared.storage.entities import Versioned
from shared.storage.store import TableStore
from shared.storage.tables import ConcurrencyConflict

SETTINGS_CHANGING = "The settings are changing too fast; retry shortly."


@dataclass(frozen=True)
class Precondition:
    """What the caller requires of the stored settings before a write.

    `must_exist`: a current version must exist (any precondition on it fails on a missing
    widget); `etags`: one of these must be the current version, and a lost race then fails
    the write instead of re-reading (None: any version); `must_not_exist`: create only.
    """

    must_exist: bool = False
    etags: tuple[str, ...] | None = None
    must_not_exist: bool = False

    def check(self, etag: str) -> None:
        """VersionNotNamed unless the current version `etag` is one the caller named."""
        if self.etags is not None and etag not in self.etags:
            raise VersionNotNamed()


NO_PRECONDITION = Precondition()


def read_widget(store: TableStore, widget_id: str) -> Versioned[WidgetSettings]:
    """The widget's settings and version; UnknownWidget if there are none."""
    found = store.get_widget(widget_id)
    if found is None:
        raise UnknownWidget(widget_id)
    return found


class WidgetSettingsUseCases:
    """The admin's use cases over a TableStore and a clock; every write evicts the widget
    from this instance's settings cache when it ends, so it takes effect here at once.

    The admin reads storage, not the cache: a write must name the current version
    (If-Match), and an admin who just changed a widget elsewhere must see that change.
    """

    def __init__(self, store: TableStore, clock: Clock, cache: WidgetSettingsCache) -> None:
        self.store = store
        self.clock = clock
        self.cache = cache

    def get_widget(self, widget_id: str) -> Versioned[WidgetSettings]:
        return read_widget(self.store, widget_id)

    def list_widgets(
        self, page_size: int, continuation: Any | None
    ) -> tuple[list[WidgetSettings], Any | None]:
        return self.store.list_widgets(page_size, continuation)

    def put_widget(
        self, widget: WidgetSettings, precondition: Precondition = NO_PRECONDITION
    ) -> tuple[Versioned[WidgetSettings], bool]:
        """Create or replace settings honouring the precondition; returns (saved, created).

        Without a precondition naming versions a lost race is not the caller's business
        (a mismatch is for versions the caller named): it reads again and replaces what won.
        """
        widget = _stamped(widget, self.clock())

        def attempt() -> tuple[Versioned[WidgetSettings], bool] | Retry:
            current = self.store.get_widget(widget.widget_id)
            if precondition.must_not_exist and current is not None:
                raise PreconditionMismatch(f"Widget '{widget.widget_id}' already exists.")
            if current is None:
                if precondition.must_exist:  # a required version never matches a missing widget
                    raise PreconditionMismatch(f"Widget '{widget.widget_id}' does not exist.")
                try:
                    return Versioned(widget, self.store.insert_widget(widget)), True
                except ConcurrencyConflict:
                    if precondition.must_not_exist:
                        raise PreconditionMismatch(
                            f"Widget '{widget.widget_id}' was created concurrently."
                        ) from None
                    return AGAIN
            precondition.check(current.etag)
            etag = self._replace_widget(widget, current.etag, precondition)
            if etag is not None:
                return Versioned(widget, etag), False
            return AGAIN

        # Evicted however the write ended: a timeout may still have stored it.
        try:
            return retry_lost_races(attempt, SETTINGS_CHANGING)
        finally:
            self.cache.evict(widget.widget_id)

    def update_widget(
        self,
        widget_id: str,
        change: Callable[[WidgetSettings], WidgetSettings],
        precondition: Precondition = NO_PRECONDITION,
    ) -> Versioned[WidgetSettings]:
        """Apply `change` to the current settings (e.g. a merge patch) and save conditionally."""

        def attempt() -> Versioned[WidgetSettings] | Retry:
            current = self.get_widget(widget_id)
            precondition.check(current.etag)
            updated = _stamped(change(current.value), self.clock())
            etag = self._replace_widget(updated, current.etag, precondition)
            if etag is not None:
                return Versioned(updated, etag)
            return AGAIN

        try:
            return retry_lost_races(attempt, SETTINGS_CHANGING)
        finally:
            self.cache.evict(widget_id)

    def delete_widget(self, widget_id: str, precondition: Precondition = NO_PRECONDITION) -> None:
        def attempt() -> None | Retry:
            current = self.get_widget(widget_id)
            precondition.check(current.etag)
            try:
                self.store.delete_widget(widget_id, current.etag)
            except ConcurrencyConflict:
                if precondition.etags is not None:
                    raise PreconditionMismatch(f"Widget '{widget_id}' changed meanwhile.") from None
                return AGAIN
            return None

        try:
            retry_lost_races(attempt, SETTINGS_CHANGING)
        finally:
            self.cache.evict(widget_id)

    def _replace_widget(
        self, widget: WidgetSettings, etag: str, precondition: Precondition
    ) -> str | None:
        """The new ETag; None when another write won and the caller named no ETag (re-read)."""
        try:
            return self.store.replace_widget(widget, etag)
        except ConcurrencyConflict:
            if precondition.etags is not None:
                raise PreconditionMismatch(
                    f"Widget '{widget.widget_id}' changed meanwhile; read it and retry."
                ) from None
            return None


def _stamped(widget: WidgetSettings, now: datetime) -> WidgetSettings:
    return dataclasses.replace(widget, updated_at=now)
