"""Dev-only routes of the local host: a token issuer for the demo's authenticated widget,
Microsoft's Omnichannel chat SDK for the demo's SDK page (``widget/sdk.html``), and the
integration events the demo's agent console shows live.

``GET /dev/issuer`` answers ``{issuer, audience, kid, pem}`` (what an admin puts in a
widget's ``authentication`` settings) and ``POST /dev/token {"sub"}`` answers an RS256
customer token signed with a key generated when the host starts and kept in memory only.
It stands in for a portal's identity provider. ``GET /dev/omnichannel`` answers
``{orgId, sdkVersion}`` and ``GET /dev/omnichannel-chat-sdk.js`` the SDK from node_modules
bundled for the browser (see ``local/sdk_bundle.py``). ``GET /dev/events?after=<cursor>``
answers ``{queue, cursor, error, events}``: the CloudEvents taken off ``EVENTS_QUEUE`` since
that cursor, the demo playing the chat platform (see ``local/event_feed.py``). Never
deployed: ``local/`` is in ``.funcignore``, and only the local host mounts these routes.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from local.event_feed import EventFeed
from local.sdk_bundle import SdkBundle, SdkBundleError

DEV_ISSUER = "urn:chat-reconnect:dev-issuer"
TOKEN_LIFETIME = timedelta(hours=1)
MAX_SUBJECT_LENGTH = 256
MAX_BODY_BYTES = 4096
NO_STORE = {"Cache-Control": "no-store"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DevIssuer:
    """An identity provider for the demo: one RSA key, tokens for whatever ``sub`` is asked."""

    issuer: str
    kid: str
    private_key: rsa.RSAPrivateKey
    audience: str | None = None

    @classmethod
    def generate(cls, issuer: str = DEV_ISSUER, audience: str | None = None) -> DevIssuer:
        """A new issuer with a fresh 2048-bit key and a random key id."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(issuer, "dev-" + secrets.token_hex(4), key, audience)

    @property
    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM, as widget settings take it."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def token(self, subject: str, now: datetime | None = None) -> tuple[str, datetime]:
        """An RS256 customer token for ``subject`` and the moment it expires."""
        issued = (now or _utc_now()).replace(microsecond=0)
        expires = issued + TOKEN_LIFETIME
        claims: dict[str, object] = {
            "iss": self.issuer,
            "sub": subject,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
        }
        if self.audience is not None:
            claims["aud"] = self.audience
        token = jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})
        return token, expires


def _problem(status: int, detail: str, title: str = "Bad Request") -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status, headers=NO_STORE, media_type="application/problem+json")


def _subject(raw: bytes) -> str | None:
    """The ``sub`` of a ``{"sub": "..."}`` body, or None when the body is not that."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    subject = body.get("sub") if isinstance(body, dict) else None
    if not isinstance(subject, str) or not subject.strip():
        return None
    subject = subject.strip()
    return subject if len(subject) <= MAX_SUBJECT_LENGTH else None


def demo_routes(
    issuer: DevIssuer | None = None,
    clock: Callable[[], datetime] = _utc_now,
    events: EventFeed | None = None,
) -> list[BaseRoute]:
    """The dev-only routes for one issuer (new if omitted) and one event feed (default: the
    ``EVENTS_QUEUE`` of the environment's ``QUEUES_CONNECTION_STRING``)."""
    dev_issuer = issuer or DevIssuer.generate()
    feed = events if events is not None else EventFeed.from_environment(os.environ)

    async def describe(request: Request) -> JSONResponse:
        body = {
            "issuer": dev_issuer.issuer,
            "audience": dev_issuer.audience,
            "kid": dev_issuer.kid,
            "pem": dev_issuer.public_pem,
        }
        return JSONResponse(body, headers=NO_STORE)

    async def issue(request: Request) -> JSONResponse:
        raw = await request.body()
        subject = _subject(raw) if len(raw) <= MAX_BODY_BYTES else None
        if subject is None:
            return _problem(400, f'Send {{"sub": "<customer id>"}} (1-{MAX_SUBJECT_LENGTH} chars).')
        token, expires = dev_issuer.token(subject, clock())
        body = {"token": token, "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return JSONResponse(body, headers=NO_STORE)

    bundle = SdkBundle()

    async def omnichannel(request: Request) -> JSONResponse:
        body = {
            "orgId": os.environ.get("OMNICHANNEL_ORG_ID") or None,
            "sdkVersion": bundle.version(),
        }
        return JSONResponse(body, headers=NO_STORE)

    async def sdk_script(request: Request) -> Response:
        try:
            script = await bundle.script()
        except SdkBundleError as error:
            return _problem(503, str(error), "Service Unavailable")
        return Response(script, media_type="text/javascript", headers=NO_STORE)

    async def event_stream(request: Request) -> JSONResponse:
        raw = request.query_params.get("after", "0")
        if not raw.isdigit() or len(raw) > 12:
            return _problem(400, "Send after=<cursor>: the last cursor seen, 0 at first.")
        return JSONResponse(await feed.since(int(raw)), headers=NO_STORE)

    return [
        Route("/dev/issuer", describe, methods=["GET"]),
        Route("/dev/token", issue, methods=["POST"]),
        Route("/dev/omnichannel", omnichannel, methods=["GET"]),
        Route("/dev/omnichannel-chat-sdk.js", sdk_script, methods=["GET"]),
        Route("/dev/events", event_stream, methods=["GET"]),
    ]
