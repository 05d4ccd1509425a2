"""Customer tokens of authenticated widgets (shared/domain/auth.py), with real RSA keys and
RS256 JWTs.

Token validation reads the real clock (PyJWT), so every token is built relative to
`time.time()` with margins far larger than a test run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from shared.domain.auth import (
    LEEWAY_SECONDS,
    MAX_TOKEN_LENGTH,
    bearer_token,
    customer_id_from_token,
    load_public_key,
)
from shared.domain.errors import InvalidCustomerToken
from shared.domain.settings import Authentication, PublicKey
from tests.keys import new_rsa_key as _rsa_key
from tests.keys import public_pem as _public_pem

ISSUER = "https://login.example.com/tenant"
AUDIENCE = "chat-widget"
CUSTOMER = "alice@example.com"


def _auth(*keys: tuple[str, rsa.RSAPrivateKey], audience: str | None = AUDIENCE) -> Authentication:
    return Authentication(
        issuer=ISSUER,
        audience=audience,
        public_keys=tuple(PublicKey(kid, _public_pem(key)) for kid, key in keys),
    )


@pytest.fixture(scope="module")
def auth(key1: rsa.RSAPrivateKey) -> Authentication:
    return _auth(("k1", key1))


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for CUSTOMER; a change of None removes the claim."""
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": CUSTOMER,
        "iat": now - 60,
        "exp": now + 600,
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def sign(
    key: rsa.RSAPrivateKey,
    payload: dict[str, Any] | None = None,
    *,
    kid: str | None = "k1",
    algorithm: str = "RS256",
    **headers: Any,
) -> str:
    all_headers = dict(headers)
    if kid is not None:
        all_headers["kid"] = kid
    return jwt.encode(
        claims() if payload is None else payload, key, algorithm=algorithm, headers=all_headers
    )


