"""The widget settings cache (docs/contract.md §2.1): a change made on one instance takes effect on
another within WIDGET_SETTINGS_CACHE_SECONDS and never after it, and at once on the instance
that made it. Two App instances on the same tables of a real Azurite; the clock is moved."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient

from local.azurite import Azurite
from shared.domain.conversation import Event, EventType
from shared.domain.errors import UnknownWidget
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.settings import Precondition
from shared.services.widget_cache import DEFAULT_MAX_AGE
from shared.storage.entities import Versioned
from shared.storage.store import TableStore
from shared.wiring import STORAGE_CLIENT_OPTIONS
from tests.conftest import FakeClock, make_service

WIDGET = "w-cache"
WINDOW = timedelta(seconds=5)
PORTAL = "https://contoso.example/chat"
ENABLED = WidgetSettings(WIDGET, reconnect_enabled=True, time_limit_minutes=10, portal_url=PORTAL)


@dataclass
class Instances:
    """Two instances of the app on the same tables, sharing one movable clock."""

    writer: App
    other: App
    clock: FakeClock


def other_instance(first: App, azurite: Azurite, clock: FakeClock, max_age: timedelta) -> App:
    """A second App with its own storage client and cache, on `first`'s tables."""
    prefix = first.store.table_names[0].removesuffix("widgets")
    client = TableServiceClient.from_connection_string(
        azurite.connection_string, **STORAGE_CLIENT_OPTIONS
    )
    return App(TableStore(client, prefix), first.signer, clock=clock, widget_cache_max_age=max_age)


def instances_with(azurite: Azurite, clock: FakeClock, max_age: timedelta) -> Instances:
    writer = make_service(azurite.connection_string, clock, widget_cache_max_age=max_age)
    return Instances(writer, other_instance(writer, azurite, clock, max_age), clock)


@pytest.fixture
def instances(azurite: Azurite, clock: FakeClock) -> Instances:
    return instances_with(azurite, clock, WINDOW)


def seen_by(app: App) -> WidgetSettings:
    """The widget as a widget route sees it on `app`."""
    return app.reconnect.customer_session(WIDGET, None).widget


def change_limit(app: App, minutes: int) -> None:
    app.settings.update_widget(
        WIDGET, lambda widget: dataclasses.replace(widget, time_limit_minutes=minutes)
    )


def test_the_default_window_is_the_contracts_five_seconds() -> None:
    assert DEFAULT_MAX_AGE == WINDOW


def test_a_change_reaches_the_other_instance_within_the_window_and_at_once_the_writer(
    instances: Instances,
) -> None:
    writer, other, clock = instances.writer, instances.other, instances.clock
    writer.settings.put_widget(ENABLED)
    assert seen_by(other).time_limit_minutes == 10  # read now: at most 5 s old from here
    assert seen_by(writer).time_limit_minutes == 10

    clock.advance(seconds=2)
    change_limit(writer, 20)

    assert seen_by(writer).time_limit_minutes == 20, "the writer sees its change at once"
    clock.advance(seconds=2)
    assert seen_by(other).time_limit_minutes == 10, "the other instance may cache it..."
    clock.advance(seconds=1)
    assert seen_by(other).time_limit_minutes == 20, "...but never longer than the window"


def test_the_window_counts_from_the_read_not_from_the_last_use(instances: Instances) -> None:
    writer, other, clock = instances.writer, instances.other, instances.clock
    writer.settings.put_widget(ENABLED)
    assert seen_by(other).time_limit_minutes == 10
    change_limit(writer, 30)
    for _ in range(4):
        clock.advance(seconds=1)
        assert seen_by(other).time_limit_minutes == 10
    clock.advance(seconds=1)
    assert seen_by(other).time_limit_minutes == 30


def test_a_deleted_widget_is_never_served_as_existing_past_the_window(
    instances: Instances,
) -> None:
    writer, other, clock = instances.writer, instances.other, instances.clock
    writer.settings.put_widget(ENABLED)
    assert seen_by(other).reconnect_enabled
    registered, _ = other.conversations.register("c-del", WIDGET, "agent-1", None)
    assert registered.reconnect_url is not None

    writer.settings.delete_widget(WIDGET)

    with pytest.raises(UnknownWidget):
        seen_by(writer)
    clock.advance(seconds=4)
    assert seen_by(other).reconnect_enabled
    clock.advance(seconds=1)
    with pytest.raises(UnknownWidget):
        seen_by(other)
    with pytest.raises(UnknownWidget):
        other.conversations.register("c-del-2", WIDGET, "agent-1", None)
    # A deleted widget's conversations behave as with reconnection off: no link.
    assert other.conversations.get_conversation("c-del").reconnect_url is None


def test_a_widget_created_on_another_instance_becomes_visible_within_the_window(
    instances: Instances,
) -> None:
    """'No such widget' is cached too (anonymous routes would otherwise read storage for
    every made-up id), for the same window."""
    writer, other, clock = instances.writer, instances.other, instances.clock
    with pytest.raises(UnknownWidget):
        seen_by(other)
    with pytest.raises(UnknownWidget):
        seen_by(writer)

    writer.settings.put_widget(ENABLED)

    assert seen_by(writer).reconnect_enabled, "the writer forgot its cached 'no such widget'"
    clock.advance(seconds=4)
    with pytest.raises(UnknownWidget):
        seen_by(other)
    clock.advance(seconds=1)
    assert seen_by(other).reconnect_enabled


