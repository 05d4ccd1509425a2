"""The If-Match / If-None-Match grammar, read into the settings use cases' Precondition."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.services.settings import Precondition


def names_etags(if_match: str | None) -> bool:
    """True when If-Match names ETags (not absent, not `*`): a lost race then fails it."""
    return if_match is not None and if_match.strip() != "*"


def precondition(if_match: str | None, if_none_match: str | None = None) -> Precondition:
    """What the headers require: If-Match never matches a missing resource, not even `*`;
    a list of ETags must name the current one; If-None-Match (only `*`) creates only."""
    etags = None
    if if_match is not None and names_etags(if_match):
        etags = tuple(candidate.strip() for candidate in if_match.split(","))
    # Imported here: the settings use cases load with the service, on the first request.
    from shared.services.settings import Precondition

    return Precondition(
        must_exist=if_match is not None, etags=etags, must_not_exist=if_none_match is not None
    )
