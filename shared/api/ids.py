"""The contract's id pattern (widget, conversation and agent ids), on its own so that
request parsing needs no pydantic model to check an id."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
