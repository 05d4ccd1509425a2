"""Times as the contract writes them (no pydantic: integration events need this at import)."""

from __future__ import annotations

from datetime import datetime


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second, as every time in the contract."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
