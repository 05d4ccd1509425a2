"""Key material for tests: RSA keys made in the test run and their public PEMs."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA private key (never a fixed one: tokens in tests are real RS256 JWTs)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_pem(private_key: Any) -> str:
    """The SubjectPublicKeyInfo PEM of a private key's public half, as widgets store it."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
