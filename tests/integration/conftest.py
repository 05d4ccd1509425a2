"""Fixtures the integration tests share: the admin API tests' public keys (generated once per
test module).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.keys import public_pem as _public_pem


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return _public_pem(rsa_key)


@pytest.fixture(scope="module")
def other_rsa_pem() -> str:
    return _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def small_rsa_pem() -> str:
    return _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.fixture(scope="module")
def ec_pem() -> str:
    return _public_pem(ec.generate_private_key(ec.SECP256R1()))
