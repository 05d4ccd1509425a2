"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import pytest

from tests.e2e.lifecycle import CustomerKeys


@pytest.fixture(scope="module")
def customer_keys() -> CustomerKeys:
    return CustomerKeys()
