"""API clients, client-credentials tokens and scopes.

Each API client has its own secret, granted scopes and optional quota, like separate Hypatos API
clients. Tokens are opaque random strings; their lifetime is fixed when issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import unquote_plus

ALL_SCOPES: tuple[str, ...] = (
    "files.read",
    "files.write",
    "documents.read",
    "documents.write",
    "companies.read",
    "projects.read",
    "projects.write",
    "emails.read",
    "enrichment.read",
    "enrichment.write",
    "enrichment.delete",
)


def parse_scopes(scopes: str | list[str] | tuple[str, ...] | frozenset[str] | None) -> frozenset[str]:
    """Scopes are space-delimited, case-sensitive strings; None means all of them."""
    if scopes is None:
        return frozenset(ALL_SCOPES)
    if isinstance(scopes, str):
        scopes = scopes.split()
    return frozenset(scopes)


@dataclass
class Client:
    """One API client: credentials, granted scopes and its own quota (None: the default quota)."""

    client_id: str
    secret: str
    scopes: frozenset[str]
    rate_limit: int | None = None
    rate_window_s: float | None = None

    @property
    def user_id(self) -> str:
        """A stable 24-hex id shown as createdBy/updatedBy for what this client creates."""
        return hashlib.sha1(self.client_id.encode()).hexdigest()[:24]


@dataclass(slots=True)
class Token:
    value: str
    client: Client
    scopes: frozenset[str]
    issued_at: float
    expires_at: float


class InvalidScope(ValueError):
    """The requested scope leaves nothing the client is granted."""


class Auth:
    """Client registry and token store; lives on the event loop thread only."""

    _SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.tokens: dict[str, Token] = {}
        self._issued = 0

    def add_client(
        self,
        client_id: str,
        secret: str,
        scopes: str | list[str] | None = None,
        rate_limit: int | None = None,
        rate_window_s: float | None = None,
    ) -> Client:
        granted = parse_scopes(scopes)
        unknown = granted - set(ALL_SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes: {' '.join(sorted(unknown))}")
        client = Client(client_id, secret, granted, rate_limit, rate_window_s)
        self.clients[client_id] = client
        return client

    def basic_client_id(self, header: str | None) -> tuple[str, str] | None:
        """Decode `Authorization: Basic ...` into (id, secret); None when absent or malformed."""
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None
        return client_id, secret

    def authenticate(self, credentials: tuple[str, str] | None) -> Client | None:
        """Check Basic credentials, raw or form-urlencoded as RFC 6749 section 2.3.1 asks."""
        if credentials is None:
            return None
        for client_id, secret in (credentials, tuple(unquote_plus(c) for c in credentials)):
            client = self.clients.get(client_id)
            if client is not None and hmac.compare_digest(client.secret.encode(), secret.encode()):
                return client
        return None

    def issue(self, client: Client, requested: str | None, lifetime_s: float, now: float) -> Token:
        """Issue a token; a requested scope narrows the client's granted scopes."""
        scopes = client.scopes
        if requested is not None and requested.strip():
            scopes = scopes & frozenset(requested.split())
            if not scopes:
                raise InvalidScope(requested)
        token = Token(secrets.token_urlsafe(32), client, scopes, now, now + lifetime_s)
        self.tokens[token.value] = token
        self._issued += 1
        if self._issued % self._SWEEP_EVERY == 0:
            self._sweep(now)
        return token

    def check_bearer(self, header: str | None, now: float) -> Token | str:
        """Return the live token, or the reason it is refused (for the 401 detail)."""
        if not header:
            return "Provided no credentials or invalid credentials"
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return "Malformed Authorization header, expected 'Bearer <token>'"
        token = self.tokens.get(value.strip())
        if token is None:
            return "Invalid or revoked access token"
        if now >= token.expires_at:
            return "Access token expired"
        return token

    def revoke(self, client_id: str | None = None) -> int:
        """Forget all tokens of one client (or of all clients); returns how many."""
        if client_id is None:
            count = len(self.tokens)
            self.tokens.clear()
            return count
        doomed = [v for v, t in self.tokens.items() if t.client.client_id == client_id]
        for value in doomed:
            del self.tokens[value]
        return len(doomed)

    def _sweep(self, now: float) -> None:
        """Drop expired tokens so long benchmarks do not grow memory."""
        for value in [v for v, t in self.tokens.items() if t.expires_at <= now]:
            del self.tokens[value]
