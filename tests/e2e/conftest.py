"""Fixtures the end-to-end tests share: `customer_keys` (an identity provider's key pair per
test module) and `widget` (the authenticated widget of tests/e2e/authenticated.py, trusting
`key1`)."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.authenticated import WIDGET, put_widget
from tests.e2e.lifecycle import CustomerKeys


@pytest.fixture(scope="module")
def customer_keys() -> CustomerKeys:
    return CustomerKeys()


@pytest.fixture
def widget(api: httpx.Client, key1: rsa.RSAPrivateKey) -> str:
    put_widget(api, [("k1", key1)])
    return WIDGET
