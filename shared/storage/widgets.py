"""Widget settings in the `widgets` table: one entity per widget, ETag-conditional writes."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.domain.settings import WidgetSettings
from shared.storage.entities import (
    SETTINGS_ROW,
    Versioned,
    etag_of,
    widget_from_entity,
    widget_to_entity,
)
from shared.storage.tables import ConcurrencyConflict, TableBase, translate_errors


class WidgetTable(TableBase):
    """Read and write widget settings."""

    @translate_errors
    def get_widget(self, widget_id: str) -> Versioned[WidgetSettings] | None:
        try:
            entity = self._table("widgets").get_entity(widget_id, SETTINGS_ROW)
        except ResourceNotFoundError:
            return None
        return Versioned(widget_from_entity(entity), etag_of(entity.metadata))

    @translate_errors
    def list_widgets(
        self, page_size: int, continuation: Any | None
    ) -> tuple[list[WidgetSettings], Any | None]:
        """One page of widgets in id order and the token of the next page (None at the end)."""
        pages = (
            self._table("widgets")
            .query_entities(
                "RowKey eq @row", parameters={"row": SETTINGS_ROW}, results_per_page=page_size
            )
            .by_page(continuation_token=continuation)
        )
        page: list[Any] = list(next(pages, []))
        widgets = [widget_from_entity(entity) for entity in page]
        return widgets, pages.continuation_token  # type: ignore[attr-defined]

    @translate_errors
    def insert_widget(self, widget: WidgetSettings) -> str:
        """Create a widget's settings; ConcurrencyConflict if it exists. Returns the ETag."""
        try:
            metadata = self._table("widgets").create_entity(widget_to_entity(widget))
        except ResourceExistsError:
            raise ConcurrencyConflict(widget.widget_id) from None
        return etag_of(metadata)

    @translate_errors
    def replace_widget(self, widget: WidgetSettings, etag: str) -> str:
        """Replace settings only if unchanged since read (ETag); returns the new ETag."""
        try:
            metadata = self._table("widgets").update_entity(
                widget_to_entity(widget),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyConflict(widget.widget_id) from None
        return etag_of(metadata)

    @translate_errors
    def delete_widget(self, widget_id: str, etag: str) -> None:
        try:
            self._table("widgets").delete_entity(
                widget_id, SETTINGS_ROW, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            raise ConcurrencyConflict(widget_id) from None
