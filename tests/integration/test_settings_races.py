"""Settings edits racing each other against a real Azurite (`shared/services/settings.py`):
a write that loses a race reads again and wins, or answers 412 under If-Match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from shared.domain.errors import PreconditionMismatch
from shared.domain.settings import WidgetSettings
from shared.services.app import App
from shared.services.settings import Precondition

PORTAL = "https://contoso.example/chat"

# --- settings edits racing each other ------------------------------------------------------


def test_a_settings_write_without_if_match_that_loses_a_race_reads_again_and_wins(
    service: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """412 is for an If-Match that does not hold; an unconditional write just goes last."""
    saved, _ = service.settings.put_widget(WidgetSettings("w", True, 10, PORTAL))
    replace = service.store.replace_widget
    concurrent = WidgetSettings("w", True, 20, PORTAL)

    def racing(widget: WidgetSettings, etag: str) -> str:
        if etag == saved.etag:
            replace(concurrent, etag)  # another admin's edit lands first
        return replace(widget, etag)

    monkeypatch.setattr(service.store, "replace_widget", racing)

    patched = service.settings.update_widget(
        "w", lambda current: dataclasses.replace(current, time_limit_minutes=30)
    )
    assert patched.value.time_limit_minutes == 30
    assert service.settings.get_widget("w").value.time_limit_minutes == 30

    current = service.settings.get_widget("w")
    monkeypatch.setattr(service.store, "replace_widget", _racing_once(replace, current.etag))
    with pytest.raises(PreconditionMismatch):
        service.settings.put_widget(
            WidgetSettings("w", True, 40, PORTAL),
            Precondition(must_exist=True, etags=(current.etag,)),
        )
    put, created = service.settings.put_widget(WidgetSettings("w", True, 50, PORTAL))
    assert (put.value.time_limit_minutes, created) == (50, False)


def _racing_once(
    replace: Callable[[WidgetSettings, str], str], etag: str
) -> Callable[[WidgetSettings, str], str]:
    def racing(widget: WidgetSettings, given: str) -> str:
        if given == etag:
            replace(dataclasses.replace(widget, time_limit_minutes=99), given)
        return replace(widget, given)

    return racing
