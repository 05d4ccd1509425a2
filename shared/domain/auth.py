"""Customer tokens of authenticated widgets: RS256 JWTs checked strictly against its keys.

PyJWT and cryptography are imported where a key or a token is checked, not with the app:
most requests never check one, and importing them is a tenth of a second of a cold start.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeGuard

from shared.domain.errors import InvalidCustomerToken
from shared.domain.settings import Authentication, PublicKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# Longer than any sane RS256 token with ordinary claims; refusing earlier bounds the
# work an anonymous caller can make us do.
MAX_TOKEN_LENGTH = 8192
# Clock skew tolerated between the customer's identity provider and us.
LEEWAY_SECONDS = 30
MIN_RSA_KEY_BITS = 2048
REQUIRED_CLAIMS = ("iss", "iat", "exp", "sub")


@functools.lru_cache(maxsize=256)
def load_public_key(pem: str) -> RSAPublicKey:
    """The RSA public key in `pem`, or ValueError saying why it cannot be used."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode("utf-8"))
    except UnsupportedAlgorithm:
        raise ValueError("names a key type or curve that is not supported (use RSA)") from None
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ValueError("is not a PEM-encoded public key that can be loaded") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("must be an RSA public key (tokens are RS256)")
    if key.key_size < MIN_RSA_KEY_BITS:
        raise ValueError(f"must be an RSA key of at least {MIN_RSA_KEY_BITS} bits")
    return key


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or InvalidCustomerToken."""
    if not authorization:
        raise InvalidCustomerToken(
            "A customer token is required: send Authorization: Bearer <token>."
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidCustomerToken("The Authorization header must be 'Bearer <token>'.")
    return token


def _candidate_keys(header: dict[str, Any], keys: tuple[PublicKey, ...]) -> list[PublicKey]:
    kid = header.get("kid")
    if kid is None:
        return list(keys)
    if not isinstance(kid, str):
        raise InvalidCustomerToken("The token's key id is malformed.")
    return [key for key in keys if key.kid == kid]


def customer_id_from_token(token: str, authentication: Authentication) -> str:
    """The customer id (`sub`) of a valid token; InvalidCustomerToken for anything else.

    Only RS256 is accepted, whatever the token's header claims; a `kid` selects one
    key, a token without `kid` is tried against every key of the widget.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidCustomerToken("The customer token is too large.")
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidCustomerToken("The customer token is malformed.") from None
    if header.get("alg") != "RS256":
        raise InvalidCustomerToken("The customer token must be signed with RS256.")
    candidates = _candidate_keys(header, authentication.public_keys)
    if not candidates:
        raise InvalidCustomerToken("The customer token is signed with an unknown key.")
    failure = "The customer token's signature is invalid."
    for candidate in candidates:
        try:
            claims = jwt.decode(
                token,
                load_public_key(candidate.pem),
                algorithms=["RS256"],
                issuer=authentication.issuer,
                audience=authentication.audience,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_aud": authentication.audience is not None,
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise InvalidCustomerToken("The customer token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise InvalidCustomerToken("The customer token is not valid yet.") from None
        except jwt.InvalidIssuerError:
            raise InvalidCustomerToken("The customer token has the wrong issuer.") from None
        except jwt.InvalidAudienceError:
            raise InvalidCustomerToken("The customer token has the wrong audience.") from None
        except jwt.MissingRequiredClaimError as missing:
            raise InvalidCustomerToken(
                f"The customer token lacks the '{missing.claim}' claim."
            ) from None
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
            # PyJWT int()s the time claims: a list or an Infinity raises these, not PyJWTError.
            failure = "The customer token is invalid."
            continue
        subject = claims.get("sub")
        if not _is_reasonable_subject(subject):
            raise InvalidCustomerToken("The customer token's 'sub' claim is invalid.")
        return subject
    raise InvalidCustomerToken(failure)


def _is_reasonable_subject(subject: object) -> TypeGuard[str]:
    """A non-empty string of at most 256 characters that UTF-8 can hold (JSON allows a lone
    surrogate such as `\\ud800`; hashing the customer id would then fail)."""
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        return False
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
