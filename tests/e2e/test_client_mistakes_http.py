"""Client mistakes that answered 500 (issue 12, item 5), each a clear 4xx over real HTTP now."""

from __future__ import annotations

import base64

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.api.http import MAX_BODY_BYTES, OPERATIONS
from tests.conftest import fresh_function_app
from tests.keys import public_pem

PROBLEM = "application/problem+json"
# Far deeper than the JSON parser's recursion limit, and still within the body limit.
DEPTH = MAX_BODY_BYTES // 2 - 10
DEEP = b"[" * DEPTH + b"]" * DEPTH


def json_operations() -> list[tuple[str, str, str, str]]:
    """(operationId, method, path, media type) of every operation that takes a JSON body."""
    fresh_function_app()  # importing the blueprints fills OPERATIONS
    found = []
    for operation in OPERATIONS:
        if operation.body is None:
            continue
        path = operation.route
        for name in ("widgetId", "conversationId", "agentId", "reconnectId"):
            path = path.replace("{" + name + "}", "deep-1")
        found.append((operation.name, operation.method, "/" + path, operation.body_types[0]))
    return found


JSON_OPERATIONS = json_operations()


def test_there_are_json_operations_to_check() -> None:
    assert len(JSON_OPERATIONS) >= 4


@pytest.mark.parametrize(("name", "method", "path", "media_type"), JSON_OPERATIONS)
def test_json_nested_too_deeply_is_a_400(
    api: httpx.Client, name: str, method: str, path: str, media_type: str
) -> None:
    """It raised RecursionError in the parser: a 500."""
    response = api.request(method, path, content=DEEP, headers={"Content-Type": media_type})
    assert response.status_code == 400, (name, response.text)
    assert response.headers["content-type"] == PROBLEM
    assert "nested too deeply" in response.json()["detail"]


def test_a_deeply_nested_continuation_token_is_a_400(api: httpx.Client) -> None:
    """It raised RecursionError while the token was decoded: a 500."""
    depth = 3000
    token = base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).decode().rstrip("=")
    response = api.get("/manage/widgets", params={"continuationToken": token})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "continuationToken"


# "²" is a digit to isdigit() that int() refuses; the others int() reads, but a query
# integer is ASCII (OpenAPI), so they are refused too.
@pytest.mark.parametrize("top", ["\u00b2", "\u00b9\u00b2", "\u0661\u0662", "\U0001d7d9"])
def test_a_page_size_of_unicode_digits_is_a_400(api: httpx.Client, top: str) -> None:
    """'²'.isdigit() is true but int('²') raises ValueError: it was a 500."""
    response = api.get("/manage/widgets", params={"top": top})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "top"


def _spki_pem(der: bytes) -> str:
    return (
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(der).decode()
        + "-----END PUBLIC KEY-----\n"
    )


def _der(tag: int, content: bytes) -> bytes:
    assert len(content) < 128
    return bytes([tag, len(content)]) + content


UNKNOWN_OID = _der(0x06, bytes([0x2A, 0x03, 0x04]))  # 1.2.3.4
EC_OID = _der(0x06, bytes([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]))  # id-ecPublicKey
UNSUPPORTED_PEMS = {
    # A public key of an algorithm cryptography does not know: UnsupportedAlgorithm.
    "unknown-algorithm": _spki_pem(_der(0x30, _der(0x30, UNKNOWN_OID) + _der(0x03, b"\x00\x00"))),
    # An EC key on a curve cryptography does not know: UnsupportedAlgorithm.
    "unknown-curve": _spki_pem(
        _der(0x30, _der(0x30, EC_OID + UNKNOWN_OID) + _der(0x03, b"\x00\x04\x00"))
    ),
    # Loads, but is not RSA.
    "ec-p256": public_pem(ec.generate_private_key(ec.SECP256R1())),
}


@pytest.mark.parametrize("pem", UNSUPPORTED_PEMS.values(), ids=UNSUPPORTED_PEMS.keys())
def test_a_public_key_that_is_not_usable_rsa_is_a_422_naming_the_key(
    api: httpx.Client, pem: str, key1: rsa.RSAPrivateKey
) -> None:
    """An unknown algorithm raised UnsupportedAlgorithm while the settings were validated."""
    body = {
        "reconnectEnabled": True,
        "portalUrl": "https://contoso.example/chat",
        "authentication": {
            "issuer": "https://login.contoso.example/",
            "publicKeys": [{"kid": "good", "pem": public_pem(key1)}, {"kid": "bad", "pem": pem}],
        },
    }
    response = api.put("/manage/widgets/pem-w", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == ["authentication.publicKeys[1].pem"]