def sign_by_hand(key: rsa.RSAPrivateKey, header: Any, payload: Any) -> str:
    """A correctly RS256-signed token whose header or payload PyJWT would refuse to encode."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def rejected(token: str, authentication: Authentication) -> InvalidCustomerToken:
    with pytest.raises(InvalidCustomerToken) as raised:
        customer_id_from_token(token, authentication)
    return raised.value


# --- accepted tokens -----------------------------------------------------------------------


def test_a_valid_token_gives_its_subject(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    assert customer_id_from_token(sign(key1), auth) == CUSTOMER


def test_audience_is_not_checked_when_the_widget_has_none(key1: rsa.RSAPrivateKey) -> None:
    no_audience = _auth(("k1", key1), audience=None)
    with_aud = sign(key1, claims(aud="anything-else"))
    without_aud = sign(key1, claims(aud=None))
    assert customer_id_from_token(with_aud, no_audience) == CUSTOMER
    assert customer_id_from_token(without_aud, no_audience) == CUSTOMER


def test_an_audience_list_containing_ours_is_accepted(
    key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    token = sign(key1, claims(aud=["other-app", AUDIENCE]))
    assert customer_id_from_token(token, auth) == CUSTOMER


def test_a_small_clock_skew_is_tolerated(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    now = int(time.time())
    skew = LEEWAY_SECONDS // 2
    just_expired = sign(key1, claims(exp=now - skew, iat=now - 600))
    issued_slightly_ahead = sign(key1, claims(iat=now + skew, nbf=now + skew))
    assert customer_id_from_token(just_expired, auth) == CUSTOMER
    assert customer_id_from_token(issued_slightly_ahead, auth) == CUSTOMER


def test_the_leeway_is_at_most_a_minute(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    now = int(time.time())
    assert 0 < LEEWAY_SECONDS <= 60
    rejected(sign(key1, claims(exp=now - 61, iat=now - 600)), auth)
    rejected(sign(key1, claims(iat=now + 61)), auth)


def test_rotation_accepts_tokens_of_both_listed_keys(
    key1: rsa.RSAPrivateKey, key2: rsa.RSAPrivateKey
) -> None:
    rotating = _auth(("k1", key1), ("k2", key2))
    assert customer_id_from_token(sign(key1, kid="k1"), rotating) == CUSTOMER
    assert customer_id_from_token(sign(key2, kid="k2"), rotating) == CUSTOMER


def test_a_token_without_kid_is_tried_against_every_key(
    key1: rsa.RSAPrivateKey, key2: rsa.RSAPrivateKey, stranger_key: rsa.RSAPrivateKey
) -> None:
    rotating = _auth(("k1", key1), ("k2", key2))
    assert customer_id_from_token(sign(key1, kid=None), rotating) == CUSTOMER
    assert customer_id_from_token(sign(key2, kid=None), rotating) == CUSTOMER
    rejected(sign(stranger_key, kid=None), rotating)


def test_a_token_just_under_the_size_limit_is_accepted(
    key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    token = _token_of_length(key1, MAX_TOKEN_LENGTH)
    assert customer_id_from_token(token, auth) == CUSTOMER


# --- refused tokens ------------------------------------------------------------------------


def test_expired(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    now = int(time.time())
    error = rejected(sign(key1, claims(iat=now - 7200, exp=now - 3600)), auth)
    assert "expired" in error.detail


def test_not_valid_before_a_future_nbf(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    now = int(time.time())
    rejected(sign(key1, claims(nbf=now + 600)), auth)


def test_issued_in_the_future_beyond_the_leeway(
    key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    now = int(time.time())
    rejected(sign(key1, claims(iat=now + 600, exp=now + 1200)), auth)


def test_wrong_issuer(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    rejected(sign(key1, claims(iss="https://evil.example.com")), auth)


def test_wrong_audience(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    rejected(sign(key1, claims(aud="another-app")), auth)


def test_missing_audience_when_one_is_configured(
    key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(sign(key1, claims(aud=None)), auth)


@pytest.mark.parametrize("claim", ["sub", "iss", "iat", "exp"])
def test_each_required_claim_is_required(
    claim: str, key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(sign(key1, claims(**{claim: None})), auth)


@pytest.mark.parametrize("subject", ["", 42, ["alice"], {"id": "alice"}, "x" * 257, "alice\ud800"])
def test_a_subject_that_is_not_a_reasonable_string(
    subject: Any, key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(sign(key1, claims(sub=subject)), auth)


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": [1]},
        {"iat": {"at": 1}},
        {"exp": [1]},
        {"exp": float("inf")},
        {"iat": float("-inf")},
        {"nbf": [1]},
        {"exp": "tomorrow"},
        {"iss": ["https://login.example.com/tenant"]},
        {"aud": 42},
    ],
    ids=str,
)
def test_claims_of_the_wrong_type_are_refused_not_crashed_on(
    changes: dict[str, Any], key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    # Correctly signed, so only claim validation can refuse them: it must say 401.
    rejected(sign_by_hand(key1, {"alg": "RS256", "kid": "k1"}, claims(**changes)), auth)


@pytest.mark.parametrize("payload", [[1, 2], "alice", 42, None])
def test_a_signed_payload_that_is_not_an_object(
    payload: Any, key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(sign_by_hand(key1, {"alg": "RS256", "kid": "k1"}, payload), auth)


def test_unknown_kid(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    rejected(sign(key1, kid="k9"), auth)


def test_kid_selects_that_key_only(key1: rsa.RSAPrivateKey, key2: rsa.RSAPrivateKey) -> None:
    rotating = _auth(("k1", key1), ("k2", key2))
    rejected(sign(key2, kid="k1"), rotating)
    rejected(sign(key1, kid="k2"), rotating)


@pytest.mark.parametrize("kid", [5, ["k1"], {"k": "k1"}, True, None])
def test_a_kid_that_is_not_a_string(
    kid: Any, key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(sign_by_hand(key1, {"alg": "RS256", "kid": kid}, claims()), auth)


def test_wrong_key(stranger_key: rsa.RSAPrivateKey, auth: Authentication) -> None:
    rejected(sign(stranger_key, kid="k1"), auth)


def test_an_embedded_jwk_is_ignored(stranger_key: rsa.RSAPrivateKey, auth: Authentication) -> None:
    numbers = stranger_key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64(numbers.n.to_bytes(256, "big")),
        "e": b64(numbers.e.to_bytes(3, "big")),
    }
    rejected(sign(stranger_key, kid=None, jwk=jwk), auth)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none(alg: str, auth: Authentication) -> None:
    unsigned = f"{segment({'alg': alg, 'typ': 'JWT', 'kid': 'k1'})}.{segment(claims())}."
    rejected(unsigned, auth)
    rejected(unsigned.rstrip("."), auth)


def _hs256_with_public_pem(pem: str, header: dict[str, Any]) -> str:
    # PyJWT refuses a PEM as an HMAC secret, so the key-confusion token is made by hand.
    signing_input = f"{segment(header)}.{segment(claims())}"
    mac = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "typ": "JWT", "kid": "k1"},
        {"alg": "HS256", "typ": "JWT"},
        {"alg": "RS256", "typ": "JWT", "kid": "k1"},
    ],
    ids=["hs256-kid", "hs256-no-kid", "hmac-claiming-rs256"],
)
def test_hs256_signed_with_the_public_pem(
    header: dict[str, Any], key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(_hs256_with_public_pem(_public_pem(key1), header), auth)


@pytest.mark.parametrize("algorithm", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_refused(
    algorithm: str, key1: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    rejected(sign(key1, algorithm=algorithm), auth)


def test_a_tampered_payload(key1: rsa.RSAPrivateKey, auth: Authentication) -> None:
    header, _, signature = sign(key1).split(".")
    forged = f"{header}.{segment(claims(sub='mallory@example.com'))}.{signature}"
    rejected(forged, auth)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "a.b.c.d.e",
        "....",
        "!!!.???.***",
        "e30.e30.",
        f"{segment([1, 2])}.{segment({})}.sig",
        f"{segment({'alg': 'RS256'})}.{segment([1])}.c2ln",
        f"{segment({'alg': 'RS256'})}.bm90IGpzb24.c2ln",
        f"{segment({'alg': 'RS256'})}.{segment(claims())}.%%%",
        "ü.ö.ä",
        "\x00.\x00.\x00",
    ],
)
def test_malformed(token: str, auth: Authentication) -> None:
    rejected(token, auth)


def _token_of_length(key: rsa.RSAPrivateKey, length: int) -> str:
    """A validly signed token of exactly `length` characters (a filler claim sets the size)."""
    # base64url never yields a length of 4n+1, so a header filler shifts the arithmetic.
    for header_filler in ("", "x", "xy", "xyz"):
        base = len(sign(key, claims(pad=""), x=header_filler))
        guess = (length - base) * 3 // 4
        for extra in range(max(0, guess - 4), guess + 5):
            token = sign(key, claims(pad="p" * extra), x=header_filler)
            if len(token) == length:
                return token
    raise AssertionError(f"could not build a token of {length} characters")


def test_oversized_even_when_correctly_signed(key1: rsa.RSAPrivateKey) -> None:
    rotating = _auth(("k1", key1))
    token = _token_of_length(key1, MAX_TOKEN_LENGTH + 1)
    assert MAX_TOKEN_LENGTH == 8192
    error = rejected(token, rotating)
    assert "large" in error.detail


def test_oversized_garbage_is_refused_before_parsing(auth: Authentication) -> None:
    error = rejected("a" * 100_000, auth)
    assert "large" in error.detail


def test_failures_never_echo_the_token(
    stranger_key: rsa.RSAPrivateKey, auth: Authentication
) -> None:
    token = sign(stranger_key)
    assert token not in rejected(token, auth).detail
    assert CUSTOMER not in rejected(token, auth).detail


# --- the Authorization header --------------------------------------------------------------


def test_bearer_token_reads_the_token() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   abc.def.ghi  ") == "abc.def.ghi"


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", "Basic YWxpY2U6c2VjcmV0", "Token abc", "abc.def.ghi"],
)
def test_bearer_token_refuses_anything_else(header: str | None) -> None:
    with pytest.raises(InvalidCustomerToken):
        bearer_token(header)


# --- public keys when settings are saved ---------------------------------------------------


def test_load_public_key_loads_an_rsa_spki_pem(key1: rsa.RSAPrivateKey) -> None:
    loaded = load_public_key(_public_pem(key1))
    assert loaded.public_numbers() == key1.public_key().public_numbers()


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n\udcff\n-----END PUBLIC KEY-----\n",
    ],
)
def test_load_public_key_refuses_what_does_not_load(pem: str) -> None:
    with pytest.raises(ValueError, match="PEM"):
        load_public_key(pem)


def test_load_public_key_refuses_a_private_key_pem(key1: rsa.RSAPrivateKey) -> None:
    private_pem = key1.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ValueError, match="public key"):
        load_public_key(private_pem)


def test_load_public_key_refuses_a_non_rsa_key() -> None:
    with pytest.raises(ValueError, match="RSA"):
        load_public_key(_public_pem(ec.generate_private_key(ec.SECP256R1())))


def test_load_public_key_refuses_a_short_rsa_key() -> None:
    with pytest.raises(ValueError, match="2048"):
        load_public_key(_public_pem(_rsa_key(1024)))