def test_platform_events_use_settings_at_most_the_window_old(instances: Instances) -> None:
    """A disconnect on the other instance follows the widget as it was at most 5 s ago."""
    writer, other, clock = instances.writer, instances.other, instances.clock
    writer.settings.put_widget(ENABLED)
    for conversation_id in ("c-ev-1", "c-ev-2"):
        other.conversations.register(conversation_id, WIDGET, "agent-1", None)

    writer.settings.put_widget(dataclasses.replace(ENABLED, reconnect_enabled=False))
    clock.advance(seconds=4)
    early = other.conversations.apply_event("c-ev-1", Event(EventType.CUSTOMER_DISCONNECTED), None)
    clock.advance(seconds=1)
    late = other.conversations.apply_event("c-ev-2", Event(EventType.CUSTOMER_DISCONNECTED), None)

    # Within the window the cached "reconnect on" may hold the agent; from then on it is off.
    assert early.conversation.state.value == "active"
    assert late.conversation.state.value == "wrap_up"
    assert late.reconnect_url is None


def test_zero_turns_the_cache_off(azurite: Azurite, clock: FakeClock) -> None:
    pair = instances_with(azurite, clock, timedelta(0))
    with pytest.raises(UnknownWidget):
        seen_by(pair.other)
    pair.writer.settings.put_widget(ENABLED)
    assert seen_by(pair.other).time_limit_minutes == 10
    change_limit(pair.writer, 40)
    assert seen_by(pair.other).time_limit_minutes == 40
    pair.writer.settings.delete_widget(WIDGET)
    with pytest.raises(UnknownWidget):
        seen_by(pair.other)


def test_a_read_racing_the_writers_own_change_does_not_cache_the_old_settings(
    instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route's storage read that began before this instance's write ended must not put
    what it read in the cache: the writer's change takes effect here at once."""
    writer = instances.writer
    writer.settings.put_widget(ENABLED)
    read = writer.store.get_widget
    raced = False

    def read_then_change(widget_id: str) -> Versioned[WidgetSettings] | None:
        nonlocal raced
        found = read(widget_id)
        if not raced:
            raced = True
            change_limit(writer, 50)  # lands after this read, before its answer is cached
        return found

    monkeypatch.setattr(writer.store, "get_widget", read_then_change)
    assert seen_by(writer).time_limit_minutes == 10  # the racing read itself answers old
    monkeypatch.setattr(writer.store, "get_widget", read)
    assert seen_by(writer).time_limit_minutes == 50


def test_a_failed_write_still_refreshes_the_writer(instances: Instances) -> None:
    """A write whose outcome is unknown may have been stored: evicted however it ended."""
    writer = instances.writer
    writer.settings.put_widget(ENABLED)
    assert seen_by(writer).time_limit_minutes == 10
    change_limit(instances.other, 60)  # elsewhere: not seen here yet
    assert seen_by(writer).time_limit_minutes == 10

    with pytest.raises(Exception, match="precondition"):
        writer.settings.update_widget(WIDGET, _failing("precondition"), Precondition())

    assert seen_by(writer).time_limit_minutes == 60


def test_the_cache_holds_a_bounded_number_of_widgets(azurite: Azurite, clock: FakeClock) -> None:
    writer = make_service(azurite.connection_string, clock)
    other = other_instance(writer, azurite, clock, WINDOW)
    other.widgets.max_entries = 2
    for widget_id in ("w-1", "w-2", "w-3"):
        writer.settings.put_widget(dataclasses.replace(ENABLED, widget_id=widget_id))
        other.widgets.require(widget_id)
    for widget_id in ("w-1", "w-3"):
        writer.settings.update_widget(
            widget_id, lambda widget: dataclasses.replace(widget, time_limit_minutes=70)
        )

    # w-1 was the least recently used of three: dropped, so read again; w-3 is still held.
    assert other.widgets.require("w-1").time_limit_minutes == 70
    assert other.widgets.require("w-3").time_limit_minutes == 10


def test_the_admin_reads_storage_not_the_cache(instances: Instances) -> None:
    """The admin writes with If-Match: the version it reads must be the stored one, even on
    an instance whose cache still holds the widget as it was."""
    writer, other = instances.writer, instances.other
    writer.settings.put_widget(ENABLED)
    assert seen_by(other).time_limit_minutes == 10
    saved = writer.settings.update_widget(
        WIDGET, lambda widget: dataclasses.replace(widget, time_limit_minutes=15)
    )

    current = other.settings.get_widget(WIDGET)

    assert current.etag == saved.etag
    assert current.value.time_limit_minutes == 15
    updated = other.settings.update_widget(
        WIDGET,
        lambda widget: dataclasses.replace(widget, time_limit_minutes=16),
        Precondition(must_exist=True, etags=(current.etag,)),
    )
    assert seen_by(other).time_limit_minutes == 16, "the admin's instance refreshed at once"
    assert updated.value.time_limit_minutes == 16


def _failing(message: str) -> Callable[[WidgetSettings], WidgetSettings]:
    def change(widget: WidgetSettings) -> WidgetSettings:
        raise RuntimeError(message)

    return change
